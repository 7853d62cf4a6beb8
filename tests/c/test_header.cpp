// The header compiles as C++ with -Wall -Wextra -Werror -pedantic and its
// extern "C" guards let C++ link against the library.
#include <cstring>
#include <iostream>

#include "veltix.h"

int main() {
    veltix_client_config_t config;
    veltix_client_config_init(&config, sizeof config);
    veltix_client_t *client = nullptr;
    if (veltix_client_new(&config, &client) != VELTIX_OK || client == nullptr) {
        std::cerr << "veltix_client_new: " << veltix_last_error() << "\n";
        return 1;
    }
    bool ok = !veltix_client_is_connected(client) &&
              std::strcmp(veltix_version(), VELTIX_VERSION_STRING) == 0;
    veltix_client_free(client);
    std::cout << "C++ consumer: libveltix " << veltix_version() << "\n";
    return ok ? 0 : 1;
}
