/* Cookbook: a server that shuts down gracefully on SIGTERM (or Ctrl-C).
 *
 * The signals are blocked before the server starts its threads, which
 * inherit the mask, so no library thread is ever interrupted by them;
 * the main thread then waits for one with sigwait(). On SIGTERM it:
 * 1. tells every client, with a broadcast they can act on (type 230);
 * 2. closes every connection: veltix_server_close() runs each
 *    on_disconnect and the callbacks already running, and fails pending
 *    requests with VELTIX_ERR_CLOSED;
 * 3. frees the server and exits 0.
 * No handler runs in signal context, so nothing async-signal-unsafe is
 * called there.
 *
 * Run: ./graceful_server [port]   (0 or none: a free port), then kill -TERM it.
 */
#include "../example_common.h" /* first: it sets _POSIX_C_SOURCE */

#include <signal.h>

enum { ECHO = 200, GOING_AWAY = 230 };

static void on_echo(void *user_data, veltix_server_t *server, veltix_peer_id_t peer,
                    const veltix_message_t *message) {
    size_t len;
    const uint8_t *payload = veltix_message_content(message, &len);
    (void)user_data;
    veltix_server_reply(server, peer, message, ECHO, payload, len);
}

static void on_disconnect(void *user_data, veltix_server_t *server, veltix_peer_id_t peer,
                          veltix_disconnect_reason_t reason) {
    (void)user_data;
    (void)server;
    printf("client %llu left (reason %d)\n", (unsigned long long)peer, (int)reason);
    fflush(stdout);
}

int main(int argc, char **argv) {
    veltix_server_config_t config;
    veltix_server_t *server = NULL;
    sigset_t stop;
    int signal_number = 0;
    size_t told = 0;
    static const char going_away[] = "server shutting down";

    /* Before any library thread exists: they all inherit this mask. */
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    if (pthread_sigmask(SIG_BLOCK, &stop, NULL) != 0) {
        perror("pthread_sigmask");
        return 1;
    }

    veltix_server_config_init(&config, sizeof config);
    config.host = "127.0.0.1";
    config.port = (uint16_t)(argc > 1 ? atoi(argv[1]) : 0);
    example_check(veltix_server_new(&config, &server), "server_new");
    example_check(veltix_server_route(server, ECHO, on_echo, NULL, NULL), "route");
    example_check(veltix_server_on_disconnect(server, on_disconnect, NULL, NULL), "on_disconnect");
    example_check(veltix_server_start(server), "server_start");
    printf("listening on 127.0.0.1:%u\n", (unsigned)veltix_server_port(server));
    fflush(stdout);

    if (sigwait(&stop, &signal_number) != 0) {
        return 1;
    }
    printf("%s: telling %zu clients, then closing\n", signal_number == SIGTERM ? "SIGTERM" : "SIGINT",
           veltix_server_client_count(server));
    fflush(stdout);
    example_check(veltix_server_broadcast(server, GOING_AWAY, (const uint8_t *)going_away,
                                          sizeof going_away - 1, NULL, 0, &told),
                  "broadcast");
    example_check(veltix_server_close(server), "close");
    veltix_server_free(server);
    printf("told %zu clients; bye\n", told);
    return 0;
}
