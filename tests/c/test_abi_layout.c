/* A program built against an older header: its config structs stop before
 * the fields later versions appended. The library must write and read only
 * the bytes within struct_size (the structs are malloc'd at their exact
 * size, so AddressSanitizer catches a single byte past them) and use the
 * defaults for the fields the program does not have. It also refuses a
 * struct_size larger than it knows (a header newer than the library).
 * Talks to the reference server at $VELTIX_HOST:$VELTIX_PORT. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "veltix.h"
#include "check.h"

/* veltix_client_config_t before send_timeout_ms and the queue bounds. */
struct old_client_config {
    uint32_t struct_size;
    const char *server_addr;
    uint16_t port;
    uint32_t buffer_size;
    uint32_t max_message_size;
    uint32_t handshake_timeout_ms;
    uint32_t max_workers;
    uint32_t retry;
    uint32_t retry_delay_ms;
};

/* veltix_server_config_t before max_outbound_bytes and what followed. */
struct old_server_config {
    uint32_t struct_size;
    const char *host;
    uint16_t port;
    uint32_t buffer_size;
    int32_t max_connection;
    uint32_t max_message_size;
    uint32_t handshake_timeout_ms;
    uint32_t max_workers;
};


static void test_old_client_layout(void) {
    struct old_client_config *config = malloc(sizeof *config);
    veltix_client_t *client = NULL;
    veltix_message_t *reply = NULL;
    const char *port = getenv("VELTIX_PORT");
    size_t len = 0;

    CHECK(config != NULL);
    CHECK(veltix_client_config_init((veltix_client_config_t *)config, sizeof *config) ==
          VELTIX_OK);
    CHECK(config->struct_size == sizeof *config);
    CHECK(strcmp(config->server_addr, "127.0.0.1") == 0 && config->port == 8080);
    CHECK(config->max_workers == 4 && config->retry_delay_ms == 1000);
    if (getenv("VELTIX_HOST") != NULL) {
        config->server_addr = getenv("VELTIX_HOST");
    }
    config->port = (uint16_t)(port != NULL ? atoi(port) : 8080);
    config->max_workers = 1;
    CHECK(veltix_client_new((const veltix_client_config_t *)config, &client) == VELTIX_OK);
    free(config); /* new copied what it needs */
    CHECK(veltix_client_connect(client) == VELTIX_OK);
    CHECK(veltix_client_send_and_wait(client, 200, (const uint8_t *)"old", 3, 5000, &reply) ==
          VELTIX_OK);
    CHECK(reply != NULL && veltix_message_content(reply, &len) != NULL && len == 3);
    veltix_message_free(reply);
    veltix_client_free(client);
}

static void test_old_server_layout(void) {
    struct old_server_config *config = malloc(sizeof *config);
    veltix_server_t *server = NULL;
    CHECK(config != NULL);
    CHECK(veltix_server_config_init((veltix_server_config_t *)config, sizeof *config) ==
          VELTIX_OK);
    CHECK(config->struct_size == sizeof *config && config->max_connection == -1);
    config->host = "127.0.0.1";
    config->port = 0;
    CHECK(veltix_server_new((const veltix_server_config_t *)config, &server) == VELTIX_OK);
    free(config);
    CHECK(veltix_server_start(server) == VELTIX_OK);
    veltix_server_free(server);
}

static void test_sizes_the_library_does_not_know(void) {
    /* A newer header's struct: refused, and nothing is written. */
    unsigned char bigger[sizeof(veltix_client_config_t) + 16];
    veltix_client_config_t config;
    veltix_client_t *client = NULL;
    size_t i;
    int untouched = 1;
    memset(bigger, 0xAB, sizeof bigger);
    CHECK(veltix_client_config_init((veltix_client_config_t *)(void *)bigger, sizeof bigger) ==
          VELTIX_ERR_INVALID_ARGUMENT);
    for (i = 0; i < sizeof bigger; i++) {
        untouched = untouched && bigger[i] == 0xAB;
    }
    CHECK(untouched);
    CHECK(strstr(veltix_last_error(), "struct_size") != NULL);
    /* A struct never initialized (struct_size 0) is refused by new. */
    memset(&config, 0, sizeof config);
    CHECK(veltix_client_new(&config, &client) == VELTIX_ERR_INVALID_ARGUMENT);
    CHECK(client == NULL);
}

int main(void) {
    test_old_client_layout();
    test_old_server_layout();
    test_sizes_the_library_does_not_know();
    return checks_result("older config layouts accepted, unknown sizes refused");
}
