/* Cookbook: broadcasting game state at a fixed tick rate.
 *
 * A game server sends the world's state to every player 20 times a
 * second. The tick loop sleeps until absolute deadlines
 * (clock_nanosleep with TIMER_ABSTIME on CLOCK_MONOTONIC), so a slow
 * tick does not push every later one back. Each tick is one
 * veltix_server_broadcast(): the frame is encoded once and written to
 * each player from the calling thread. A player that stops reading is
 * cut off at max_outbound_bytes instead of growing the server's memory.
 *
 * Here three players in this process count the ticks and check their
 * order and spacing. Their callbacks run on one worker each
 * (max_workers = 1: in arrival order), and a mutex guards what they count.
 *
 * Run: ./tick_broadcast
 */
#include "../example_common.h" /* first: it sets _POSIX_C_SOURCE */

#include <pthread.h>

enum { STATE = 201, PLAYERS = 3, HZ = 20, TICKS = 20 };

struct player {
    veltix_client_t *client;
    pthread_mutex_t lock;
    long received;
    long out_of_order;
    long last_tick;
    double last_at_ms;
    double worst_gap_ms;
};

static double now_ms(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec * 1000.0 + (double)now.tv_nsec / 1e6;
}

static void on_state(void *user_data, veltix_client_t *client, const veltix_message_t *message) {
    struct player *player = user_data;
    long tick = atol((const char *)veltix_message_content(message, NULL) + 5); /* "tick N ..." */
    double at = now_ms();
    (void)client;
    pthread_mutex_lock(&player->lock);
    if (tick != player->last_tick + 1) {
        player->out_of_order++;
    }
    if (player->received > 0 && at - player->last_at_ms > player->worst_gap_ms) {
        player->worst_gap_ms = at - player->last_at_ms;
    }
    player->last_tick = tick;
    player->last_at_ms = at;
    player->received++;
    pthread_mutex_unlock(&player->lock);
}

int main(void) {
    veltix_server_config_t server_config;
    veltix_server_t *server = NULL;
    struct player players[PLAYERS];
    struct timespec deadline;
    const long period_ns = 1000000000L / HZ;
    double started, worst_late_ms = 0.0;
    int ok = 1;

    veltix_server_config_init(&server_config, sizeof server_config);
    server_config.host = "127.0.0.1";
    server_config.port = 0;
    example_check(veltix_server_new(&server_config, &server), "server_new");
    example_check(veltix_server_start(server), "server_start");

    for (int i = 0; i < PLAYERS; i++) {
        veltix_client_config_t config;
        memset(&players[i], 0, sizeof players[i]);
        pthread_mutex_init(&players[i].lock, NULL);
        players[i].last_tick = -1;
        veltix_client_config_init(&config, sizeof config);
        config.port = veltix_server_port(server);
        config.max_workers = 1; /* this player's callbacks in arrival order */
        example_check(veltix_client_new(&config, &players[i].client), "client_new");
        example_check(veltix_client_route(players[i].client, STATE, on_state, &players[i], NULL),
                      "route");
        example_check(veltix_client_connect(players[i].client), "connect");
    }
    while (veltix_server_client_count(server) < PLAYERS) {
        example_sleep_ms(1);
    }

    /* The tick loop: absolute deadlines, one broadcast per tick. */
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    started = now_ms();
    for (long tick = 0; tick < TICKS; tick++) {
        char state[64];
        size_t sent = 0;
        double late = now_ms() - (started + (double)tick * 1000.0 / HZ);
        int len = snprintf(state, sizeof state, "tick %ld players %d", tick, PLAYERS);
        if (late > worst_late_ms) {
            worst_late_ms = late;
        }
        example_check(veltix_server_broadcast(server, STATE, (const uint8_t *)state, (size_t)len,
                                              NULL, 0, &sent),
                      "broadcast");
        deadline.tv_nsec += period_ns;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &deadline, NULL) != 0) {
            /* EINTR: sleep on to the same deadline */
        }
    }
    example_sleep_ms(100); /* the last tick's delivery */

    for (int i = 0; i < PLAYERS; i++) {
        pthread_mutex_lock(&players[i].lock);
        printf("player %d: %ld ticks, %ld out of order, widest gap %.1f ms\n", i,
               players[i].received, players[i].out_of_order, players[i].worst_gap_ms);
        ok = ok && players[i].received == TICKS && players[i].out_of_order == 0;
        pthread_mutex_unlock(&players[i].lock);
        veltix_client_free(players[i].client);
        pthread_mutex_destroy(&players[i].lock);
    }
    veltix_server_free(server);
    printf("tick: %d Hz for %d ticks to %d players, %s, ticks late by at most %.1f ms\n", HZ, TICKS,
           PLAYERS, ok ? "all delivered in order" : "LOST OR REORDERED", worst_late_ms);
    return ok ? 0 : 1;
}
