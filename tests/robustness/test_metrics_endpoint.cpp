// The --metrics HTTP endpoint under abuse: slow, junk, oversized and surplus connections are closed within
// its deadline or at once, and speedsrv keeps serving tests (and scrapes) throughout.
#include <catch2/catch.hpp>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <random>
#include <thread>

#include "tests/robustness/abuse.hpp"
#include "tests/support/http_client.hpp"

using namespace speed;
using namespace speed::testing;

namespace {

std::vector<std::uint8_t> bytes_of(const std::string& text) {
    return {text.begin(), text.end()};
}

// The endpoint's limits (server/metrics_http.hpp): 4 scrapes at once, --handshake-timeout from accept to the
// answer (1.5 s here rather than the default 5 s, so the test waits out the deadline in a third of the time).
constexpr std::size_t kScrapeSlots = 4;
constexpr auto kScrapeDeadline = 1500ms;
// Scheduling slack on top of the deadline for a loaded 2-core machine (the sanitizer runs are the slowest).
constexpr auto kSlack = 2s;

}  // namespace

TEST_CASE(
    "slowloris, surplus, junk and oversized requests to --metrics neither wedge speedsrv nor stop its tests",
    "[robustness][concurrent][metrics]") {
    watched_server server({"--metrics", "127.0.0.1:0", "--handshake-timeout", "1.5"});
    const std::uint16_t metrics_port = metrics_port_of(server.process());

    // Slowloris: every scrape slot held by a request head that trickles in a byte at a time.
    std::vector<raw_connection> slow;
    for (std::size_t i = 0; i < kScrapeSlots; ++i) {
        slow.emplace_back("127.0.0.1", metrics_port);
        REQUIRE(slow.back().connected());
        REQUIRE(slow.back().send(bytes_of("GET /metrics HTTP/1.1\r\nX-Slow: ")));
    }
    const auto opened = steady_clock::now();
    // A speed test runs meanwhile (the endpoint shares the control thread with the sessions).
    bool test_passed = false;
    std::thread legitimate([&] { test_passed = legitimate_test_passes(server.port()); });
    // With every slot taken, further connections are closed at once, unread.
    for (int i = 0; i < 16; ++i) {
        raw_connection surplus("127.0.0.1", metrics_port);
        REQUIRE(surplus.connected());
        CHECK(surplus.wait_closed(kSlack));
    }
    std::vector<bool> closed(slow.size(), false);
    std::size_t still_open = slow.size();
    while (still_open > 0 && steady_clock::now() - opened < kScrapeDeadline + kSlack) {
        for (std::size_t i = 0; i < slow.size(); ++i) {
            if (!closed[i] && (!slow[i].send(bytes_of("a")) || slow[i].closed_by_server())) {
                closed[i] = true;
                --still_open;
                // Not before the deadline: the trickle kept it busy until then.
                CHECK(steady_clock::now() - opened >= kScrapeDeadline - 500ms);
            }
        }
        std::this_thread::sleep_for(100ms);
    }
    CHECK(still_open == 0);
    legitimate.join();
    CHECK(test_passed);
    slow.clear();

    // Junk (TLS-like binary, then text that is no request line) and an oversized head: each connection is
    // refused and closed, at the latest at the deadline.
    std::mt19937 random(16);
    std::vector<std::uint8_t> binary(4096);
    for (auto& byte : binary) {
        byte = static_cast<std::uint8_t>(random());
    }
    const std::vector<std::vector<std::uint8_t>> attacks{
        binary, bytes_of(std::string("\x16\x03\x01\x02\x00\x01\r\n", 8)), bytes_of("hello there\r\n\r\n"),
        bytes_of("GET /metrics HTTP/1.1\r\n" + std::string(1 << 20, 'H')),
        bytes_of("GET /metrics HTTP/1.1\r\n" + std::string(100, 'x') + ": y\r\n")};
    for (const auto& attack : attacks) {
        raw_connection junk("127.0.0.1", metrics_port);
        REQUIRE(junk.connected());
        junk.send(attack);  // may fail half-way: the server closes an oversized head after its limit
        CHECK(junk.wait_closed(kScrapeDeadline + kSlack));
    }
    // Too many headers: refused with 431 as soon as the head ends.
    std::string many_headers = "GET /metrics HTTP/1.1\r\n";
    for (int i = 0; i < 100; ++i) {
        many_headers += "X-" + std::to_string(i) + ": 1\r\n";
    }
    CHECK(http_exchange(metrics_port, many_headers + "\r\n", kScrapeDeadline).status == 431);

    // The endpoint serves scrapes again, and the server is back at its baseline.
    const auto scrape = http_get(metrics_port, "/metrics");
    CHECK(scrape.status == 200);
    CHECK(
        sample_value(
            scrape.body,
            R"(speedsrv_tests_completed_total{protocol="tcp",direction="upload",client_protocol="speed"})") >=
        1.0);
    server.check_recovered();
}

