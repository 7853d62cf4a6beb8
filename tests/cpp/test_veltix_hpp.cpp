// Tests of include/veltix.hpp: every wrapper type, the throwing and the
// std::error_code forms, callback lifetimes and exceptions escaping
// callbacks. A libveltix server and clients in this process, on 127.0.0.1.
#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "veltix.hpp"

using namespace std::chrono_literals;

namespace {

int failures = 0;

#define CHECK(cond)                                                                         \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            std::fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n", __FILE__,    \
                         __LINE__, #cond, veltix_last_error());                             \
            failures++;                                                                     \
        }                                                                                   \
    } while (0)

constexpr std::uint16_t ECHO = 200;
constexpr std::uint16_t IGNORED = 201;
constexpr std::uint16_t THROWS = 202;
constexpr std::uint16_t NEWS = 203;

/** Waits up to 5 s for `done()`. */
template <typename Done>
bool eventually(Done done) {
    for (int i = 0; i < 500; i++) {
        if (done()) {
            return true;
        }
        std::this_thread::sleep_for(10ms);
    }
    return done();
}

/** A server on a free port that echoes ECHO and ignores IGNORED. */
veltix::server echo_server(std::uint32_t workers = 2) {
    veltix::server server(veltix::server_config().listen("127.0.0.1", 0).max_workers(workers));
    server.route(ECHO, [](veltix::server_ref self, veltix::peer_id peer, veltix::message_view m) {
        self.reply(peer, m, ECHO, m.text());
    });
    server.route(IGNORED, [](veltix::server_ref, veltix::peer_id, veltix::message_view) {});
    server.start();
    return server;
}

veltix::client_config to(const veltix::server &server) {
    return veltix::client_config().server("127.0.0.1", server.port());
}

void test_callbacks_on_the_io_thread() {
    veltix::server server(
        veltix::server_config().listen("127.0.0.1", 0).callbacks_on_io_thread());
    CHECK(server.raw() != nullptr);
    std::atomic<bool> refused{false};
    server.route(ECHO, [&](veltix::server_ref self, veltix::peer_id peer, veltix::message_view m) {
        // Waiting here would wait for the thread that reads the reply.
        std::error_code ec;
        self.ping(peer, 1s, ec);
        refused = ec == veltix::status::invalid_argument;
        self.reply(peer, m, ECHO, m.text());
    });
    server.start();
    veltix::client client(to(server));
    client.connect();
    CHECK(client.send_and_wait(ECHO, "inline", 5s).text() == "inline");
    CHECK(refused);
}

void test_errors_both_ways() {
    // Nothing listens on the port of a server that was never started.
    veltix::server idle(veltix::server_config().listen("127.0.0.1", 0));
    veltix::client client(veltix::client_config().server("127.0.0.1", 1).handshake_timeout(500ms));
    bool thrown = false;
    try {
        client.connect();
    } catch (const veltix::error &e) {
        thrown = true;
        CHECK(e.code() == veltix::status::connect_failed);
        CHECK(e.status_value() == VELTIX_ERR_CONNECT_FAILED);
        CHECK(std::string(e.what()).find("127.0.0.1:1") != std::string::npos);
    }
    CHECK(thrown);
    std::error_code ec;
    client.connect(ec);
    CHECK(ec == veltix::status::connect_failed);
    CHECK(ec.category().name() == std::string("veltix"));
    CHECK(!veltix::last_error().empty());
    client.send(ECHO, "x", ec);
    CHECK(ec == veltix::status::not_connected);

    // An invalid config: the non-throwing creation gives an empty client.
    auto bad = veltix::client::create(veltix::client_config().max_workers(999), ec);
    CHECK(ec == veltix::status::invalid_argument && !bad);
    thrown = false;
    try {
        veltix::client also_bad(veltix::client_config().max_workers(999));
    } catch (const veltix::error &e) {
        thrown = e.code() == veltix::status::invalid_argument;
    }
    CHECK(thrown);
}

