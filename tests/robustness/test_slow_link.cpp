// The stall rule against a slow but working path: a 64 kbit/s link with a shallow queue (tbf on lo, in a
// network namespace of its own) must not look like a stopped client under the default stall timeout. On such
// a link TCP overflows the queue in slow start and waits out retransmission timeouts: gaps of a second or two
// without any acknowledged byte are normal there (a 2 s stall timeout fails this test), which is why the
// default is 10 s. Root only; otherwise it says SKIP.
#include <catch2/catch.hpp>

#include "tests/integration/client_json.hpp"
#include "tests/robustness/abuse.hpp"

using namespace speed;
using namespace speed::testing;

TEST_CASE("a 64 kbit/s link is slow, not stalled", "[robustness][concurrent][netns]") {
    if (!can_run_network_tests()) {
        return;
    }
    private_network network({});
    // Ethernet-sized packets, so tbf's bucket holds whole ones, and a queue of up to 400 ms.
    private_network::run("ip", {"link", "set", "lo", "mtu", "1500"});
    private_network::run("tc", {"qdisc", "add", "dev", "lo", "root", "tbf", "rate", "64kbit", "burst", "3000",
                                "latency", "400ms"});
    server_process server;
    const auto run = run_client({"127.0.0.1", "-p", std::to_string(server.port()), "-t", "4", "--pings", "2",
                                 "--loaded-ping-interval", "0", "-J"},
                                60s);
    INFO(run.process.out << run.process.err << server.log());
    REQUIRE(run.process.exit_code == 0);
    for (const char* direction : {"download", "upload"}) {
        const double rate = run.json[direction]["bits_per_second"].get<double>();
        // Both directions share the shaped lo: about 64 kbit/s at most, but moving.
        CHECK(rate > 10e3);
        CHECK(rate < 70e3);  // 64 kbit/s plus what tbf's 3000-byte bucket lets through at once
    }
    CHECK_THAT(server.log(), !Catch::Contains("stopped receiving") && !Catch::Contains("stopped sending"));
}
