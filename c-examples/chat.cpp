// chat: a chat room in one program with veltix.hpp, a libveltix server and
// three clients (alice, bob, carol) on 127.0.0.1.
//
//   chat            (prints the room's traffic, then a summary line)
//
// The server keeps each member's name in a tag, relays what one says to
// the others (a broadcast with an except list), answers "who is here", and
// runs polls by asking every other member with send_and_wait from inside
// its route callback. Both sides report disconnections.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "veltix.hpp"

using namespace std::chrono_literals;

namespace {

// Client -> server.
constexpr std::uint16_t JOIN = 300;  // payload: name; reply: welcome line
constexpr std::uint16_t SAY = 301;   // payload: text
constexpr std::uint16_t WHO = 302;   // reply: names, comma-separated
constexpr std::uint16_t POLL = 303;  // payload: question; reply: tally
// Server -> client.
constexpr std::uint16_t CHAT = 310;    // "name: text"
constexpr std::uint16_t NOTICE = 311;  // "name joined" / "name left"
constexpr std::uint16_t ASK = 312;     // a poll question; the reply is the vote

std::mutex print_lock;

void say_line(const std::string &line) {
    std::lock_guard<std::mutex> hold(print_lock);
    std::printf("%s\n", line.c_str());
    std::fflush(stdout);
}

std::string name_of(veltix::server_ref room, veltix::peer_id peer) {
    return room.get_tag(peer, "name").value_or("someone");
}

/** Names of members who left: a peer's tags go with its connection, so
 * on_disconnect reads the name that JOIN also recorded here. */
struct roster {
    std::mutex lock;
    std::vector<std::pair<veltix::peer_id, std::string>> names;

    void add(veltix::peer_id peer, const std::string &name) {
        std::lock_guard<std::mutex> hold(lock);
        names.emplace_back(peer, name);
    }
    std::string take(veltix::peer_id peer) {
        std::lock_guard<std::mutex> hold(lock);
        for (auto it = names.begin(); it != names.end(); ++it) {
            if (it->first == peer) {
                std::string name = it->second;
                names.erase(it);
                return name;
            }
        }
        return "someone";
    }
};

/** The server: the room's rules are its routes. */
veltix::server open_room() {
    veltix::server room(veltix::server_config().listen("127.0.0.1", 0).max_workers(4));
    auto members = std::make_shared<roster>();  // lives as long as the callbacks
    room.route(JOIN, [members](veltix::server_ref self, veltix::peer_id peer,
                               veltix::message_view m) {
        std::string name(m.text());
        self.set_tag(peer, "name", name);
        members->add(peer, name);
        self.broadcast(NOTICE, name + " joined", {peer});
        self.reply(peer, m, JOIN,
                   "welcome " + name + ", " + std::to_string(self.client_count()) + " here");
    });
    room.route(SAY, [](veltix::server_ref self, veltix::peer_id peer, veltix::message_view m) {
        self.broadcast(CHAT, name_of(self, peer) + ": " + std::string(m.text()), {peer});
    });
    room.route(WHO, [](veltix::server_ref self, veltix::peer_id peer, veltix::message_view m) {
        std::string names;
        for (veltix::peer_id member : self.peers_with_tag("name")) {
            names += (names.empty() ? "" : ",") + name_of(self, member);
        }
        self.reply(peer, m, WHO, names);
    });
    // send_and_wait from inside a callback: ask everyone else, then answer.
    room.route(POLL, [](veltix::server_ref self, veltix::peer_id peer, veltix::message_view m) {
        int yes = 0, no = 0;
        for (veltix::peer_id member : self.peers_with_tag("name")) {
            if (member == peer) {
                continue;
            }
            std::error_code ec;
            veltix::message vote = self.send_and_wait(member, ASK, m.text(), 2s, ec);
            (!ec && vote.text() == "yes" ? yes : no)++;
        }
        self.reply(peer, m, POLL, std::to_string(yes) + " yes, " + std::to_string(no) + " no");
    });
    room.on_disconnect([members](veltix::server_ref self, veltix::peer_id peer,
                                 veltix::disconnect_reason) {
        std::string name = members->take(peer);
        say_line("[server] " + name + " left");
        self.broadcast(NOTICE, name + " left");
    });
    room.start();
    return room;
}

/** A member: prints what it receives and votes yes to every poll. */
struct member {
    std::string name;
    veltix::client client;
    std::atomic<int> lines{0};

    member(std::string who, std::uint16_t port)
        : name(std::move(who)), client(veltix::client_config().server("127.0.0.1", port)) {
        auto show = [this](veltix::client_ref, veltix::message_view m) {
            say_line("[" + name + "] " + std::string(m.text()));
            ++lines;
        };
        client.route(CHAT, show);
        client.route(NOTICE, show);
        client.route(ASK, [this](veltix::client_ref self, veltix::message_view m) {
            say_line("[" + name + "] votes yes to: " + std::string(m.text()));
            self.reply(m, ASK, "yes");
        });
        client.on_disconnect([this](veltix::client_ref, const veltix::disconnect_state &state) {
            if (state.permanent) {
                say_line("[" + name + "] disconnected");
            }
        });
        client.connect();
        say_line("[" + name + "] " + std::string(client.send_and_wait(JOIN, name, 5s).text()));
    }
};

bool wait_for(const std::atomic<int> &counter, int at_least) {
    for (int i = 0; i < 500 && counter < at_least; i++) {
        std::this_thread::sleep_for(10ms);
    }
    return counter >= at_least;
}

}  // namespace

int main() {
    try {
        veltix::server room = open_room();
        std::uint16_t port = room.port();
        say_line("[server] listening on 127.0.0.1:" + std::to_string(port));

        member alice("alice", port);
        member bob("bob", port);  // alice sees "bob joined"
        member carol("carol", port);  // alice and bob see "carol joined"
        wait_for(alice.lines, 2);
        wait_for(bob.lines, 1);

        alice.client.send(SAY, "hi all");  // to bob and carol
        bob.client.send(SAY, "hello alice");  // to alice and carol
        wait_for(carol.lines, 2);
        std::string who(carol.client.send_and_wait(WHO, "", 5s).text());
        say_line("[carol] here: " + who);
        std::string tally(alice.client.send_and_wait(POLL, "pizza tonight?", 10s).text());
        say_line("[alice] poll: " + tally);

        carol.client.disconnect();  // the server says "carol left" to the others
        carol.client.wait_until_closed(5s);
        wait_for(alice.lines, 4);
        wait_for(bob.lines, 3);
        std::printf("chat: %s here, poll %s, alice %d lines, bob %d lines, carol %d lines\n",
                    who.c_str(), tally.c_str(), alice.lines.load(), bob.lines.load(),
                    carol.lines.load());
    } catch (const veltix::error &e) {
        std::fprintf(stderr, "chat: %s\n", e.what());
        return 1;
    }
    return 0;
}
