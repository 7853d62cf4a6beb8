/* Links against the installed libveltix and checks the header and library
 * agree. */
#include <stdio.h>
#include <string.h>

#include "veltix.h"

int main(void) {
    veltix_client_config_t config;
    veltix_client_t *client = NULL;
    veltix_client_config_init(&config, sizeof config);
    if (veltix_client_new(&config, &client) != VELTIX_OK) {
        fprintf(stderr, "veltix_client_new: %s\n", veltix_last_error());
        return 1;
    }
    veltix_client_free(client);
    if (strcmp(veltix_version(), VELTIX_VERSION_STRING) != 0) {
        fprintf(stderr, "header %s, library %s\n", VELTIX_VERSION_STRING, veltix_version());
        return 1;
    }
    printf("consumer linked libveltix %s\n", veltix_version());
    return 0;
}
