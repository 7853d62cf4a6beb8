/* Cookbook: a client that reconnects on its own, with backoff and jitter.
 *
 * With config.retry > 0 the client reconnects by itself when the
 * connection drops: routes and callbacks are kept, on_disconnect reports
 * each step (attempt, next delay, the cause in veltix_last_error()), and
 * on_connect runs again once it is back. With retry_delay_max_ms the
 * delay doubles after each failed attempt, and retry_jitter draws each
 * delay at random below it, so a thousand clients cut off by one server
 * restart do not all come back in the same millisecond. Heartbeats notice
 * a server that vanished without closing the connection.
 *
 * Here a server in this process stops for 700 ms and comes back on the
 * same port. The client runs in dispatch mode: this thread runs its
 * callbacks, so they need no locks.
 *
 * Run: ./reconnecting_client
 */
#include "../example_common.h" /* first: it sets _POSIX_C_SOURCE */

enum { ECHO = 200 };

struct events {
    int connects;
    int disconnects;
};

static void on_echo(void *user_data, veltix_server_t *server, veltix_peer_id_t peer,
                    const veltix_message_t *message) {
    size_t len;
    const uint8_t *payload = veltix_message_content(message, &len);
    (void)user_data;
    veltix_server_reply(server, peer, message, ECHO, payload, len);
}

static veltix_server_t *start_server(uint16_t port) {
    veltix_server_config_t config;
    veltix_server_t *server = NULL;
    veltix_server_config_init(&config, sizeof config);
    config.host = "127.0.0.1";
    config.port = port;
    example_check(veltix_server_new(&config, &server), "server_new");
    example_check(veltix_server_route(server, ECHO, on_echo, NULL, NULL), "route");
    example_check(veltix_server_start(server), "server_start");
    return server;
}

static void on_connect(void *user_data, veltix_client_t *client) {
    struct events *events = user_data;
    (void)client;
    printf("connected (%d)\n", ++events->connects);
}

static void on_disconnect(void *user_data, veltix_client_t *client,
                          const veltix_disconnect_state_t *state) {
    struct events *events = user_data;
    (void)client;
    events->disconnects++;
    if (state->permanent) {
        printf("gave up: %s\n", veltix_last_error());
    } else if (state->attempt == 0) {
        printf("lost the connection (%s); retrying in %u ms\n", veltix_last_error(),
               (unsigned)state->next_delay_ms);
    } else {
        printf("attempt %u of %u failed; next in %u ms\n", (unsigned)state->attempt,
               (unsigned)state->retry_max, (unsigned)state->next_delay_ms);
    }
}

/* Runs the client's callbacks for `ms` milliseconds. */
static void dispatch_for(veltix_client_t *client, long ms) {
    for (long waited = 0; waited < ms; waited += 20) {
        example_check(veltix_client_dispatch(client, 20, NULL), "dispatch");
    }
}

int main(void) {
    veltix_client_config_t config;
    veltix_client_t *client = NULL;
    veltix_message_t *reply = NULL;
    struct events events = {0, 0};
    veltix_server_t *server = start_server(0);
    uint16_t port = veltix_server_port(server);

    veltix_client_config_init(&config, sizeof config);
    config.port = port;
    config.max_workers = 0;                     /* dispatch mode: callbacks on this thread */
    config.retry = 20;                          /* reconnection attempts */
    config.retry_delay_ms = 50;                 /* the first delay... */
    config.retry_delay_max_ms = 400;            /* ...doubling up to this */
    config.retry_jitter = true;                 /* each drawn at random below it */
    config.liveness.heartbeat_interval_ms = 200;  /* PING after 200 ms of silence */
    config.liveness.heartbeat_timeout_ms = 1000;  /* dead after 1 s of silence */
    example_check(veltix_client_new(&config, &client), "client_new");
    example_check(veltix_client_on_connect(client, on_connect, &events, NULL), "on_connect");
    example_check(veltix_client_on_disconnect(client, on_disconnect, &events, NULL), "on_disconnect");
    example_check(veltix_client_connect(client), "connect");
    dispatch_for(client, 50);

    printf("server stops\n");
    veltix_server_free(server);
    dispatch_for(client, 700);
    printf("server is back on port %u\n", (unsigned)port);
    server = start_server(port);
    for (int waited = 0; waited < 5000 && events.connects < 2; waited += 20) {
        example_check(veltix_client_dispatch(client, 20, NULL), "dispatch");
    }

    example_check(veltix_client_send_and_wait(client, ECHO, (const uint8_t *)"still here", 10, 2000,
                                              &reply),
                  "send_and_wait after reconnecting");
    printf("echo after reconnecting: %s\n", (const char *)veltix_message_content(reply, NULL));
    veltix_message_free(reply);
    veltix_client_free(client);
    veltix_server_free(server);
    printf("reconnect: %d connects, %d disconnect steps\n", events.connects, events.disconnects);
    return events.connects == 2 && events.disconnects >= 2 ? 0 : 1;
}
