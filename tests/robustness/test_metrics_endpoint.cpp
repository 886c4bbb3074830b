// The --metrics HTTP endpoint under abuse: slow, junk, oversized and surplus connections are closed within
// its deadline or at once, and speedsrv keeps serving tests (and scrapes) throughout.
#include <catch2/catch.hpp>

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

std::uint16_t metrics_port_of(server_process& server) {
    const std::string log = server.log();
    const std::string marker = "metrics: serving http://127.0.0.1:";
    const auto at = log.find(marker);
    INFO(log);
    REQUIRE(at != std::string::npos);
    return static_cast<std::uint16_t>(std::stoi(log.substr(at + marker.size())));
}

// The endpoint's limits (server/metrics_http.hpp): 4 scrapes at once, 5 s from accept to the answer.
constexpr std::size_t kScrapeSlots = 4;
constexpr auto kScrapeDeadline = 5s;
// Scheduling slack on top of the deadline for a loaded 2-core machine (the sanitizer runs are the slowest).
constexpr auto kSlack = 2s;

}  // namespace

TEST_CASE(
    "slowloris, surplus, junk and oversized requests to --metrics neither wedge speedsrv nor stop its tests",
    "[robustness][metrics]") {
    watched_server server({"--metrics", "127.0.0.1:0"});
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
    CHECK(sample_value(scrape.body, R"(speedsrv_tests_completed_total{protocol="tcp",direction="upload"})") >=
          1.0);
    server.check_recovered();
}
