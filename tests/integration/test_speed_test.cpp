// speedcli against a real speedsrv on 127.0.0.1: the JSON contract of docs/json.md and its figures.
#include <catch2/catch.hpp>

#include <cmath>
#include <thread>

#include "tests/integration/client_json.hpp"

using namespace speed::testing;
using nlohmann::json;

namespace {

// Every figure of one direction agrees with itself: rate = bytes / seconds, intervals add up, streams add up.
void check_direction(const json& d, int streams, double duration, double omit) {
    INFO(d.dump(2));
    REQUIRE(d.is_object());
    const double bits_per_second = d["bits_per_second"].get<double>();
    const auto bytes = d["bytes"].get<std::uint64_t>();
    const double seconds = d["seconds"].get<double>();
    CHECK(bits_per_second > 0);
    CHECK(bytes > 0);
    // The window is measured on the receiver's clock: within a few ms of what was asked.
    CHECK(seconds == Approx(duration).margin(0.05));
    CHECK(d["omitted_seconds"].get<double>() == Approx(omit).margin(0.05));
    CHECK(bits_per_second == Approx(static_cast<double>(bytes) * 8.0 / seconds).epsilon(1e-9));

    std::uint64_t window_interval_bytes = 0;
    std::uint64_t omitted_interval_bytes = 0;
    double previous_end = 0.0;
    for (const auto& interval : d["intervals"]) {
        CHECK(interval["start"].get<double>() == Approx(previous_end).margin(1e-9));
        previous_end = interval["end"].get<double>();
        const auto interval_bytes = interval["bytes"].get<std::uint64_t>();
        std::uint64_t per_stream = 0;
        for (const auto& b : interval["streams"]) {
            per_stream += b.get<std::uint64_t>();
        }
        CHECK(per_stream == interval_bytes);
        (interval["omitted"].get<bool>() ? omitted_interval_bytes : window_interval_bytes) += interval_bytes;
    }
    CHECK(window_interval_bytes == bytes);
    CHECK(omitted_interval_bytes == d["omitted_bytes"].get<std::uint64_t>());
    CHECK(previous_end == Approx(duration + omit).margin(0.05));

    REQUIRE(d["streams"].size() == static_cast<std::size_t>(streams));
    std::uint64_t stream_bytes = 0;
    for (const auto& stream : d["streams"]) {
        stream_bytes += stream["bytes"].get<std::uint64_t>();
        CHECK(stream["bytes"].get<std::uint64_t>() > 0);
    }
    CHECK(stream_bytes == bytes);
    // The sender handed at least what the receiver counted to its sockets.
    CHECK(d["sender"]["bytes"].get<std::uint64_t>() >= bytes + d["omitted_bytes"].get<std::uint64_t>());
    CHECK(d["sender"]["retransmits"].is_number());
}

}  // namespace

TEST_CASE("a full test prints one JSON document that follows the contract", "[integration]") {
    server_process server;
    const auto run = run_client({"127.0.0.1", "--port", std::to_string(server.port()), "--duration", "1",
                                 "--interval", "0.5", "--pings", "5", "--ping-interval", "0.01", "--json"});
    INFO(run.process.out << run.process.err);
    REQUIRE(run.process.exit_code == 0);
    REQUIRE(run.json.is_object());
    const json& j = run.json;
    CHECK(j["error"].is_null());
    CHECK(j["version"].is_string());
    CHECK(j["server"]["host"] == "127.0.0.1");
    CHECK(j["server"]["port"] == server.port());
    CHECK(j["protocol"] == "tcp");
    CHECK(j["streams"] == 1);

    const json& idle = j["latency"]["idle"];
    CHECK(idle["samples"] == 5);
    CHECK(idle["lost"] == 0);
    for (const char* key : {"min", "median", "mean", "p90", "p99", "max"}) {
        CHECK(idle["rtt_ms"][key].get<double>() > 0.0);
    }
    CHECK(idle["rtt_ms"]["min"].get<double>() <= idle["rtt_ms"]["median"].get<double>());
    CHECK(idle["rtt_ms"]["median"].get<double>() <= idle["rtt_ms"]["max"].get<double>());
    CHECK(idle["jitter_ms"].get<double>() >= 0.0);

    check_direction(j["download"], 1, 1.0, 0.0);
    check_direction(j["upload"], 1, 1.0, 0.0);
    CHECK(j["download"]["measured_by"] == "client");
    CHECK(j["download"]["receive_copy"] == false);                 // MSG_TRUNC (docs/methodology.md)
    CHECK(j["download"]["server_cap_bits_per_second"].is_null());  // a default speedsrv has no TCP cap
    CHECK(j["upload"]["server_cap_bits_per_second"].is_null());
    CHECK(j["upload"]["measured_by"] == "server");
    CHECK(j["download"]["intervals"].size() == 2);
}