void test_round_trips_and_messages() {
    auto server = echo_server();
    veltix::client client(to(server));
    client.connect();
    CHECK(client.is_connected());
    veltix::message reply = client.send_and_wait(ECHO, "hello", 5s);
    CHECK(reply && reply.type() == ECHO && reply.text() == "hello" && reply.size() == 5);
    // Move-only ownership.
    veltix::message moved = std::move(reply);
    CHECK(!reply && moved.text() == "hello");
    veltix::message empty;
    CHECK(!empty && empty.type() == 0 && empty.text().empty());
    veltix_message_t *raw = moved.release();
    CHECK(!moved && raw != nullptr);
    veltix_message_free(raw);
    // Binary payloads keep their bytes, from any byte container.
    std::string binary("a\0b", 3);
    CHECK(client.send_and_wait(ECHO, binary, 5s).text() == binary);
    std::vector<std::uint8_t> octets{0, 255, 7};
    veltix::message echoed = client.send_and_wait(ECHO, octets, 5s);
    CHECK(echoed.size() == 3 && echoed.data()[1] == 255);
    std::array<char, 2> pair{{'o', 'k'}};
    CHECK(client.send_and_wait(ECHO, pair, 5s).text() == "ok");
    CHECK(client.send_and_wait(ECHO, veltix::bytes(octets.data(), 1), 5s).size() == 1);
    CHECK(client.send_and_wait(ECHO, std::string_view("view"), 5s).text() == "view");
    CHECK(client.ping(5s) > 0.0);
    std::error_code ec;
    auto timed_out = client.send_and_wait(IGNORED, "?", 100ms, ec);
    CHECK(ec == veltix::status::timeout && !timed_out);
}

void test_requests_complete_once() {
    auto server = echo_server();
    veltix::client client(to(server));
    client.connect();
    std::mutex lock;
    std::vector<std::string> outcomes;
    auto record = [&](veltix::client_ref, const veltix::reply_result &result) {
        std::lock_guard<std::mutex> hold(lock);
        outcomes.push_back(result ? "reply " + std::string(result.reply().text())
                                  : result.code().message() + ": " + std::string(result.detail()));
    };
    client.request(ECHO, "r1", 5s, record);
    client.request(IGNORED, "r2", 100ms, record);
    CHECK(eventually([&] {
        std::lock_guard<std::mutex> hold(lock);
        return outcomes.size() == 2;
    }));
    client.request(IGNORED, "r3", 60s, record);
    client.disconnect();
    CHECK(eventually([&] {
        std::lock_guard<std::mutex> hold(lock);
        return outcomes.size() == 3;
    }));
    std::this_thread::sleep_for(100ms);
    std::lock_guard<std::mutex> hold(lock);
    CHECK(outcomes.size() == 3);
    CHECK(outcomes[0] == "reply r1");
    CHECK(outcomes[1].rfind("timed out", 0) == 0);
    CHECK(outcomes[2].rfind("closed", 0) == 0);
    // A refused request never calls back.
    std::error_code ec;
    client.request(ECHO, "r4", 1s, record, ec);
    CHECK(ec == veltix::status::not_connected);
}

void test_callback_state_lives_exactly_as_long_as_needed() {
    auto server = echo_server();
    auto state = std::make_shared<int>(0);
    {
        veltix::client client(to(server));
        client.route(ECHO, [state](veltix::client_ref, veltix::message_view) { ++*state; });
        client.on_connect([state](veltix::client_ref) {});
        CHECK(state.use_count() == 3);
        client.connect();
        client.send(ECHO, "routed");
        CHECK(eventually([&] { return *state == 1; }));
        client.unroute(ECHO);
        CHECK(state.use_count() == 2);  // released by unroute, before it returned
        // Replacing a callback releases the old one.
        client.on_connect([](veltix::client_ref) {});
        CHECK(state.use_count() == 1);
        client.route(ECHO, [state](veltix::client_ref, veltix::message_view) {});
        CHECK(state.use_count() == 2);
        // A refused registration keeps nothing.
        std::error_code ec;
        client.route(ECHO, [state](veltix::client_ref, veltix::message_view) {}, ec);
        CHECK(ec == veltix::status::already_exists && state.use_count() == 2);
    }
    CHECK(state.use_count() == 1);  // the client's destructor released the rest
}

