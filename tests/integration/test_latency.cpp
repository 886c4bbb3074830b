// Latency on loopback: idle and loaded series, in-band RTT, grade, RPM and congestion control.
#include <catch2/catch.hpp>

#include "tests/integration/client_json.hpp"

using namespace speed::testing;
using nlohmann::json;

TEST_CASE("loaded latency, in-band RTT, grade and responsiveness are reported", "[integration][latency]") {
    server_process server;
    const auto run =
        run_client({"127.0.0.1", "-p", std::to_string(server.port()), "-t", "2", "-O", "0.5", "--pings", "10",
                    "--ping-interval", "0.01", "--loaded-ping-interval", "0.05", "-J"});
    INFO(run.process.out << run.process.err);
    REQUIRE(run.process.exit_code == 0);
    const json& j = run.json;
    for (const char* direction : {"download", "upload"}) {
        INFO(direction);
        const json& latency = j[direction]["latency"];
        // The series covers the receiver's 2 s window only, at one probe per 50 ms: 40. The window's ends are
        // placed from the arrival of the receiver's interval reports, which a saturated machine delays by up
        // to a few probe periods (39-41 measured; this test failed once in eight runs on the shared 2-core
        // machine with 36-42 and a tighter stable part, the assertion not captured): 34-46 still tells the
        // window from a series a quarter longer than it.
        CHECK(latency["sent"].get<int>() >= 34);
        CHECK(latency["sent"].get<int>() <= 46);
        CHECK(latency["lost"] == 0);
        CHECK(latency["samples"].get<int>() + latency["lost"].get<int>() == latency["sent"].get<int>());
        // Loopback has no queue to speak of: a probe that waits behind the data plane shows in the
        // application round trip (the kernel-corrected rtt_ms has exactly that wait removed). 20 ms is two
        // orders of magnitude above the 0.1-0.3 ms measured here with both cores saturated.
        CHECK(latency["application_rtt_ms"]["p90"].get<double>() < 20.0);
        // Corrections only ever remove time, and every loopback reply has a kernel stamp.
        CHECK(latency["rtt_ms"]["median"].get<double>() <=
              latency["application_rtt_ms"]["median"].get<double>());
        CHECK(latency["corrections"]["client_wait"] == latency["samples"]);
        // Every reply carries the server's hold: removed, or rejected when above the 10 ms a probe thread
        // that does nothing else can plausibly take (latency::kMostServerHoldNs; the unit tests check the
        // bound). A starved server does hold a reply that long: with two busy loops and a second copy of this
        // test beside it, 1-3 of 40 holds of 10-128 ms were rejected in 11 of 12 runs (3 of 40 at most); on a
        // machine running only the suite, one in about ten runs. The label says which happened.
        const int rejected = latency["corrections"]["server_hold_rejected"].get<int>();
        CHECK(latency["corrections"]["server_hold"].get<int>() + rejected == latency["samples"].get<int>());
        CHECK(rejected <= latency["samples"].get<int>() / 4);
        CHECK(latency["timestamps"] == (rejected == 0 ? "kernel" : "application"));
        // No queue on loopback: under 5 ms of increase, whatever the load.
        CHECK(latency["increase_ms"].get<double>() < 5.0);
        CHECK(latency["in_band"]["samples"].get<int>() >= 10);
        // RPM is from application round trips in the window's stable part (its last half here: 1 s): the
        // probe part lies between 60000 / the slowest and 60000 / the fastest application round trip. The
        // kernel-corrected round trips are shorter, so an RPM taken from them lies above that range.
        const json& rpm = latency["responsiveness"];
        CHECK(rpm["stable_seconds"][1].get<double>() - rpm["stable_seconds"][0].get<double>() ==
              Approx(1.0).margin(0.15));
        CHECK(rpm["foreign_samples"].get<int>() >= 16);
        CHECK(rpm["foreign_samples"].get<int>() <= 24);
        CHECK(rpm["foreign_rpm"].get<double>() <=
              60000.0 / latency["application_rtt_ms"]["min"].get<double>());
        CHECK(rpm["foreign_rpm"].get<double>() >=
              60000.0 / latency["application_rtt_ms"]["max"].get<double>());
        CHECK(rpm["kernel_corrected_rpm"].get<double>() > latency["responsiveness_rpm"].get<double>());
    }
    // Loopback has no queue: DSLReports' A+ (under 5 ms of increase).
    CHECK(j["bufferbloat_grade"] == "A+");
    CHECK(j["responsiveness_rpm"].get<double>() > 0.0);
}

