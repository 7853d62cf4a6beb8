// Cookbook: a game loop that receives in dispatch mode.
//
// A game client owns its thread: it simulates and renders at a fixed frame
// rate and must never block on the network. With max_workers(0) the
// library starts no callback threads; each frame calls dispatch(0), which
// runs the handlers that are due, on this thread, and returns at once. So
// handlers touch game state without locks. Nothing in the frame waits for
// the network: connect_async() and request() deliver their outcomes in a
// later frame.
//
// It talks to a server that echoes type 200 (the Python reference, or
// c-examples/echo_server): each frame sends the player's position, and the
// echo stands for the server's authoritative state.
//
// Run: ./game_loop [host] [port]   (else $VELTIX_HOST/$VELTIX_PORT, else 127.0.0.1:8080)
#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>

#include "veltix.hpp"

namespace {

constexpr std::uint16_t kPosition = 200;
constexpr int kFrames = 60;
constexpr auto kFrame = std::chrono::microseconds(1000000 / 60);

std::string env_or(const char *name, const char *fallback) {
    const char *value = std::getenv(name);
    return value != nullptr && value[0] != '\0' ? value : fallback;
}

}  // namespace

int main(int argc, char **argv) {
    using clock = std::chrono::steady_clock;
    const std::string host = argc > 1 ? argv[1] : env_or("VELTIX_HOST", "127.0.0.1");
    const auto port = static_cast<std::uint16_t>(std::stoi(argc > 2 ? argv[2] : env_or("VELTIX_PORT", "8080")));

    // Game state: touched only by this thread, handlers included.
    const auto loop_thread = std::this_thread::get_id();
    bool connected = false;
    int server_updates = 0;
    int off_thread = 0;
    std::string last_state;

    veltix::client client(veltix::client_config().server(host, port).max_workers(0));
    client.on_connect([&](veltix::client_ref) { connected = true; });
    client.route(kPosition, [&](veltix::client_ref, veltix::message_view state) {
        off_thread += std::this_thread::get_id() != loop_thread;
        last_state = std::string(state.text());
        ++server_updates;
    });
    client.connect_async();  // returns at once; on_connect runs in a later frame

    auto next_frame = clock::now();
    auto worst_dispatch = clock::duration::zero();
    int frame = 0;
    for (int ticks = 0; frame < kFrames && ticks < 10 * kFrames; ++ticks) {
        // 1. Network: run the handlers that are due, never waiting.
        const auto before = clock::now();
        client.dispatch(std::chrono::milliseconds(0));
        worst_dispatch = std::max(worst_dispatch, clock::now() - before);

        // 2. Simulation, once connected: move, and tell the server.
        if (connected) {
            client.send(kPosition, "x=" + std::to_string(frame) + ",y=0");
            ++frame;
        }

        // 3. Render, then wait for the next frame.
        next_frame += kFrame;
        std::this_thread::sleep_until(next_frame);
    }
    // A few more frames for the last echoes.
    for (int extra = 0; extra < 30 && server_updates < frame; ++extra) {
        std::this_thread::sleep_for(kFrame);
        client.dispatch(std::chrono::milliseconds(0));
    }

    const double worst_ms = std::chrono::duration<double, std::milli>(worst_dispatch).count();
    std::cout << "game loop: " << frame << " frames, " << server_updates << " server updates, "
              << off_thread << " off the loop thread, last " << last_state << ", worst dispatch "
              << worst_ms << " ms\n";
    return frame == kFrames && server_updates == kFrames && off_thread == 0 ? 0 : 1;
}