void test_exceptions_stop_in_the_trampoline() {
    auto server = echo_server();
    std::mutex lock;
    std::vector<std::string> caught;
    veltix::set_callback_exception_handler([&](std::exception_ptr thrown) {
        try {
            std::rethrow_exception(thrown);
        } catch (const std::exception &e) {
            std::lock_guard<std::mutex> hold(lock);
            caught.push_back(e.what());
        } catch (int value) {
            std::lock_guard<std::mutex> hold(lock);
            caught.push_back("int " + std::to_string(value));
        }
    });
    veltix::client client(to(server));
    client.route(THROWS, [](veltix::client_ref, veltix::message_view m) {
        if (m.text() == "std") {
            throw std::runtime_error("thrown by a route");
        }
        throw 42;
    });
    server.route(THROWS, [](veltix::server_ref self, veltix::peer_id peer, veltix::message_view m) {
        self.send(peer, THROWS, m.text());
        throw std::logic_error("thrown by a server route");
    });
    client.connect();
    client.send(THROWS, "std");
    client.send(THROWS, "int");
    CHECK(eventually([&] {
        std::lock_guard<std::mutex> hold(lock);
        return caught.size() == 4;
    }));
    CHECK(client.send_and_wait(ECHO, "still fine", 5s).text() == "still fine");
    veltix::set_callback_exception_handler(nullptr);
    std::lock_guard<std::mutex> hold(lock);
    int route = 0, server_route = 0, ints = 0;
    for (const auto &what : caught) {
        route += what == "thrown by a route";
        server_route += what == "thrown by a server route";
        ints += what == "int 42";
    }
    CHECK(route == 1 && server_route == 2 && ints == 1);
}

void test_server_tags_peers_broadcast_and_disconnects() {
    // Declared before the server, so they outlive it: its callbacks run on
    // its workers until it is destroyed (the clients, destroyed first,
    // make it report their departures).
    std::mutex lock;
    std::vector<veltix::peer_id> connected;
    std::vector<std::pair<veltix::peer_id, veltix::disconnect_reason>> left;
    veltix::server server(veltix::server_config().listen("127.0.0.1", 0));
    server.on_connect([&](veltix::server_ref, veltix::peer_id peer) {
        std::lock_guard<std::mutex> hold(lock);
        connected.push_back(peer);
    });
    server.on_disconnect([&](veltix::server_ref, veltix::peer_id peer, veltix::disconnect_reason why) {
        std::lock_guard<std::mutex> hold(lock);
        left.emplace_back(peer, why);
    });
    server.start();
    CHECK(server.port() != 0);
    std::error_code route_ec;
    server.route(NEWS, [](veltix::server_ref, veltix::peer_id, veltix::message_view) {}, route_ec);
    CHECK(!route_ec);
    server.route(NEWS, [](veltix::server_ref, veltix::peer_id, veltix::message_view) {}, route_ec);
    CHECK(route_ec == veltix::status::already_exists);
    server.unroute(NEWS, route_ec);
    server.unroute(NEWS, route_ec);
    CHECK(route_ec == veltix::status::not_found);
    server.event_fd(route_ec);
    CHECK(route_ec == veltix::status::invalid_argument);  // worker mode

    std::atomic<int> news{0};
    std::vector<veltix::client> clients;
    for (int i = 0; i < 3; i++) {
        clients.emplace_back(to(server));
        clients.back().route(NEWS, [&](veltix::client_ref, veltix::message_view) { ++news; });
        clients.back().connect();
    }
    CHECK(eventually([&] {
        std::lock_guard<std::mutex> hold(lock);
        return connected.size() == 3;
    }));
    CHECK(server.client_count() == 3 && server.peers().size() == 3);
    std::vector<veltix::peer_id> ids;
    {
        std::lock_guard<std::mutex> hold(lock);
        ids = connected;
    }
    server.set_tag(ids[0], "room", "red");
    server.set_tag(ids[1], "room", "blue");
    std::error_code tag_ec;
    server.add_tag(ids[1], "room", "green", tag_ec);  // refused: add does not replace
    CHECK(tag_ec == veltix::status::already_exists);
    server.set_tag(ids[2], "name", std::string(300, 'n'));  // longer than a first guess
    CHECK(server.get_tag(ids[1], "room") == std::optional<std::string>("blue"));
    CHECK(server.get_tag(ids[2], "name")->size() == 300);
    CHECK(!server.get_tag(ids[0], "name"));
    CHECK(server.peers_with_tag("room").size() == 2);
    CHECK(server.peers_with_tag("room", std::string("red")) == std::vector<veltix::peer_id>{ids[0]});
    server.remove_tag(ids[0], "room");
    CHECK(server.peers_with_tag("room").size() == 1);
    veltix::endpoint where = server.peer_address(ids[0]);
    CHECK(where.address == "127.0.0.1" && where.port != 0);

    CHECK(server.broadcast(NEWS, "to all but one", {ids[0]}) == 2);
    CHECK(eventually([&] { return news == 2; }));

    // A request from the server, answered by the client.
    clients[0].route(ECHO, [](veltix::client_ref self, veltix::message_view m) {
        self.reply(m, ECHO, "answer to " + std::string(m.text()));
    });
    CHECK(server.send_and_wait(ids[0], ECHO, "q", 5s).text() == "answer to q");
    CHECK(server.ping(ids[0], 5s) > 0.0);

    // Both sides see the disconnection.
    std::atomic<int> manual{0};
    std::string cause = "unset";
    clients[1].on_disconnect([&](veltix::client_ref, const veltix::disconnect_state &state) {
        if (state.reason == veltix::disconnect_reason::manual && state.permanent) {
            cause = std::string(state.cause);
            ++manual;
        }
    });
    clients[1].disconnect();
    clients[1].wait_until_closed(5s);
    CHECK(manual == 1 && cause.empty());
    server.close_client(ids[2]);
    CHECK(eventually([&] {
        std::lock_guard<std::mutex> hold(lock);
        return left.size() == 2;
    }));
    {
        std::lock_guard<std::mutex> hold(lock);
        for (const auto &entry : left) {
            if (entry.first == ids[1]) {
                CHECK(entry.second == veltix::disconnect_reason::peer_closed);
            } else {
                CHECK(entry.first == ids[2] && entry.second == veltix::disconnect_reason::manual);
            }
        }
    }
    std::error_code ec;
    server.send(ids[2], NEWS, "gone", ec);
    CHECK(ec == veltix::status::not_connected);
}

