// Connection floods past the admission caps: the excess is turned away at once with ERROR server_busy, one
// host cannot take what others need, and everything held is given back.
#include <catch2/catch.hpp>

#include <thread>

#include "tests/integration/client_json.hpp"
#include "tests/robustness/abuse.hpp"

using namespace speed;
using namespace speed::testing;

namespace {

struct flood_result {
    unsigned held = 0;     // still open, no answer: in handshake
    unsigned refused = 0;  // ERROR server_busy, then closed
    unsigned other = 0;
};

// Opens `count` silent connections from `host` (added to `kept`).
void open_silent(const std::string& host, unsigned count, std::uint16_t port,
                 std::vector<raw_connection>& kept) {
    for (unsigned i = 0; i < count; ++i) {
        kept.emplace_back(host, port);
        REQUIRE(kept.back().connected());
    }
}

// Sorts connections by the server's answer, once it had a moment to give it (well within the handshake
// deadline, so no connection held is released by it yet).
flood_result classify(std::vector<raw_connection>& connections) {
    std::this_thread::sleep_for(300ms);
    flood_result result;
    for (auto& connection : connections) {
        const auto reply = connection.read_frame(0ms);
        if (reply.status == proto::decode_status::need_more && !connection.closed_by_server()) {
            ++result.held;
        } else if (reply.status == proto::decode_status::ok &&
                   std::holds_alternative<proto::error>(reply.msg) &&
                   std::get<proto::error>(reply.msg).code == proto::error_code::server_busy) {
            ++result.refused;
        } else {
            ++result.other;
        }
    }
    return result;
}

}  // namespace

TEST_CASE("a flood from one host is capped per host while others are still served", "[robustness]") {
    // The flood's hosts share a /24 and hold no session: the per-network cap and the places kept for hosts
    // with a session are lifted, so that the global cap is what holds them.
    watched_server server({"--handshake-timeout", "3", "--max-handshakes", "64", "--max-handshakes-per-host",
                           "8", "--max-handshakes-per-network", "1000", "--reserved-handshakes", "0"});
    std::vector<raw_connection> first;
    std::vector<raw_connection> second;
    open_silent(attacker_address(300), 200, server.port(), first);
    open_silent(attacker_address(301), 200, server.port(), second);
    const auto a = classify(first);
    const auto b = classify(second);
    CHECK(a.held == 8);
    CHECK(a.refused == 192);
    CHECK(b.held == 8);
    CHECK(b.refused == 192);
    CHECK(a.other + b.other == 0);
    CHECK(legitimate_test_passes(server.port()));
    first.clear();
    second.clear();
    server.check_recovered();
}

TEST_CASE("a flood from many hosts hits the global handshake cap, then recovers", "[robustness]") {
    // The flood's hosts share a /24 and hold no session: the per-network cap and the places kept for hosts
    // with a session are lifted, so that the global cap is what holds them.
    watched_server server({"--handshake-timeout", "3", "--max-handshakes", "64", "--max-handshakes-per-host",
                           "8", "--max-handshakes-per-network", "1000", "--reserved-handshakes", "0"});
    std::vector<raw_connection> connections;
    for (unsigned h = 0; h < 12; ++h) {
        open_silent(attacker_address(310 + h), 8, server.port(), connections);
    }
    const auto total = classify(connections);
    CHECK(total.held == 64);
    CHECK(total.refused == 12 * 8 - 64);
    CHECK(total.other == 0);
    CHECK_THAT(server.process().log(), Catch::Contains("too many connections being set up"));
    connections.clear();
    server.check_recovered();
}

TEST_CASE("sessions are capped per host and in total", "[robustness]") {
    watched_server server({"--max-sessions", "6", "--max-sessions-per-host", "2", "--idle-timeout", "20"});
    std::vector<raw_connection> sessions;
    // One host opens five sessions: two are served, three are told the server is busy.
    unsigned busy = 0;
    for (unsigned i = 0; i < 5; ++i) {
        raw_connection connection(attacker_address(320), server.port());
        connection.send(control_hello());
        const auto reply = connection.read_frame();
        REQUIRE(reply.status == proto::decode_status::ok);
        if (const auto* error = std::get_if<proto::error>(&reply.msg)) {
            CHECK(error->code == proto::error_code::server_busy);
            CHECK_THAT(error->message, Catch::Contains("already runs 2 tests from"));
            ++busy;
        } else {
            sessions.push_back(std::move(connection));
        }
    }
    CHECK(busy == 3);
    CHECK(sessions.size() == 2);
    // Two more hosts take three more places; the legitimate client gets the last one.
    for (unsigned i = 0; i < 3; ++i) {
        sessions.emplace_back(attacker_address(321 + i / 2), server.port());
        open_session(sessions.back());
    }
    CHECK(legitimate_test_passes(server.port()));
    // With all six places taken, everyone else is told the server is busy.
    sessions.emplace_back(attacker_address(322), server.port());
    open_session(sessions.back());
    const auto refused = run_client({"127.0.0.1", "-p", std::to_string(server.port()), "--pings", "0", "-J"});
    CHECK(refused.process.exit_code == 4);
    REQUIRE(refused.json.is_object());
    CHECK_THAT(refused.json["error"].get<std::string>(), Catch::Contains("busy"));
    // A session that ends gives its place back at once.
    sessions.pop_back();
    std::this_thread::sleep_for(300ms);
    CHECK(legitimate_test_passes(server.port()));
    sessions.clear();
    server.check_recovered();
}
