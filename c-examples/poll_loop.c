/* poll_loop: a single-threaded chat client in dispatch mode.
 *
 *   poll_loop [host] [port]      (else $VELTIX_HOST / $VELTIX_PORT)
 *
 * One thread, one poll() loop over stdin and the client's event fd: each
 * line typed is sent as a message of type 200 (the reference server echoes
 * it), and every message received is printed by a callback that runs on
 * this same thread, inside veltix_client_dispatch(). No library thread ever
 * calls into this program's code, so it needs no locks, and no call blocks
 * the loop: veltix_client_connect_async() returns at once and on_connect
 * (or on_disconnect, with veltix_last_error() saying why) tells the
 * outcome. stdin is read only once connected. At the end of stdin it waits
 * for the last echoes and exits 0 if every line came back. */
#include "example_common.h" /* first: it sets _POSIX_C_SOURCE */

#include <poll.h>
#include <unistd.h>

#define CHAT 200

struct chat {
    int connected; /* 1 connected, -1 gave up */
    unsigned sent;
    unsigned received;
};

static void on_connect(void *user_data, veltix_client_t *client) {
    (void)client;
    ((struct chat *)user_data)->connected = 1;
}

static void on_disconnect(void *user_data, veltix_client_t *client,
                          const veltix_disconnect_state_t *state) {
    (void)client;
    fprintf(stderr, "disconnected (attempt %u): %s\n", (unsigned)state->attempt,
            veltix_last_error());
    if (state->permanent) {
        ((struct chat *)user_data)->connected = -1;
    }
}

static void on_chat(void *user_data, veltix_client_t *client, const veltix_message_t *msg) {
    struct chat *chat = (struct chat *)user_data;
    const char *text = (const char *)veltix_message_content(msg, NULL);
    (void)client;
    chat->received++;
    printf("< %s\n", text);
}

/* Sends each complete line in buf[0..*len) and keeps the unfinished rest. */
static void send_lines(veltix_client_t *client, char *buf, size_t *len, struct chat *chat) {
    size_t start = 0;
    size_t i;
    for (i = 0; i < *len; i++) {
        if (buf[i] == '\n') {
            example_check(veltix_client_send(client, CHAT, (const uint8_t *)buf + start, i - start),
                          "veltix_client_send");
            chat->sent++;
            start = i + 1;
        }
    }
    memmove(buf, buf + start, *len - start);
    *len -= start;
}

int main(int argc, char **argv) {
    veltix_client_config_t config;
    veltix_client_t *client = NULL;
    struct chat chat = {0, 0, 0};
    struct pollfd fds[2];
    char buf[4096];
    size_t len = 0;
    int stdin_open = 1;
    int idle_rounds = 0;

    example_config(&config, argc, argv);
    config.max_workers = 0; /* dispatch mode: callbacks run on this thread */
    example_check(veltix_client_new(&config, &client), "veltix_client_new");
    example_check(veltix_client_route(client, CHAT, on_chat, &chat, NULL), "veltix_client_route");
    example_check(veltix_client_on_connect(client, on_connect, &chat, NULL),
                  "veltix_client_on_connect");
    example_check(veltix_client_on_disconnect(client, on_disconnect, &chat, NULL),
                  "veltix_client_on_disconnect");
    example_check(veltix_client_connect_async(client), "veltix_client_connect_async");

    fds[0].fd = -1; /* stdin waits until on_connect */
    fds[0].events = POLLIN;
    fds[1].events = POLLIN;
    example_check(veltix_client_event_fd(client, &fds[1].fd), "veltix_client_event_fd");

    /* Until stdin ends and every line has come back (or 5 s pass idle). */
    while ((stdin_open || chat.received < chat.sent) && chat.connected >= 0) {
        int ready = poll(fds, 2, 1000);
        if (ready == 0 && ++idle_rounds >= 5) {
            break;
        }
        if (ready > 0) {
            idle_rounds = 0;
        }
        if (fds[1].revents & POLLIN) {
            example_check(veltix_client_dispatch(client, 0, NULL), "veltix_client_dispatch");
            if (chat.connected == 1 && stdin_open) {
                fds[0].fd = STDIN_FILENO;
            }
        }
        if (stdin_open && (fds[0].revents & (POLLIN | POLLHUP))) {
            ssize_t n = read(STDIN_FILENO, buf + len, sizeof buf - len);
            if (n <= 0) {
                stdin_open = 0;
                fds[0].fd = -1; /* poll ignores it from now on */
            } else {
                len += (size_t)n;
                send_lines(client, buf, &len, &chat);
            }
        }
    }
    printf("sent %u, received %u\n", chat.sent, chat.received);
    veltix_client_free(client);
    return chat.sent > 0 && chat.received == chat.sent ? 0 : 1;
}