void test_dispatch_mode_on_this_thread() {
    auto server = echo_server();
    veltix::client client(to(server).max_workers(0));
    const auto host = std::this_thread::get_id();
    std::vector<std::string> seen;
    client.on_connect([&](veltix::client_ref) { seen.push_back("connect"); });
    client.route(ECHO, [&](veltix::client_ref, veltix::message_view m) {
        CHECK(std::this_thread::get_id() == host);
        seen.push_back(std::string(m.text()));
    });
    CHECK(client.event_fd() != VELTIX_INVALID_SOCKET);
    client.connect_async();
    for (int i = 0; i < 100 && seen.empty(); i++) {
        client.dispatch(50ms);
    }
    client.send(ECHO, "one");
    client.send(ECHO, "two");
    for (int i = 0; i < 100 && seen.size() < 3; i++) {
        client.dispatch(50ms);
    }
    CHECK((seen == std::vector<std::string>{"connect", "one", "two"}));
    veltix::client workers(to(server));
    std::error_code ec;
    workers.dispatch(0ms, ec);
    CHECK(ec == veltix::status::invalid_argument);
}

void test_liveness_settings_and_statistics() {
    veltix::server server(veltix::server_config()
                              .listen("127.0.0.1", 0)
                              .heartbeat(50ms, 1000ms)
                              .keepalive(std::chrono::seconds(30), std::chrono::seconds(5), 3)
                              .idle_timeout(10000ms));
    server.route(ECHO, [](veltix::server_ref self, veltix::peer_id peer, veltix::message_view m) {
        self.reply(peer, m, ECHO, m.text());
    });
    server.start();
    veltix::client client(to(server)
                              .heartbeat(50ms, 1000ms)
                              .keepalive(std::chrono::seconds(20), std::chrono::seconds(4), 2)
                              .retry(3, 100ms)
                              .backoff(1000ms));
    std::error_code ec;
    client.statistics(ec);
    CHECK(ec == veltix::status::not_connected);
    client.connect();
    CHECK(client.send_and_wait(ECHO, "counted", 5s).text() == "counted");
    // The server's heartbeat PINGs keep the client's side alive, so only
    // the server measures round trips by heartbeat; the client by ping.
    std::this_thread::sleep_for(200ms);
    client.ping(5s);
    veltix::stats mine = client.statistics();
    CHECK(mine.frames_out >= 1 && mine.bytes_out >= 15 + 7 && mine.frames_in >= 1);
    CHECK(mine.last_rtt.has_value() && mine.since_last_frame < 1000ms);
    veltix::stats theirs = server.peer_statistics(server.peers().at(0));
    CHECK(theirs.frames_in >= 1 && theirs.bytes_in >= 15 + 7 && theirs.last_rtt.has_value());
    server.peer_statistics(12345, ec);
    CHECK(ec == veltix::status::not_connected);
    // Invalid settings are refused at creation.
    auto bad = veltix::client::create(to(server).heartbeat(100ms, 50ms), ec);
    CHECK(ec == veltix::status::invalid_argument && !bad);
    // The reply spin: set on both sides, bounded.
    CHECK(veltix::client_config().raw().reply_spin_us == 50);
    CHECK(veltix::client_config().reply_spin(0us).raw().reply_spin_us == 0);
    CHECK(veltix::server_config().reply_spin(20us).raw().reply_spin_us == 20);
    auto spinning = veltix::client::create(to(server).reply_spin(2000us), ec);
    CHECK(ec == veltix::status::invalid_argument && !spinning);
    veltix::client quiet(to(server).reply_spin(0us));
    quiet.connect();
    CHECK(quiet.send_and_wait(ECHO, "no spin", 5s).text() == "no spin");
    // Each failed attempt says when the next comes.
    std::mutex lock;
    std::vector<veltix::disconnect_state> states;
    veltix::client refused(veltix::client_config().server("127.0.0.1", 1).retry(2, 100ms));
    refused.on_disconnect([&](veltix::client_ref, const veltix::disconnect_state &state) {
        std::lock_guard<std::mutex> hold(lock);
        states.push_back(state);
    });
    refused.connect(ec);
    std::lock_guard<std::mutex> hold(lock);
    CHECK(states.size() >= 3 && states.back().permanent);
    CHECK(states.size() >= 3 && states[1].attempt == 1 && !states[1].permanent &&
          states[1].next_delay == 100ms);
}

