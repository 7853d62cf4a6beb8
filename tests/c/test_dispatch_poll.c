/* A single-threaded dispatch-mode host that waits on veltix_client_event_fd()
 * with the system's own poll: poll() on POSIX, WSAPoll() on Windows (where
 * the handle is a SOCKET). It connects without blocking, sends 100 requests
 * and sees every reply inside veltix_client_dispatch(), dispatching only
 * when the handle says callbacks are due, and checks that the handle is
 * quiet once they ran.
 *
 *   test_dispatch_poll [host] [port]   (else $VELTIX_HOST / $VELTIX_PORT)
 *
 * The server echoes type 200: the reference server, or c-examples'
 * echo_server. */
#include "../../c-examples/example_common.h"

#ifdef _WIN32
#include <winsock2.h>
#define POLL_HANDLE WSAPOLLFD
#define POLL_READABLE POLLRDNORM
#define poll_handles WSAPoll
#else
#include <poll.h>
#define POLL_HANDLE struct pollfd
#define POLL_READABLE POLLIN
#define poll_handles poll
#endif

#include "check.h"

#define ECHO 200
#define REQUESTS 100

struct host {
    int connected;
    int replies;
    int wrong;
};

static void on_connect(void *user_data, veltix_client_t *client) {
    (void)client;
    ((struct host *)user_data)->connected = 1;
}

static void on_disconnect(void *user_data, veltix_client_t *client,
                          const veltix_disconnect_state_t *state) {
    (void)client;
    if (state->permanent) {
        ((struct host *)user_data)->connected = -1;
    }
}

static void on_reply(void *user_data, veltix_client_t *client, veltix_status_t status,
                     const veltix_message_t *reply, const char *error) {
    struct host *host = (struct host *)user_data;
    (void)client;
    if (status != VELTIX_OK || veltix_message_type(reply) != ECHO) {
        fprintf(stderr, "request failed: %s (%s)\n", veltix_status_str(status), error);
        host->wrong++;
        return;
    }
    host->replies++;
}

/* Whether `handle` becomes readable within `timeout_ms`. */
static int readable(veltix_socket_t handle, int timeout_ms) {
    POLL_HANDLE entry;
    entry.fd = handle;
    entry.events = POLL_READABLE;
    entry.revents = 0;
    return poll_handles(&entry, 1, timeout_ms) == 1 && (entry.revents & POLL_READABLE);
}

/* Waits for the handle, then dispatches, until `done` or 10 s without
 * the handle signalling. */
static void run_until(veltix_client_t *client, veltix_socket_t handle, const int *done,
                      int target) {
    while (*done < target) {
        size_t ran = 0;
        if (!readable(handle, 10000)) {
            fprintf(stderr, "the event handle stayed quiet (%d of %d)\n", *done, target);
            failures++;
            return;
        }
        CHECK(veltix_client_dispatch(client, 0, &ran) == VELTIX_OK);
    }
}

int main(int argc, char **argv) {
    veltix_client_config_t config;
    veltix_client_t *client = NULL;
    struct host host = {0, 0, 0};
    veltix_socket_t handle;
    size_t ran = 0;
    int i;

    example_config(&config, argc, argv);
    config.max_workers = 0;
    example_check(veltix_client_new(&config, &client), "veltix_client_new");
    example_check(veltix_client_on_connect(client, on_connect, &host, NULL), "on_connect");
    example_check(veltix_client_on_disconnect(client, on_disconnect, &host, NULL),
                  "on_disconnect");
    example_check(veltix_client_event_fd(client, &handle), "veltix_client_event_fd");
    CHECK(!readable(handle, 0));

    example_check(veltix_client_connect_async(client), "veltix_client_connect_async");
    run_until(client, handle, &host.connected, 1);
    CHECK(host.connected == 1);

    for (i = 0; i < REQUESTS; i++) {
        char text[32];
        int len = sprintf(text, "request %d", i);
        CHECK(veltix_client_request(client, ECHO, (const uint8_t *)text, (size_t)len, 5000,
                                    on_reply, &host) == VELTIX_OK);
    }
    run_until(client, handle, &host.replies, REQUESTS);
    CHECK(host.replies == REQUESTS);
    CHECK(host.wrong == 0);

    /* Everything due ran: the handle is quiet, and dispatch finds nothing. */
    CHECK(veltix_client_dispatch(client, 0, &ran) == VELTIX_OK);
    CHECK(!readable(handle, 50));
    CHECK(veltix_client_dispatch(client, 0, &ran) == VELTIX_OK && ran == 0);

    veltix_client_free(client);
    return checks_result("dispatch host: 100 replies through the event handle");
}
