/* Echo/chat client: sends each argument after host and port as a text
 * message (type 200) and prints what the server sends back, from the
 * on_recv callback running on a worker thread.
 *
 *   echo_client [host] [port] [message...]
 */
#include "example_common.h"

#include <pthread.h>

#define CHAT 200

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t changed = PTHREAD_COND_INITIALIZER;
static int received = 0;

/* Worker thread; `message` is borrowed for this call only. */
static void on_recv(void *user_data, veltix_client_t *client, const veltix_message_t *message) {
    size_t len = 0;
    const char *text = (const char *)veltix_message_content(message, &len);
    (void)user_data;
    (void)client;
    printf("< %s (type %u, %zu bytes)\n", text, (unsigned)veltix_message_type(message), len);
    pthread_mutex_lock(&lock);
    received++;
    pthread_cond_signal(&changed);
    pthread_mutex_unlock(&lock);
}

int main(int argc, char **argv) {
    static char *default_lines[] = {"hello", "from", "C"};
    char **lines = argc > 3 ? argv + 3 : default_lines;
    int count = argc > 3 ? argc - 3 : 3;
    veltix_client_config_t config;
    veltix_client_t *client = NULL;
    struct timespec deadline;
    int i;

    example_config(&config, argc, argv);
    example_check(veltix_client_new(&config, &client), "veltix_client_new");
    example_check(veltix_client_on_recv(client, on_recv, NULL, NULL), "veltix_client_on_recv");
    example_check(veltix_client_connect(client), "veltix_client_connect");
    printf("connected to %s:%u\n", config.server_addr, (unsigned)config.port);

    for (i = 0; i < count; i++) {
        printf("> %s\n", lines[i]);
        example_check(veltix_client_send_text(client, CHAT, lines[i]), "veltix_client_send_text");
    }

    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += 5;
    pthread_mutex_lock(&lock);
    while (received < count) {
        if (pthread_cond_timedwait(&changed, &lock, &deadline) != 0) {
            break;
        }
    }
    i = received;
    pthread_mutex_unlock(&lock);

    veltix_client_free(client);
    if (i < count) {
        fprintf(stderr, "only %d of %d echoes arrived\n", i, count);
        return 1;
    }
    return 0;
}
