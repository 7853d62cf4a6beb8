/* Request/response client: each veltix_client_send_and_wait() blocks until
 * the message carrying its request id comes back, whatever else arrives.
 *
 *   request_client [host] [port] [count]
 */
#include "example_common.h"

#define REQUEST 200

int main(int argc, char **argv) {
    int count = argc > 3 ? atoi(argv[3]) : 5;
    veltix_client_config_t config;
    veltix_client_t *client = NULL;
    int i;

    example_config(&config, argc, argv);
    example_check(veltix_client_new(&config, &client), "veltix_client_new");
    example_check(veltix_client_connect(client), "veltix_client_connect");

    for (i = 0; i < count; i++) {
        char request[64];
        veltix_message_t *response = NULL;
        size_t len = 0;
        const uint8_t *content;
        int n = snprintf(request, sizeof request, "request #%d", i);

        example_check(veltix_client_send_and_wait(client, REQUEST, (const uint8_t *)request,
                                                  (size_t)n, 5000, &response),
                      "veltix_client_send_and_wait");
        content = veltix_message_content(response, &len);
        printf("reply to id %u: %s\n", (unsigned)veltix_message_request_id(response),
               (const char *)content);
        if (len != (size_t)n || memcmp(content, request, len) != 0) {
            fprintf(stderr, "unexpected reply\n");
            veltix_message_free(response);
            veltix_client_free(client);
            return 1;
        }
        veltix_message_free(response); /* the response is ours */
    }
    veltix_client_free(client);
    return 0;
}
