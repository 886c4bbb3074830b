// speedcli against a real iperf3 server (tests/support/iperf3.hpp: Debian's, or $SPEED_IPERF3) on the port it
// expects a speedsrv: it says what it met at once (exit 3), instead of waiting for a WELCOME that never
// comes. Skipped, with the reason, without iperf3.
#include <catch2/catch.hpp>

#include <chrono>

#include "tests/integration/client_json.hpp"
#include "tests/integration/iperf3_server.hpp"

using namespace speed::testing;
using namespace std::chrono_literals;

TEST_CASE("speedcli meets an iperf3 server: it says so at once and exits 3",
          "[integration][iperf3][iperf3-binary]") {
    if (!have_iperf3()) {
        return;
    }
    iperf3_server iperf3;
    const auto started = std::chrono::steady_clock::now();
    const auto run = run_client(
        {"127.0.0.1", "-p", std::to_string(iperf3.port), "-t", "1", "--connect-timeout", "20", "-J"});
    INFO(run.process.out << run.process.err);
    CHECK(run.process.exit_code == 3);
    CHECK_THAT(run.json["error"].get<std::string>(), Catch::Contains("runs an iperf3 server, not speedsrv") &&
                                                         Catch::Contains("PARAM_EXCHANGE") &&
                                                         Catch::Contains("test it with speedcli --iperf3"));
    // Told by iperf3's first byte, not by the end of --connect-timeout (20 s here).
    CHECK(std::chrono::steady_clock::now() - started < 10s);
}

TEST_CASE("speedcli meets a busy iperf3 server: ACCESS_DENIED is named too",
          "[integration][iperf3][iperf3-binary]") {
    if (!have_iperf3()) {
        return;
    }
    iperf3_server iperf3;
    const busy_iperf3_client busy(iperf3);
    const auto run = run_client({"127.0.0.1", "-p", std::to_string(iperf3.port), "-t", "1", "-J"});
    INFO(run.process.out << run.process.err);
    CHECK(run.process.exit_code == 3);
    CHECK_THAT(run.json["error"].get<std::string>(),
               Catch::Contains("runs an iperf3 server") && Catch::Contains("ACCESS_DENIED"));
}
