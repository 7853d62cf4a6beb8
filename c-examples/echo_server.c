/* Echo server: a Veltix server in C that Python veltix clients and the C
 * examples can talk to.
 *
 *   echo_server [port] [seconds]
 *
 * Type 200 is echoed back to its sender with the same request id, so it
 * answers send_and_wait; a {"cmd": "close_me"} of type 210 makes the server
 * close that client (see reconnect_demo); every other message is broadcast
 * to the other clients. Pings are answered by the library. Runs until
 * SIGINT/SIGTERM, or for `seconds` if given; port 0 picks a free port.
 */
#include "example_common.h"

#include <signal.h>

#define ECHO 200
#define CMD 210

static volatile sig_atomic_t stop = 0;

static void on_signal(int signal_number) {
    (void)signal_number;
    stop = 1;
}

/* All callbacks run on the server's worker threads, one peer's in order. */
static void on_connect(void *user_data, veltix_server_t *server, veltix_peer_id_t peer) {
    char ip[46];
    uint16_t port = 0;
    (void)user_data;
    if (veltix_server_peer_address(server, peer, ip, sizeof ip, &port) == VELTIX_OK) {
        printf("[server] client %llu connected from %s:%u (%zu connected)\n",
               (unsigned long long)peer, ip, (unsigned)port, veltix_server_client_count(server));
    }
    fflush(stdout);
}

static void on_disconnect(void *user_data, veltix_server_t *server, veltix_peer_id_t peer,
                          veltix_disconnect_reason_t reason) {
    (void)user_data;
    printf("[server] client %llu left (%s)\n", (unsigned long long)peer,
           reason == VELTIX_DISCONNECT_PEER_CLOSED ? "closed by the client"
           : reason == VELTIX_DISCONNECT_MANUAL    ? "closed by the server"
                                                   : "error");
    (void)server;
    fflush(stdout);
}

/* `message` is borrowed for the call: its content is copied by the send. */
static void on_echo(void *user_data, veltix_server_t *server, veltix_peer_id_t peer,
                    const veltix_message_t *message) {
    size_t len = 0;
    const uint8_t *content = veltix_message_content(message, &len);
    (void)user_data;
    if (veltix_server_reply(server, peer, message, ECHO, content, len) != VELTIX_OK) {
        fprintf(stderr, "[server] echo to %llu failed: %s\n", (unsigned long long)peer,
                veltix_last_error());
    }
}

static void on_command(void *user_data, veltix_server_t *server, veltix_peer_id_t peer,
                       const veltix_message_t *message) {
    const char *text = (const char *)veltix_message_content(message, NULL);
    (void)user_data;
    if (strstr(text, "close_me") != NULL) {
        printf("[server] closing client %llu as it asked\n", (unsigned long long)peer);
        fflush(stdout);
        veltix_server_close_client(server, peer);
    }
}

/* Anything else goes to every other client. */
static void on_recv(void *user_data, veltix_server_t *server, veltix_peer_id_t peer,
                    const veltix_message_t *message) {
    size_t len = 0;
    const uint8_t *content = veltix_message_content(message, &len);
    size_t reached = 0;
    (void)user_data;
    veltix_server_broadcast(server, veltix_message_type(message), content, len, &peer, 1,
                            &reached);
}

int main(int argc, char **argv) {
    veltix_server_config_t config;
    veltix_server_t *server = NULL;
    long seconds = argc > 2 ? atol(argv[2]) : 0;
    long waited_ms = 0;

    veltix_server_config_init(&config, sizeof config);
    config.host = "127.0.0.1";
    config.port = (uint16_t)(argc > 1 ? atoi(argv[1]) : 8080);
    example_check(veltix_server_new(&config, &server), "veltix_server_new");
    example_check(veltix_server_on_connect(server, on_connect, NULL, NULL), "veltix_server_on_connect");
    example_check(veltix_server_on_disconnect(server, on_disconnect, NULL, NULL),
                  "veltix_server_on_disconnect");
    example_check(veltix_server_route(server, ECHO, on_echo, NULL, NULL), "veltix_server_route");
    example_check(veltix_server_route(server, CMD, on_command, NULL, NULL), "veltix_server_route");
    example_check(veltix_server_on_recv(server, on_recv, NULL, NULL), "veltix_server_on_recv");
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    example_check(veltix_server_start(server), "veltix_server_start");
    printf("[server] listening on 127.0.0.1:%u\n", (unsigned)veltix_server_port(server));
    fflush(stdout);

    while (!stop && (seconds <= 0 || waited_ms < seconds * 1000)) {
        example_sleep_ms(50);
        waited_ms += 50;
    }
    printf("[server] shutting down with %zu clients\n", veltix_server_client_count(server));
    veltix_server_free(server);
    return 0;
}
