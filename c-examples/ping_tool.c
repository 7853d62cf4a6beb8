/* Ping tool: measures round trips to a Veltix server (PING answered by PONG)
 * and prints statistics.
 *
 *   ping_tool [host] [port] [count]
 */
#include "example_common.h"

#include <math.h>

int main(int argc, char **argv) {
    int count = argc > 3 ? atoi(argv[3]) : 20;
    veltix_client_config_t config;
    veltix_client_t *client = NULL;
    double min = 1e30, max = 0.0, sum = 0.0, sum_sq = 0.0, mean, stddev;
    int i;

    if (count < 1) {
        count = 1;
    }
    example_config(&config, argc, argv);
    example_check(veltix_client_new(&config, &client), "veltix_client_new");
    example_check(veltix_client_connect(client), "veltix_client_connect");

    for (i = 0; i < count; i++) {
        double rtt = 0.0;
        example_check(veltix_client_ping(client, 2000, &rtt), "veltix_client_ping");
        printf("pong from %s:%u: seq=%d time=%.3f ms\n", config.server_addr, (unsigned)config.port,
               i, rtt);
        min = rtt < min ? rtt : min;
        max = rtt > max ? rtt : max;
        sum += rtt;
        sum_sq += rtt * rtt;
    }
    mean = sum / count;
    stddev = sqrt(fmax(0.0, sum_sq / count - mean * mean));
    printf("%d pings: min/avg/max/stddev = %.3f/%.3f/%.3f/%.3f ms\n", count, min, mean, max,
           stddev);
    veltix_client_free(client);
    return 0;
}