namespace {

void send_udp_junk(std::uint16_t port, int datagrams) {
    const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd >= 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const std::string junk = "not a speedsrv datagram";
    for (int i = 0; i < datagrams; ++i) {
        REQUIRE(::sendto(fd, junk.data(), junk.size(), 0, reinterpret_cast<const sockaddr*>(&to),
                         sizeof to) == static_cast<ssize_t>(junk.size()));
    }
    ::close(fd);
}

}  // namespace

TEST_CASE("the metrics count refusals, failed handshakes and UDP junk by reason, exactly",
          "[robustness][concurrent][metrics]") {
    watched_server server({"--metrics", "127.0.0.1:0", "--max-handshakes-per-host", "2",
                           "--max-sessions-per-host", "1", "--handshake-timeout", "1"});
    const std::uint16_t metrics_port = metrics_port_of(server.process());
    const auto value = [&](const std::string& series, double expected) {
        return scraped_value(metrics_port, series, expected);
    };

    // watched_server ran a legitimate test for its baseline: count from here.
    const std::string start = http_get(metrics_port, "/metrics").body;
    const double accepted_before = sample_value(start, "speedsrv_connections_accepted_total").value_or(-1);
    const double admitted_before =
        sample_value(start, R"(speedsrv_admissions_total{stage="handshake"})").value_or(-1);
    REQUIRE(accepted_before >= 0);

    // Two silent connections fill one host's handshake slots; three more from it are refused at accept.
    std::vector<raw_connection> silent;
    for (int i = 0; i < 2; ++i) {
        silent.emplace_back(attacker_address(0), server.port());
    }
    std::this_thread::sleep_for(100ms);  // accepted and counted before the surplus arrives
    for (int i = 0; i < 3; ++i) {
        raw_connection surplus(attacker_address(0), server.port());
        CHECK(error_reply(surplus) == proto::error_code::server_busy);
    }
    CHECK(value(R"(speedsrv_refusals_total{reason="handshake_admission"})", 3) == 3);
    for (auto& connection : silent) {
        CHECK(connection.wait_closed(5s));
    }
    CHECK(value(R"(speedsrv_handshakes_total{result="timeout"})", 2) == 2);

    // Another protocol version.
    raw_connection other_version(attacker_address(1), server.port());
    proto::hello hello;
    hello.version = proto::kProtocolVersion + 1;
    REQUIRE(other_version.send(proto::encode(hello)));
    CHECK(error_reply(other_version) == proto::error_code::version_mismatch);
    CHECK(value(R"(speedsrv_refusals_total{reason="version"})", 1) == 1);

    // A second session from a host with --max-sessions-per-host 1.
    raw_connection first(attacker_address(2), server.port());
    open_session(first);
    raw_connection second(attacker_address(2), server.port());
    REQUIRE(second.send(control_hello()));
    CHECK(error_reply(second) == proto::error_code::server_busy);
    CHECK(value(R"(speedsrv_refusals_total{reason="session_admission"})", 1) == 1);
    CHECK(value("speedsrv_sessions_active", 1) == 1);
    first.close();
    // The session's end: closed by the client before any test.
    CHECK(value(R"(speedsrv_sessions_total{protocol="none",outcome="ok",client_protocol="speed"})", 1) == 1);

    // Junk at the UDP port (the TCP port's number): dropped as malformed, each counted.
    send_udp_junk(server.port(), 25);
    CHECK(value(R"(speedsrv_udp_datagrams_dropped_total{reason="malformed"})", 25) == 25);

    // Every TCP connection above, and nothing else, went through accept.
    CHECK(value("speedsrv_connections_accepted_total", accepted_before + 8) == accepted_before + 8);
    CHECK(value(R"(speedsrv_admissions_total{stage="handshake"})", admitted_before + 5) ==
          admitted_before + 5);
    server.check_recovered();
}