TEST_CASE("parallel streams and an omitted warm-up", "[integration]") {
    server_process server;
    const auto run = run_client({"127.0.0.1", "-p", std::to_string(server.port()), "-t", "1", "-O", "0.5",
                                 "-P", "4", "-i", "0.5", "--pings", "0", "-J"});
    INFO(run.process.out << run.process.err);
    REQUIRE(run.process.exit_code == 0);
    check_direction(run.json["download"], 4, 1.0, 0.5);
    check_direction(run.json["upload"], 4, 1.0, 0.5);
    CHECK(run.json["download"]["intervals"][0]["omitted"] == true);
    CHECK(run.json["download"]["intervals"][1]["omitted"] == false);
    CHECK(run.json["latency"]["idle"].is_null());
}

TEST_CASE("skipping a direction with --no-upload", "[integration]") {
    server_process server;
    const auto run = run_client(
        {"127.0.0.1", "-p", std::to_string(server.port()), "-t", "0.5", "--no-upload", "--pings", "2", "-J"});
    REQUIRE(run.process.exit_code == 0);
    CHECK(run.json["download"].is_object());
    CHECK(run.json["upload"].is_null());
}

TEST_CASE("a paced download stays near the requested bitrate", "[integration]") {
    server_process server;
    const auto run = run_client({"127.0.0.1", "-p", std::to_string(server.port()), "-t", "2", "-O", "0.5",
                                 "-b", "200M", "--no-upload", "--pings", "0", "-J"});
    INFO(run.process.out << run.process.err);
    REQUIRE(run.process.exit_code == 0);
    // Kernel pacing (SO_MAX_PACING_RATE) is exact to a few percent on loopback.
    CHECK(run.json["download"]["bits_per_second"].get<double>() == Approx(200e6).epsilon(0.05));
}

TEST_CASE("eight clients at the same time all complete", "[integration]") {
    // All eight come from 127.0.0.1: allow them past the per-host cap (tests/robustness tests that cap).
    server_process server({"--max-sessions-per-host", "8"});
    std::vector<client_run> runs(8);
    std::vector<std::thread> threads;
    for (auto& run : runs) {
        threads.emplace_back([&run, port = server.port()] {
            run = run_client({"127.0.0.1", "-p", std::to_string(port), "-t", "1", "--pings", "3", "-J"});
        });
    }
    for (auto& thread : threads) {
        thread.join();
    }
    for (const auto& run : runs) {
        INFO(run.process.out << run.process.err);
        CHECK(run.process.exit_code == 0);
        REQUIRE(run.json.is_object());
        CHECK(run.json["download"]["bits_per_second"].get<double>() > 0);
        CHECK(run.json["upload"]["bits_per_second"].get<double>() > 0);
    }
    CHECK(server.running());
}

TEST_CASE("human output shows intervals and a summary", "[integration]") {
    server_process server;
    const auto run =
        run_client({"127.0.0.1", "-p", std::to_string(server.port()), "-t", "1", "--pings", "3"});
    REQUIRE(run.process.exit_code == 0);
    CHECK_THAT(run.process.out, Catch::Contains("Idle latency") && Catch::Contains("Download") &&
                                    Catch::Contains("Upload") && Catch::Contains("Summary") &&
                                    Catch::Contains("bit/s"));
    CHECK(run.json.is_null());
}

TEST_CASE("IPv6: speedsrv --bind ::1 and speedcli -6", "[integration]") {
    server_process server(server_launch{{}, "::1", {}});
    const auto run =
        run_client({"::1", "-p", std::to_string(server.port()), "-6", "-t", "0.5", "--pings", "2", "-J"});
    INFO(run.process.out << run.process.err);
    REQUIRE(run.process.exit_code == 0);
    CHECK(run.json["server"]["address"] == "::1");
    CHECK(run.json["download"]["bits_per_second"].get<double>() > 0);
    CHECK(run.json["upload"]["bits_per_second"].get<double>() > 0);
}