void test_logger() {
    std::mutex lock;
    std::vector<std::string> lines;
    auto keep = std::make_shared<int>(0);
    veltix::set_logger(
        [&, keep](veltix::log_level level, std::string_view text) {
            std::lock_guard<std::mutex> hold(lock);
            if (level <= veltix::log_level::warn) {
                lines.emplace_back(text);
            }
        },
        veltix::log_level::warn);
    CHECK(keep.use_count() == 2);
    {
        veltix::client client(veltix::client_config().server("127.0.0.1", 1));
        std::error_code ec;
        client.connect(ec);
    }
    veltix::set_logger(nullptr);
    CHECK(keep.use_count() == 1);  // the replaced sink was released
    std::lock_guard<std::mutex> hold(lock);
    CHECK(!lines.empty());
}

void test_proxy_protocol_setting() {
    // From a trusted balancer a PROXY header is required: a plain client
    // from that address is closed during its handshake.
    veltix::server server(
        veltix::server_config().listen("127.0.0.1", 0).proxy_protocol_from("10.0.0.0/8, 127.0.0.1"));
    server.start();
    veltix::client client(veltix::client_config().server("127.0.0.1", server.port()));
    std::error_code ec;
    client.connect(ec);
    CHECK(ec == veltix::status::handshake_failed);
    bool refused = false;
    try {
        veltix::server bad(veltix::server_config().proxy_protocol_from("not an address"));
    } catch (const veltix::error &e) {
        refused = e.code() == veltix::status::invalid_argument &&
                  std::string(e.what()).find("proxy_protocol_from") != std::string::npos;
    }
    CHECK(refused);

    // Draining: a connected client is closed, and nobody else gets in.
    veltix::server open(veltix::server_config().listen("127.0.0.1", 0));
    open.start();
    veltix::client drained(veltix::client_config().server("127.0.0.1", open.port()));
    drained.connect();
    open.drain(0);
    drained.wait_until_closed(std::chrono::seconds(5));
    CHECK(!drained.is_connected());
    veltix::client late(veltix::client_config().server("127.0.0.1", open.port()));
    std::error_code late_ec;
    late.connect(late_ec);
    CHECK(late_ec == veltix::status::connect_failed);
}

