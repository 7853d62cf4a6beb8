/* Shared helpers of the libveltix examples: where to connect and how to fail. */
#ifndef VELTIX_EXAMPLE_COMMON_H
#define VELTIX_EXAMPLE_COMMON_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L /* nanosleep, clock_gettime */
#endif

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "veltix.h"

/* Fills `config` with the defaults and the server given as
 * `program [host] [port]`, else $VELTIX_HOST / $VELTIX_PORT, else
 * 127.0.0.1:8080. */
static inline void example_config(veltix_client_config_t *config, int argc, char **argv) {
    const char *host = argc > 1 ? argv[1] : getenv("VELTIX_HOST");
    const char *port = argc > 2 ? argv[2] : getenv("VELTIX_PORT");
    veltix_client_config_init(config, sizeof *config);
    if (host != NULL && host[0] != '\0') {
        config->server_addr = host;
    }
    if (port != NULL && port[0] != '\0') {
        config->port = (uint16_t)atoi(port);
    }
}

/* Prints what failed (status name and the library's detail) and exits. */
static inline void example_check(veltix_status_t status, const char *what) {
    if (status != VELTIX_OK) {
        fprintf(stderr, "%s failed: %s (%s)\n", what, veltix_status_str(status),
                veltix_last_error());
        exit(1);
    }
}

static inline void example_sleep_ms(long ms) {
    struct timespec delay;
    delay.tv_sec = ms / 1000;
    delay.tv_nsec = (ms % 1000) * 1000000L;
    nanosleep(&delay, NULL);
}

#endif
