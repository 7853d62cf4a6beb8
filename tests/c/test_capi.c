/* C tests of libveltix through its header, run by CTest against the
 * reference server at $VELTIX_HOST:$VELTIX_PORT. SIGPIPE keeps its default
 * action here, as in most C hosts: a write to a dead socket must not kill
 * the process. */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "veltix.h"
#include "check.h"


static void sleep_ms(long ms) {
    struct timespec delay;
    delay.tv_sec = ms / 1000;
    delay.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&delay, NULL);
}

static veltix_client_t *new_client(void) {
    veltix_client_config_t config;
    veltix_client_t *client = NULL;
    const char *port = getenv("VELTIX_PORT");
    veltix_client_config_init(&config, sizeof config);
    if (getenv("VELTIX_HOST") != NULL) {
        config.server_addr = getenv("VELTIX_HOST");
    }
    config.port = (uint16_t)(port != NULL ? atoi(port) : 8080);
    CHECK(veltix_client_new(&config, &client) == VELTIX_OK);
    return client;
}

static void test_versions_and_statuses(void) {
    char expected[32];
    snprintf(expected, sizeof expected, "%d.%d.%d", VELTIX_VERSION_MAJOR, VELTIX_VERSION_MINOR,
             VELTIX_VERSION_PATCH);
    CHECK(strcmp(veltix_version(), expected) == 0);
    CHECK(strcmp(veltix_version(), VELTIX_VERSION_STRING) == 0);
    CHECK(strcmp(VELTIX_PROTOCOL_VERSION, "1.0") == 0);
    CHECK(strcmp(veltix_last_error(), "") == 0);
    CHECK(strcmp(veltix_status_str(VELTIX_OK), "ok") == 0);
    CHECK(strcmp(veltix_status_str(-999), "unknown status") == 0);
    CHECK(veltix_client_connect(NULL) == VELTIX_ERR_NULL_POINTER);
    CHECK(strstr(veltix_last_error(), "NULL") != NULL);
}

static void test_round_trip(void) {
    veltix_client_t *client = new_client();
    veltix_message_t *response = NULL;
    veltix_message_t *copy;
    const uint8_t *content;
    size_t len = 0;
    double rtt = 0.0;

    CHECK(veltix_client_connect(client) == VELTIX_OK);
    CHECK(veltix_client_is_connected(client));
    CHECK(veltix_client_send_and_wait(client, 200, (const uint8_t *)"abc", 3, 5000, &response) ==
          VELTIX_OK);
    CHECK(response != NULL);
    content = veltix_message_content(response, &len);
    CHECK(len == 3 && strcmp((const char *)content, "abc") == 0);
    copy = veltix_message_clone(response);
    veltix_message_free(response);
    CHECK(veltix_message_type(copy) == 200);
    veltix_message_free(copy);
    CHECK(veltix_client_ping(client, 5000, &rtt) == VELTIX_OK && rtt > 0.0);
    veltix_client_free(client);
}

struct free_in_callback {
    pthread_mutex_t lock;
    int done;
};

static void free_me(void *user_data, veltix_client_t *client, const veltix_message_t *message) {
    struct free_in_callback *state = (struct free_in_callback *)user_data;
    (void)message;
    veltix_client_free(client); /* must return: it never joins this thread */
    pthread_mutex_lock(&state->lock);
    state->done = 1;
    pthread_mutex_unlock(&state->lock);
}

static void test_free_inside_callback(void) {
    struct free_in_callback state;
    veltix_client_t *client = new_client();
    int i, done = 0;
    pthread_mutex_init(&state.lock, NULL);
    state.done = 0;
    CHECK(veltix_client_on_recv(client, free_me, &state, NULL) == VELTIX_OK);
    CHECK(veltix_client_connect(client) == VELTIX_OK);
    CHECK(veltix_client_send_text(client, 200, "free me") == VELTIX_OK);
    for (i = 0; i < 200 && !done; i++) {
        sleep_ms(25);
        pthread_mutex_lock(&state.lock);
        done = state.done;
        pthread_mutex_unlock(&state.lock);
    }
    CHECK(done);
    pthread_mutex_destroy(&state.lock);
}

static void test_no_sigpipe_after_the_server_closes(void) {
    static uint8_t payload[64 * 1024];
    static const char close_me[] = "{\"cmd\": \"close_me\"}";
    veltix_client_t *client = new_client();
    veltix_status_t status = VELTIX_OK;
    int i;
    CHECK(veltix_client_connect(client) == VELTIX_OK);
    CHECK(veltix_client_send(client, 210, (const uint8_t *)close_me, sizeof close_me - 1) ==
          VELTIX_OK);
    for (i = 0; i < 2000 && status == VELTIX_OK; i++) {
        status = veltix_client_send(client, 230, payload, sizeof payload);
        sleep_ms(1);
    }
    /* IO if the send met the reset first; CLOSED if the reader had already
     * closed the connection during the send; NOT_CONNECTED after. */
    CHECK(status == VELTIX_ERR_IO || status == VELTIX_ERR_CLOSED ||
          status == VELTIX_ERR_NOT_CONNECTED);
    CHECK(veltix_client_wait_until_closed(client, 5000) == VELTIX_OK);
    veltix_client_free(client);
}

int main(void) {
    test_versions_and_statuses();
    test_round_trip();
    test_free_inside_callback();
    test_no_sigpipe_after_the_server_closes();
    return checks_result("all C API checks passed");
}
