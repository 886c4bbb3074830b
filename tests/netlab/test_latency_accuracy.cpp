// Idle round trips against ground truth: with a known delay added by netem-tun, speedcli's idle median must
// be within 0.5 ms of ping's median on the same path.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>

#include "tests/netlab/reference_tools.hpp"

using namespace speed::netlab;

namespace {

constexpr unsigned kProbes = 40;
constexpr double kProbeIntervalSeconds = 0.05;
constexpr double kToleranceMs = 0.5;
#ifdef SPEED_SANITIZED_BUILD
// ASan and UBSan roughly double the cost of speedcli's and speedsrv's probe path (about +0.85 ms over ping
// here): the target is the product's, checked by the release build; a sanitizer build still runs everything
// else.
constexpr bool kAssertTolerance = false;
#else
constexpr bool kAssertTolerance = true;
#endif

void check_idle_rtt_with_added_delay(double added_rtt_ms) {
    skip_unless_installed("ping", "iputils-ping");
    lab_config config;
    config.upload.delay_ms = added_rtt_ms / 2.0;
    config.download.delay_ms = added_rtt_ms / 2.0;
    // ping takes its receive time from the kernel (SO_TIMESTAMP); so do speedcli and speedsrv
    // (SO_TIMESTAMPING), so their processes run at normal priority here, as users run them.
    lab link(config);
    auto& server = link.start_speedsrv();

    const ping_result ping = ping_server(link, kProbes, kProbeIntervalSeconds);
    const auto speedcli = run_speedcli(link, server.port(),
                                       {"--no-download", "--no-upload", "--pings", std::to_string(kProbes),
                                        "--ping-interval", std::to_string(kProbeIntervalSeconds)});
    INFO(ping.output << speedcli.process.out << speedcli.process.err << "\nspeedsrv's log:\n"
                     << server.log());
    REQUIRE(speedcli.process.exit_code == 0);
    REQUIRE(ping.rtt_ms.size() == kProbes);
    const auto& idle = speedcli.json["latency"]["idle"];
    REQUIRE(idle["samples"] == kProbes);

    const double ping_median = median(ping.rtt_ms);
    const double speedcli_median = idle["rtt_ms"]["median"].get<double>();
    std::printf(
        "netlab: +%.0f ms: ping median %.3f ms (min %.3f), speedcli median %.3f ms (min %.3f, p90 %.3f): "
        "difference of medians %+.3f ms\n",
        added_rtt_ms, ping_median, *std::min_element(ping.rtt_ms.begin(), ping.rtt_ms.end()), speedcli_median,
        idle["rtt_ms"]["min"].get<double>(), idle["rtt_ms"]["p90"].get<double>(),
        speedcli_median - ping_median);
    CHECK(ping_median >= added_rtt_ms);  // the lab adds what it says
    if (kAssertTolerance) {
        CHECK(speedcli_median == Approx(ping_median).margin(kToleranceMs));
    } else {
        WARN("sanitizer build: the " << kToleranceMs << " ms tolerance is checked by the release build only");
    }
}

}  // namespace

TEST_CASE("idle RTT with 20 ms added is within 0.5 ms of ping", "[netlab][accuracy]") {
    check_idle_rtt_with_added_delay(20.0);
}

TEST_CASE("idle RTT with 40 ms added is within 0.5 ms of ping", "[netlab][accuracy]") {
    check_idle_rtt_with_added_delay(40.0);
}

// speedcli --servers against ground truth: a far server behind 20 ms of added delay and a near one in the
// client's own namespace. The near one is chosen, and the far one's figure, the fastest of three
// HELLO-WELCOME round trips, is the path's round trip as ping sees it plus the two applications' wake-ups.
TEST_CASE("speedcli --servers times a server 20 ms away as ping does and picks the near one",
          "[netlab][accuracy]") {
    skip_unless_installed("ping", "iputils-ping");
    lab_config config;
    config.upload.delay_ms = 10.0;
    config.download.delay_ms = 10.0;
    lab link(config);
    auto& far = link.start_speedsrv();
    // The client namespace is the lab's own: any port is free there.
    link.start_in_client(
        {speed::testing::speedsrv_path(), "--bind", kClientAddress, "--port", "5299", "--allow-root"},
        "listening on");
    const std::string list_path = "/tmp/speed-netlab-servers-" + std::to_string(::getpid());
    {
        std::ofstream list(list_path);
        list << kServerAddress << ":" << far.port() << "\n" << kClientAddress << ":5299\n";
    }
    const ping_result ping = ping_server(link, 20, 0.05);
    const auto run = speed::testing::run_client_via(
        link.in_client({}),
        {"--servers", list_path, "--no-download", "--no-upload", "--pings", "3", "--json"});
    std::remove(list_path.c_str());
    INFO(ping.output << run.process.out << run.process.err);
    REQUIRE(run.process.exit_code == 0);
    const auto& selection = run.json["server_selection"];
    CHECK(selection["chosen"] == 1);
    const double far_ms = selection["candidates"][0]["rtt_ms"].get<double>();
    const double ping_min = *std::min_element(ping.rtt_ms.begin(), ping.rtt_ms.end());
    std::printf("netlab: --servers: far %.3f ms (ping min %.3f, median %.3f), near %.3f ms\n", far_ms,
                ping_min, median(ping.rtt_ms), selection["candidates"][1]["rtt_ms"].get<double>());
    CHECK(far_ms >= 20.0);  // the lab adds what it says, and no round trip beats it
    // The fastest of three against ping's fastest of 20: both see the path's least delay; the applications
    // add their wake-ups (0.1-0.5 ms measured for the idle probes, above), so 1 ms allows for them.
    if (kAssertTolerance) {
        CHECK(far_ms <= ping_min + 1.0);
    }
    CHECK(selection["candidates"][1]["rtt_ms"].get<double>() < 5.0);
    CHECK(run.json["server"]["port"] == 5299);
}
