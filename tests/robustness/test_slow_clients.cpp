// Silent and trickling clients: each is closed by the deadline of the phase it stalls in, however it spreads
// its bytes, while a legitimate client is served.
#include <catch2/catch.hpp>

#include <thread>

#include "tests/robustness/abuse.hpp"

using namespace speed;
using namespace speed::testing;

namespace {

// Sends `bytes` one byte every `gap` until the server closes the connection; returns when it was closed,
// counted from the first byte, or nothing if `limit` passed first.
std::optional<std::chrono::milliseconds> trickle(raw_connection& connection,
                                                 const std::vector<std::uint8_t>& bytes,
                                                 std::chrono::milliseconds gap,
                                                 std::chrono::milliseconds limit) {
    const auto started = steady_clock::now();
    for (std::uint8_t byte : bytes) {
        if (steady_clock::now() - started > limit) {
            return std::nullopt;
        }
        if (!connection.send(std::vector<std::uint8_t>{byte}) || connection.closed_by_server()) {
            return std::chrono::duration_cast<std::chrono::milliseconds>(steady_clock::now() - started);
        }
        std::this_thread::sleep_for(gap);
    }
    const auto left =
        limit - std::chrono::duration_cast<std::chrono::milliseconds>(steady_clock::now() - started);
    if (auto closed = connection.wait_closed(left)) {
        return std::chrono::duration_cast<std::chrono::milliseconds>(steady_clock::now() - started);
    }
    return std::nullopt;
}

}  // namespace

TEST_CASE("silent connections are closed at the handshake deadline", "[robustness][concurrent]") {
    watched_server server({"--handshake-timeout", "2"});
    std::vector<raw_connection> silent;
    for (unsigned i = 0; i < 48; ++i) {
        silent.emplace_back(attacker_address(200 + i % 4), server.port());  // 12 per host
        REQUIRE(silent.back().connected());
    }
    const auto opened = steady_clock::now();
    CHECK(legitimate_test_passes(server.port()));
    for (auto& connection : silent) {
        const auto waited =
            std::chrono::duration_cast<std::chrono::milliseconds>(steady_clock::now() - opened);
        const auto closed = connection.wait_closed(6s - std::min(waited, std::chrono::milliseconds(6s)));
        REQUIRE(closed);
        // Sent an ERROR (timeout) and closed: not before the deadline, not long after.
        const auto at = waited + *closed;
        CHECK(at >= 1500ms);
        CHECK(at < 6s);
    }
    silent.clear();
    server.check_recovered();
}

TEST_CASE("the default handshake deadline is at most 10 s", "[robustness][concurrent]") {
    server_process server;
    raw_connection silent(attacker_address(210), server.port());
    const auto opened = steady_clock::now();
    CHECK(error_reply(silent, 12s) == proto::error_code::timeout);
    REQUIRE(silent.wait_closed(2s));
    CHECK(steady_clock::now() - opened <= 10s);
}

TEST_CASE("a client trickling its HELLO is closed at the deadline, not per byte",
          "[robustness][concurrent]") {
    watched_server server({"--handshake-timeout", "2"});
    raw_connection connection(attacker_address(220), server.port());
    const auto closed = trickle(connection, control_hello(), 200ms, 8s);
    REQUIRE(closed);
    CHECK(*closed >= 1500ms);
    CHECK(*closed < 5s);
    server.check_recovered();
}

TEST_CASE("a session that goes silent, or trickles its request, is closed at the idle deadline",
          "[robustness][concurrent]") {
    watched_server server({"--idle-timeout", "2"});
    raw_connection silent(attacker_address(230), server.port());
    open_session(silent);
    raw_connection trickler(attacker_address(231), server.port());
    open_session(trickler);
    const auto opened = steady_clock::now();

    proto::test_request request;
    const auto closed = trickle(trickler, proto::encode(request), 200ms, 8s);
    REQUIRE(closed);
    CHECK(*closed >= 1500ms);
    CHECK(*closed < 5s);

    CHECK(error_reply(silent, 3s) == proto::error_code::timeout);
    const auto silent_closed = silent.wait_closed(3s);
    REQUIRE(silent_closed);
    CHECK(steady_clock::now() - opened < 6s);
    server.check_recovered();
}
