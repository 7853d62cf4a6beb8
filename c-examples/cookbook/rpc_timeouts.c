/* Cookbook: request/response RPC with timeouts.
 *
 * A server offers two procedures: ADD (type 300) answers at once, SLOW
 * (type 301) answers after 300 ms. A client calls them three ways:
 * - blocking, with veltix_client_send_and_wait() and a timeout;
 * - blocking, with a timeout too short for SLOW: VELTIX_ERR_TIMEOUT, and
 *   the late reply is dropped by the library, never mistaken for another;
 * - without blocking, with veltix_client_request(): the outcome (reply,
 *   timeout or closed connection) comes exactly once to a callback.
 *
 * Both sides run in this process; the server's port is picked by the
 * system. Run: ./rpc_timeouts
 */
#include "../example_common.h" /* first: it sets _POSIX_C_SOURCE */

enum { ADD = 300, SLOW = 301, ANSWER = 302 };

/* ADD: the payload is "a b"; the reply is their sum, as text. */
static void on_add(void *user_data, veltix_server_t *server, veltix_peer_id_t peer,
                   const veltix_message_t *request) {
    char sum[32];
    long a = 0, b = 0;
    (void)user_data;
    sscanf((const char *)veltix_message_content(request, NULL), "%ld %ld", &a, &b);
    snprintf(sum, sizeof sum, "%ld", a + b);
    veltix_server_reply(server, peer, request, ANSWER, (const uint8_t *)sum, strlen(sum));
}

/* SLOW: answers after 300 ms (on a worker thread: other peers go on). */
static void on_slow(void *user_data, veltix_server_t *server, veltix_peer_id_t peer,
                    const veltix_message_t *request) {
    (void)user_data;
    example_sleep_ms(300);
    veltix_server_reply(server, peer, request, ANSWER, (const uint8_t *)"late", 4);
}

/* The outcome of an asynchronous call: exactly once. */
struct outcome {
    int done;
    veltix_status_t status;
    char text[64];
};

static void on_outcome(void *user_data, veltix_client_t *client, veltix_status_t status,
                       const veltix_message_t *reply, const char *error) {
    struct outcome *outcome = user_data;
    (void)client;
    outcome->status = status;
    snprintf(outcome->text, sizeof outcome->text, "%s",
             status == VELTIX_OK ? (const char *)veltix_message_content(reply, NULL) : error);
    outcome->done = 1; /* read by main after dispatch: same thread */
}

int main(void) {
    veltix_server_config_t server_config;
    veltix_client_config_t client_config;
    veltix_server_t *server = NULL;
    veltix_client_t *client = NULL;
    veltix_message_t *reply = NULL;
    veltix_status_t status;
    struct outcome outcome = {0, VELTIX_OK, ""};

    veltix_server_config_init(&server_config, sizeof server_config);
    server_config.host = "127.0.0.1";
    server_config.port = 0;
    example_check(veltix_server_new(&server_config, &server), "server_new");
    example_check(veltix_server_route(server, ADD, on_add, NULL, NULL), "route ADD");
    example_check(veltix_server_route(server, SLOW, on_slow, NULL, NULL), "route SLOW");
    example_check(veltix_server_start(server), "server_start");

    veltix_client_config_init(&client_config, sizeof client_config);
    client_config.port = veltix_server_port(server);
    client_config.max_workers = 0; /* the async outcome runs in dispatch, on this thread */
    example_check(veltix_client_new(&client_config, &client), "client_new");
    example_check(veltix_client_connect(client), "connect");

    /* 1. Blocking, answered in time. */
    example_check(veltix_client_send_and_wait(client, ADD, (const uint8_t *)"2 3", 3, 1000, &reply),
                  "ADD");
    printf("ADD 2 3 = %s\n", (const char *)veltix_message_content(reply, NULL));
    veltix_message_free(reply);

    /* 2. Blocking, with a timeout SLOW cannot meet. */
    status = veltix_client_send_and_wait(client, SLOW, NULL, 0, 50, &reply);
    printf("SLOW with 50 ms: %s (%s)\n", veltix_status_str(status), veltix_last_error());
    if (status != VELTIX_ERR_TIMEOUT) {
        return 1;
    }

    /* 3. Without blocking: the outcome comes to on_outcome, inside dispatch. */
    example_check(veltix_client_request(client, ADD, (const uint8_t *)"40 2", 4, 1000, on_outcome,
                                        &outcome),
                  "request");
    while (!outcome.done) {
        example_check(veltix_client_dispatch(client, 100, NULL), "dispatch");
    }
    printf("async ADD 40 2 = %s\n", outcome.text);

    /* SLOW's late reply to call 2 came and went: the next call is not confused by it. */
    example_sleep_ms(350);
    example_check(veltix_client_send_and_wait(client, ADD, (const uint8_t *)"1 1", 3, 1000, &reply),
                  "ADD after the late reply");
    printf("ADD 1 1 = %s\n", (const char *)veltix_message_content(reply, NULL));
    status = strcmp((const char *)veltix_message_content(reply, NULL), "2") == 0 &&
                     outcome.status == VELTIX_OK && strcmp(outcome.text, "42") == 0
                 ? VELTIX_OK
                 : VELTIX_ERR_INVALID_ARGUMENT;
    veltix_message_free(reply);
    veltix_client_free(client);
    veltix_server_free(server);
    printf("rpc: %s\n", status == VELTIX_OK ? "ok" : "wrong answers");
    return status == VELTIX_OK ? 0 : 1;
}
