// veltix.hpp in a program built with -fno-exceptions: the std::error_code
// forms report every failure, callbacks still work.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "veltix.hpp"

using namespace std::chrono_literals;

int main() {
    std::error_code ec;
    auto server = veltix::server::create(veltix::server_config().listen("127.0.0.1", 0), ec);
    if (ec || !server) {
        return 1;
    }
    server.route(200, [](veltix::server_ref self, veltix::peer_id peer, veltix::message_view m) {
        self.reply(peer, m, 200, m.text());
    });
    server.start(ec);
    auto client = veltix::client::create(
        veltix::client_config().server("127.0.0.1", server.port()), ec);
    std::atomic<int> connects{0};
    client.on_connect([&](veltix::client_ref) { ++connects; }, ec);
    client.connect(ec);
    if (ec) {
        std::fprintf(stderr, "connect: %s (%s)\n", ec.message().c_str(), veltix_last_error());
        return 1;
    }
    veltix::message reply = client.send_and_wait(200, "no exceptions", 5s, ec);
    client.send_and_wait(201, "nobody answers", 100ms, ec);
    bool timed_out = ec == veltix::status::timeout;
    for (int i = 0; i < 500 && connects == 0; i++) {
        std::this_thread::sleep_for(10ms);
    }
    if (reply.text() != "no exceptions" || !timed_out || connects != 1) {
        std::fprintf(stderr, "unexpected results\n");
        return 1;
    }
    std::printf("veltix.hpp without exceptions: ok\n");
    return 0;
}
