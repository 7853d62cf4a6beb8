/* Reconnect demo: prints every on_connect / on_disconnect state while the
 * client loses its connection and reconnects on its own (config.retry).
 *
 *   reconnect_demo [host] [port]
 *
 * It asks the server to drop it by sending {"cmd": "close_me"} (type 210),
 * a command of the test server in tests/support/ref_server.py; against
 * another server, restart the server instead and watch the states.
 */
#include "example_common.h"

#include <pthread.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int connects = 0;
static int drops = 0;

static const char *reason_name(veltix_disconnect_reason_t reason) {
    switch (reason) {
    case VELTIX_DISCONNECT_SERVER_CLOSED:
        return "SERVER_CLOSED";
    case VELTIX_DISCONNECT_ERROR:
        return "ERROR";
    case VELTIX_DISCONNECT_MANUAL:
        return "MANUAL";
    default:
        return "?";
    }
}

static void on_connect(void *user_data, veltix_client_t *client) {
    (void)user_data;
    (void)client;
    pthread_mutex_lock(&lock);
    connects++;
    printf("on_connect #%d\n", connects);
    pthread_mutex_unlock(&lock);
}

/* One call per step, in order, on a worker thread; `state` is borrowed. */
static void on_disconnect(void *user_data, veltix_client_t *client,
                          const veltix_disconnect_state_t *state) {
    (void)user_data;
    (void)client;
    pthread_mutex_lock(&lock);
    if (!state->permanent && state->attempt == 0) {
        drops++;
    }
    printf("on_disconnect: permanent=%s attempt=%u/%u reason=%s\n",
           state->permanent ? "true" : "false", (unsigned)state->attempt,
           (unsigned)state->retry_max, reason_name(state->reason));
    pthread_mutex_unlock(&lock);
}

int main(int argc, char **argv) {
    static const char close_me[] = "{\"cmd\": \"close_me\"}";
    veltix_client_config_t config;
    veltix_client_t *client = NULL;
    int waited, ok = 0;

    example_config(&config, argc, argv);
    config.retry = 5;
    config.retry_delay_ms = 200;
    example_check(veltix_client_new(&config, &client), "veltix_client_new");
    example_check(veltix_client_on_connect(client, on_connect, NULL, NULL), "on_connect");
    example_check(veltix_client_on_disconnect(client, on_disconnect, NULL, NULL), "on_disconnect");
    example_check(veltix_client_connect(client), "veltix_client_connect");

    example_check(veltix_client_send(client, 210, (const uint8_t *)close_me, sizeof close_me - 1),
                  "veltix_client_send");
    for (waited = 0; waited < 10000; waited += 50) {
        pthread_mutex_lock(&lock);
        ok = drops >= 1 && connects >= 2;
        pthread_mutex_unlock(&lock);
        if (ok) {
            break;
        }
        example_sleep_ms(50);
    }
    printf("reconnected: %s\n", ok ? "yes" : "no");
    example_check(veltix_client_disconnect(client), "veltix_client_disconnect");
    example_check(veltix_client_wait_until_closed(client, 5000), "wait_until_closed");
    veltix_client_free(client);
    return ok ? 0 : 1;
}
