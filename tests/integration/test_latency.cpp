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
        // 2 s of window at one probe per 50 ms: the schedule holds although the transfer saturates both
        // cores.
        CHECK(latency["sent"].get<int>() >= 32);
        CHECK(latency["lost"] == 0);
        CHECK(latency["samples"] == latency["sent"]);
        CHECK(latency["rtt_ms"]["median"].get<double>() > 0.0);
        // Loopback has no queue to speak of: a probe that waits behind the data plane would show up here.
        CHECK(latency["rtt_ms"]["p90"].get<double>() < 20.0);
        CHECK(latency["increase_ms"].get<double>() >= 0.0);
        CHECK(latency["in_band"]["samples"].get<int>() >= 10);
        CHECK(latency["in_band"]["rtt_ms"]["median"].get<double>() > 0.0);
        CHECK(latency["responsiveness_rpm"].get<double>() > 0.0);
    }
    CHECK(j["bufferbloat_grade"].is_string());
    CHECK(j["responsiveness_rpm"].get<double>() > 0.0);
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