void test_io_threads_setting() {
    CHECK(veltix::server_config().io_threads(3).raw().io_threads == 3);
    // Two loops: two clients, one on each, are echoed and both get a
    // broadcast.
    veltix::server server(veltix::server_config().listen("127.0.0.1", 0).io_threads(2));
    server.route(ECHO, [](veltix::server_ref self, veltix::peer_id peer, veltix::message_view m) {
        self.reply(peer, m, ECHO, m.text());
    });
    server.start();
    veltix::client first(to(server));
    veltix::client second(to(server));
    std::atomic<int> broadcasts{0};
    for (veltix::client *client : {&first, &second}) {
        client->route(NEWS, [&](veltix::client_ref, veltix::message_view) { broadcasts++; });
        client->connect();
    }
    CHECK(first.send_and_wait(ECHO, "one", 5s).text() == "one");
    CHECK(second.send_and_wait(ECHO, "two", 5s).text() == "two");
    CHECK(server.broadcast(NEWS, "to both") == 2);
    CHECK(eventually([&] { return broadcasts == 2; }));
    bool refused = false;
    try {
        veltix::server bad(veltix::server_config().io_threads(257));
    } catch (const veltix::error &e) {
        refused = e.code() == veltix::status::invalid_argument &&
                  std::string(e.what()).find("io_threads") != std::string::npos;
    }
    CHECK(refused);
}

void test_cluster_settings_without_a_bus() {
    // A bus nobody answers on (port 1): the node reports it lost, and
    // everything local works, tag sends included.
    std::mutex lock;
    std::condition_variable changed;
    std::vector<bool> states;
    veltix::server server(veltix::server_config().listen("127.0.0.1", 0).cluster(
        "redis://127.0.0.1:1", "cpp-test", 77));
    server.on_cluster_state([&](veltix::server_ref, bool connected) {
        std::lock_guard<std::mutex> hold(lock);
        states.push_back(connected);
        changed.notify_all();
    });
    server.start();
    {
        std::unique_lock<std::mutex> hold(lock);
        changed.wait_for(hold, std::chrono::seconds(5), [&] { return !states.empty(); });
        CHECK(states == std::vector<bool>{false});
    }
    veltix::cluster_stats stats = server.cluster_statistics();
    CHECK(!stats.connected && stats.node_id == 77);
    veltix::client client(veltix::client_config().server("127.0.0.1", server.port()));
    std::mutex got_lock;
    std::condition_variable got_changed;
    std::string got;
    client.on_recv([&](veltix::client_ref, veltix::message_view m) {
        std::lock_guard<std::mutex> hold(got_lock);
        got = std::string(m.text());
        got_changed.notify_all();
    });
    client.connect();
    for (int i = 0; i < 100 && server.peers().empty(); ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    veltix::peer_id peer = server.peers().at(0);
    CHECK((peer >> 37) == 77);  // the node id in the peer id
    server.set_tag(peer, "room", "red");
    CHECK(server.send_to_tag("room", std::string("red"), 220, veltix::bytes("hello")) == 1);
    CHECK(server.send_to_tag("room", std::string("blue"), 220, veltix::bytes("no")) == 0);
    {
        std::unique_lock<std::mutex> hold(got_lock);
        got_changed.wait_for(hold, std::chrono::seconds(5), [&] { return !got.empty(); });
        CHECK(got == "hello");
    }
    std::vector<veltix::cluster_node> nodes = server.cluster_nodes();
    CHECK(nodes.size() == 1 && nodes[0].node_id == 77 && nodes[0].clients == 1);
    bool refused = false;
    try {
        veltix::server tls(veltix::server_config().cluster("rediss://127.0.0.1:1", "x", 1));
    } catch (const veltix::error &e) {
        refused = e.code() == veltix::status::invalid_argument &&
                  std::string(e.what()).find("cluster_bus") != std::string::npos;
    }
    CHECK(refused);
}

}  // namespace

int main() {
    test_errors_both_ways();
    test_callbacks_on_the_io_thread();
    test_round_trips_and_messages();
    test_requests_complete_once();
    test_callback_state_lives_exactly_as_long_as_needed();
    test_exceptions_stop_in_the_trampoline();
    test_server_tags_peers_broadcast_and_disconnects();
    test_dispatch_mode_on_this_thread();
    test_liveness_settings_and_statistics();
    test_logger();
    test_proxy_protocol_setting();
    test_cluster_settings_without_a_bus();
    test_io_threads_setting();
    if (failures != 0) {
        std::fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    std::printf("all veltix.hpp checks passed (libveltix %s)\n", veltix::version().data());
    return 0;
}
