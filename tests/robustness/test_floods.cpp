// Connection floods past the admission caps: the excess is turned away at once with ERROR server_busy, one
// host cannot take what others need, and everything held is given back.
#include <poll.h>
#include <sys/socket.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <cerrno>
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
    // The sixth place: the legitimate client's session ends a moment after speedcli exits (the server notices
    // the closed connection, then ends the session), so a busy answer right after it is retried.
    const auto sixth_deadline = steady_clock::now() + 5s;
    for (;;) {
        raw_connection sixth(attacker_address(322), server.port());
        REQUIRE(sixth.send(control_hello()));
        const auto reply = sixth.read_frame();
        REQUIRE(reply.status == proto::decode_status::ok);
        if (std::holds_alternative<proto::welcome>(reply.msg)) {
            sessions.push_back(std::move(sixth));
            break;
        }
        REQUIRE(steady_clock::now() < sixth_deadline);
        std::this_thread::sleep_for(50ms);
    }
    // With all six places taken, everyone else is told the server is busy.
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

namespace {

// What a PING flood got out of the server.
struct ping_flood_tally {
    std::uint64_t pings_sent = 0;
    std::uint64_t pongs_received = 0;
    unsigned connections = 0;      // probe connections opened
    unsigned ended_by_server = 0;  // ... that the server closed under the flood
};

// Floods PINGs over probe connections of the session `token` from `host` until `stop` is set (or 15 s, or 500
// million PINGs, whichever comes first), reading every PONG so that the server's writes never block. A
// connection the server ends is replaced by a new one, as an attacker would.
ping_flood_tally flood_pings(const std::string& host, std::uint16_t port, const proto::session_token& token,
                             const std::atomic<bool>& stop) {
    constexpr std::uint64_t kMaxPings = 500'000'000;
    const auto give_up = steady_clock::now() + 15s;
    proto::hello hello;
    hello.kind = proto::connection_kind::probe;
    hello.token = token;
    std::vector<std::uint8_t> pings;
    for (std::uint32_t i = 0; i < 2048; ++i) {
        proto::encode(proto::ping{i, 0}, pings);
    }
    const std::size_t ping_size = pings.size() / 2048;
    const std::size_t pong_size = proto::encode(proto::pong{}).size();
    ping_flood_tally tally;
    std::vector<std::uint8_t> sink(64 * 1024);
    while (!stop && steady_clock::now() < give_up && tally.pings_sent < kMaxPings) {
        raw_connection probe(host, port);
        if (!probe.connected() || !probe.send(proto::encode(hello))) {
            continue;
        }
        ++tally.connections;
        std::size_t pong_bytes = 0;
        std::size_t ping_bytes = 0;
        std::size_t offset = 0;
        while (!stop && steady_clock::now() < give_up &&
               tally.pings_sent + ping_bytes / ping_size < kMaxPings) {
            pollfd ready{probe.fd(), POLLIN | POLLOUT, 0};
            if (::poll(&ready, 1, 10) <= 0) {
                continue;
            }
            if ((ready.revents & (POLLIN | POLLHUP | POLLERR)) != 0) {
                const ssize_t got = ::recv(probe.fd(), sink.data(), sink.size(), MSG_DONTWAIT);
                if (got <= 0 && !(got < 0 && errno == EAGAIN)) {
                    ++tally.ended_by_server;
                    break;
                }
                pong_bytes += got > 0 ? static_cast<std::size_t>(got) : 0;
            }
            if ((ready.revents & POLLOUT) != 0) {
                // The buffer is sent round and round from where the last send stopped, so the byte stream
                // stays whole PINGs even when a send takes only part of it.
                const ssize_t sent = ::send(probe.fd(), pings.data() + offset, pings.size() - offset,
                                            MSG_DONTWAIT | MSG_NOSIGNAL);
                if (sent < 0 && errno != EAGAIN) {
                    ++tally.ended_by_server;
                    break;
                }
                if (sent > 0) {
                    ping_bytes += static_cast<std::size_t>(sent);
                    offset = (offset + static_cast<std::size_t>(sent)) % pings.size();
                }
            }
        }
        tally.pings_sent += ping_bytes / ping_size;
        tally.pongs_received += pong_bytes / pong_size;
        // At most about 100 new connections a second: each floods until the server ends it, so the flood
        // stays continuous, while the test's own churn stays bounded (under ASan every ended connection
        // leaves its buffers in the allocator's quarantine, and about 950 connections in 5 s grew RSS past
        // the robustness suite's memory check).
        std::this_thread::sleep_for(10ms);
    }
    return tally;
}

std::optional<double> idle_rtt_median_ms(std::uint16_t port) {
    const auto run = run_client({"127.0.0.1", "-p", std::to_string(port), "--no-download", "--no-upload",
                                 "--pings", "200", "--ping-interval", "0.005", "-J"});
    INFO(run.process.out << run.process.err);
    if (run.process.exit_code != 0 || !run.json.is_object()) {
        return std::nullopt;
    }
    const auto& idle = run.json["latency"]["idle"];
    CHECK(idle["lost"].get<int>() == 0);
    return idle["rtt_ms"]["median"].get<double>();
}

}  // namespace

TEST_CASE(
    "a PING flood on a probe connection is not answered beyond the rate and does not slow others' probes",
    "[robustness][probe]") {
    watched_server server({});
    const auto baseline = idle_rtt_median_ms(server.port());
    REQUIRE(baseline);

    const std::string host = attacker_address(40);
    raw_connection control(host, server.port());
    REQUIRE(control.connected());
    const auto welcome = open_session(control);
    std::atomic<bool> stop{false};
    ping_flood_tally tally;
    std::thread flooder([&] { tally = flood_pings(host, server.port(), welcome.token, stop); });
    std::this_thread::sleep_for(300ms);  // the flood is under way before the legitimate probes start
    const auto flooded = idle_rtt_median_ms(server.port());
    stop = true;
    flooder.join();
    REQUIRE(flooded);
    INFO("idle RTT median: " << *baseline << " ms alone, " << *flooded
                             << " ms under the flood; flood: " << tally.pings_sent << " PINGs, "
                             << tally.pongs_received << " PONGs, " << tally.connections << " connections, "
                             << tally.ended_by_server << " ended by the server");
    WARN("idle RTT median " << *baseline << " ms alone, " << *flooded << " ms under a flood of "
                            << tally.pings_sent << " PINGs (" << tally.pongs_received << " answered)");
    // The flood was real: far more PINGs than the rate limit answers in the time it ran.
    CHECK(tally.pings_sent > 100'000);
    // Each connection gets its burst and the rate, then is ended after 1000 PINGs over it: at most about a
    // tenth of a flood is answered (common/ping_limiter.hpp), where an unlimited echo answers all of it.
    CHECK(tally.pongs_received * 10 < tally.pings_sent);
    CHECK(tally.ended_by_server >= 1);
    // The legitimate client's probes on the same echo thread. On an idle loopback the median is 0.03 to 0.1
    // ms and varies by about 2x between runs of this test on the shared 2-core machine (the flooder, the
    // server and speedcli share both cores), hence 2x the baseline plus a floor of 0.5 ms for scheduling.
    CHECK(*flooded <= 2 * *baseline + 0.5);
    control.close();
    server.check_recovered();
}