// Self probes: application round trips on each direction's own data connections (docs/methodology.md,
// "Responsiveness"). The receiver probes (the client for a download, the server for an upload); loopback's
// queue is the sender's socket buffer, which a self probe's answer waits behind and a probe on its own
// connection does not.
TEST_CASE("self probes time application round trips on the load connections of both directions",
          "[integration][latency]") {
    server_process server;
    const auto run = run_client({"127.0.0.1", "-p", std::to_string(server.port()), "-t", "2", "-O", "0.5",
                                 "-P", "2", "--pings", "0", "--loaded-ping-interval", "0.05", "-J"});
    INFO(run.process.out << run.process.err);
    REQUIRE(run.process.exit_code == 0);
    for (const char* direction : {"download", "upload"}) {
        INFO(direction);
        const json& latency = run.json[direction]["latency"];
        const json& self = latency["self_probes"];
        REQUIRE(self.is_object());
        // One probe per 100 ms from 100 ms after the streams attach until the window ends (upload) or STOP
        // (download), over the 0.5 s warm-up and the 2 s window: 23-25 measured on loopback in both
        // directions (8 runs). 18-30 allows a few periods of a saturated machine's delays either way and
        // still tells 100 ms from 50 or 200 ms.
        CHECK(self["sent"].get<int>() >= 18);
        CHECK(self["sent"].get<int>() <= 30);
        // Every probe is answered, except those still outstanding at the end: one, plus one for every 100 ms
        // of the slowest round trip (a starved machine drains the sender's buffer slowly: two were
        // outstanding in one of six runs with four builds beside the test). Loopback loses nothing.
        const int outstanding = 1 + static_cast<int>(self["rtt_ms"]["max"].get<double>() / 100.0);
        CHECK(self["samples"].get<int>() >= self["sent"].get<int>() - outstanding);
        CHECK(self["samples"].get<int>() <= self["sent"].get<int>());
        CHECK(self["dropped"] == 0);
        // A round trip through the kernel and both applications: never below the least loopback round trip
        // the kernel gives (latency::kLeastNetworkRoundTripNs, 2 us).
        CHECK(self["rtt_ms"]["min"].get<double>() >= 0.002);
        const json& rpm = latency["responsiveness"];
        CHECK(rpm["self_source"] == "self_probes");
        // The stable part is the last 1 s of the window: 10 probes at 100 ms (9-11 measured).
        CHECK(rpm["self_samples"].get<int>() >= 7);
        CHECK(rpm["self_samples"].get<int>() <= 13);
        CHECK(rpm["self_rpm"].get<double>() <= 60000.0 / self["rtt_ms"]["min"].get<double>());
        CHECK(rpm["self_rpm"].get<double>() >= 60000.0 / self["rtt_ms"]["max"].get<double>());
        // The answer queues behind the sender's socket buffer (0.6-64 ms measured at 17-40 Gbit/s); the
        // foreign probes' application round trip does not: self RPM 6-14 k, foreign RPM 130-480 k, a factor
        // of 10 or more.
        CHECK(rpm["self_rpm"].get<double>() < rpm["foreign_rpm"].get<double>());
        CHECK(rpm["kernel_self_rpm"].is_number());
    }
}

// UDP tests set up flows (handshakes) before the window and drain after it: the loaded series covers only the
// receiver's window, not that setup and drain. Lost handshakes (the first 3 of each side, retried after 100,
// 200 and 400 ms) make the setup take most of a second, which the series used to count as "loaded". No idle
// probes: over UDP they would take the lost handshakes.
TEST_CASE("UDP loaded latency covers the receiver's window only", "[integration][latency]") {
    scoped_env drop("SPEED_TEST_DROP_UDP_HANDSHAKES", "3");
    server_process server;
    const auto run = run_client({"127.0.0.1", "-p", std::to_string(server.port()), "-u", "-b", "20M", "-t",
                                 "1", "--pings", "0", "--loaded-ping-interval", "0.05", "-J"});
    INFO(run.process.out << run.process.err);
    REQUIRE(run.process.exit_code == 0);
    for (const char* direction : {"download", "upload"}) {
        INFO(direction);
        const json& latency = run.json[direction]["latency"];
        // 1 s of window at one probe per 50 ms (the download's setup alone used to add 15 more).
        CHECK(latency["sent"].get<int>() >= 18);
        CHECK(latency["sent"].get<int>() <= 21);
    }
}

TEST_CASE("without loaded probes there is no grade", "[integration][latency]") {
    server_process server;
    const auto run = run_client({"127.0.0.1", "-p", std::to_string(server.port()), "-t", "0.5", "--pings",
                                 "3", "--loaded-ping-interval", "0", "-J"});
    REQUIRE(run.process.exit_code == 0);
    CHECK(run.json["download"]["latency"]["increase_ms"].is_null());
    CHECK(run.json["bufferbloat_grade"].is_null());
    // The in-band RTT still gives a responsiveness figure.
    CHECK(run.json["download"]["latency"]["in_band"]["samples"].get<int>() > 0);
}

TEST_CASE("the congestion flag sets the data sockets' congestion control on both sides",
          "[integration][latency]") {
    server_process server;
    const auto run = run_client(
        {"127.0.0.1", "-p", std::to_string(server.port()), "-t", "0.5", "--pings", "0", "-C", "reno", "-J"});
    INFO(run.process.out << run.process.err);
    REQUIRE(run.process.exit_code == 0);
    CHECK(run.json["download"]["sender"]["congestion"] == "reno");
    CHECK(run.json["upload"]["sender"]["congestion"] == "reno");

    const auto unknown =
        run_client({"127.0.0.1", "-p", std::to_string(server.port()), "-t", "0.5", "-C", "no_such_cc", "-J"});
    CHECK(unknown.process.exit_code == 4);
    CHECK_THAT(unknown.json["error"].get<std::string>(), Catch::Contains("no_such_cc"));
}
