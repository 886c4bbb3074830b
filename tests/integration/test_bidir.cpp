// speedcli --bidir against a real speedsrv on 127.0.0.1: download and upload at once, in two sessions, each
// measured by its receiver, with the loaded latency under both (docs/methodology.md, "Bidirectional tests").
#include <catch2/catch.hpp>

#include <cmath>
#include <regex>
#include <sstream>

#include "tests/integration/client_json.hpp"

using namespace speed::testing;
using nlohmann::json;

namespace {

// The server's "session ... ended" line of the session whose control connection came from `port`.
std::string session_end_line(const std::string& log, std::uint16_t port) {
    std::istringstream lines(log);
    const std::string from = "from 127.0.0.1:" + std::to_string(port) + " ended after ";
    for (std::string line; std::getline(lines, line);) {
        if (line.find(from) != std::string::npos) {
            return line;
        }
    }
    return "";
}

}  // namespace

TEST_CASE("speedcli --bidir runs download and upload at the same time, each measured by its receiver",
          "[integration][bidir]") {
    server_process server;
    constexpr double kDuration = 2.0;
    const auto run =
        run_client({"127.0.0.1", "-p", std::to_string(server.port()), "-t", "2", "-i", "0.5", "-P", "2", "-b",
                    "200M", "--pings", "5", "--ping-interval", "0.01", "--bidir", "--json"});
    INFO(run.process.out << run.process.err);
    REQUIRE(run.process.exit_code == 0);
    const json& j = run.json;
    REQUIRE(j.is_object());
    CHECK(j["error"].is_null());
    CHECK(j["parameters"]["bidirectional"] == true);
    for (const char* name : {"download", "upload"}) {
        const json& d = j[name];
        INFO(name);
        REQUIRE(d.is_object());
        CHECK(d["bytes"].get<std::uint64_t>() > 0);
        CHECK(d["seconds"].get<double>() == Approx(kDuration).margin(0.05));
        CHECK(d["intervals"].size() == 4);
        CHECK(d["streams"].size() == 2);
        // Each direction paced to 200 Mbit/s: both carried it at once (kernel pacing is exact to a few
        // percent on loopback, and loopback carries several Gbit/s each way).
        CHECK(d["bits_per_second"].get<double>() == Approx(200e6).epsilon(0.05));
        // The probe series is the one under both loads, not the direction's own.
        CHECK(d["latency"]["samples"] == 0);
    }
    CHECK(j["download"]["measured_by"] == "client");
    CHECK(j["upload"]["measured_by"] == "server");

    // The windows overlap for nearly all their length: run one after the other they would not overlap at all.
    // The two loads start within one turn of the client's event loop; what the receivers' clocks show apart
    // from that is set-up noise (a few ms here, up to 50 ms when the machine is busy), far below the window.
    const json& both = j["bidirectional"];
    REQUIRE(both.is_object());
    CHECK(both["overlap_seconds"].get<double>() > 0.75 * kDuration);
    CHECK(std::abs(both["start_skew_seconds"].get<double>()) < 0.25 * kDuration);
    const json& latency = both["latency"];
    CHECK(latency["samples"].get<int>() > 0);
    CHECK(latency["self_probes"]["samples"].get<int>() > 0);
    CHECK(latency["responsiveness_rpm"].get<double>() > 0);
    CHECK(j["responsiveness_rpm"].get<double>() == latency["responsiveness_rpm"].get<double>());
    CHECK(j["bufferbloat_grade"].is_string());

    // The server saw two sessions: the client's control connection (the JSON's local port) ran the download
    // alone, and another session from the same host ran the upload alone, and received what the client says.
    const auto local_port = j["local"]["port"].get<std::uint16_t>();
    REQUIRE(log_shows_within(server, "upload 2 streams: received"));
    REQUIRE(log_shows_within(server, "download 2 streams: sent"));
    const std::string log = server.log();
    INFO(log);
    const std::string download_session = session_end_line(log, local_port);
    CHECK_THAT(download_session, Catch::Contains("ok; download 2 streams: sent"));
    CHECK_THAT(download_session, !Catch::Contains("upload"));
    const std::regex upload_line(
        R"(from 127\.0\.0\.1:(\d+) ended after [0-9.]+ s, ok; upload 2 streams: received)");
    std::smatch match;
    REQUIRE(std::regex_search(log, match, upload_line));
    CHECK(std::stoi(match[1].str()) != local_port);
}

TEST_CASE("speedcli --bidir with --no-upload or --no-download is a usage error", "[integration][bidir]") {
    for (const char* other : {"--no-upload", "--no-download"}) {
        INFO(other);
        const auto run =
            run_client({"127.0.0.1", "-p", "9", "--bidir", "--iperf3", "-b", "10M", other, "--json"});
        CHECK(run.process.exit_code == 2);
        REQUIRE(run.json.is_object());
        CHECK_THAT(run.json["error"].get<std::string>(), Catch::Contains("--bidir"));
        CHECK_THAT(run.process.err, Catch::Contains(other));
    }
}

TEST_CASE("a server that admits one session per host refuses --bidir clearly", "[integration][bidir]") {
    server_process server({"--max-sessions-per-host", "1"});
    const auto run = run_client(
        {"127.0.0.1", "-p", std::to_string(server.port()), "-t", "1", "--pings", "0", "--bidir", "--json"});
    INFO(run.process.out << run.process.err);
    CHECK(run.process.exit_code == 4);
    REQUIRE(run.json.is_object());
    const std::string error = run.json["error"].get<std::string>();
    CHECK_THAT(error, Catch::Contains("--bidir"));
    CHECK_THAT(error, Catch::Contains("second session"));
    CHECK_THAT(error, Catch::Contains("--max-sessions-per-host"));
    // Nothing was measured: neither direction ran.
    CHECK(run.json["download"].is_null());
    CHECK(run.json["upload"].is_null());
    CHECK(server.running());
}

TEST_CASE("speedcli --bidir text output labels each direction's intervals and shows the latency under both",
          "[integration][bidir]") {
    server_process server;
    const auto run = run_client({"127.0.0.1", "-p", std::to_string(server.port()), "-t", "1", "-i", "0.5",
                                 "--pings", "3", "--ping-interval", "0.01", "--bidir"});
    INFO(run.process.out << run.process.err);
    REQUIRE(run.process.exit_code == 0);
    CHECK_THAT(run.process.out, Catch::Contains("Testing download and upload at once over TCP"));
    CHECK_THAT(run.process.out, Catch::Contains("  down [  0.00-  0.50 s]"));
    CHECK_THAT(run.process.out, Catch::Contains("  up   [  0.50-  1.00 s]"));
    CHECK_THAT(run.process.out, Catch::Contains("Both at once  windows overlap "));
    CHECK_THAT(run.process.out, Catch::Contains("    under load  "));
    CHECK_THAT(run.process.out, Catch::Contains("Responsiveness  "));
}

TEST_CASE(
    "speedcli --bidir --csv: interval rows of both directions, and a summary row of the latency under both",
    "[integration][bidir]") {
    server_process server;
    const auto run = run_client({"127.0.0.1", "-p", std::to_string(server.port()), "-t", "1", "-i", "0.5",
                                 "--pings", "3", "--ping-interval", "0.01", "--bidir", "--csv"});
    INFO(run.process.out << run.process.err);
    REQUIRE(run.process.exit_code == 0);
    std::istringstream lines(run.process.out);
    int download_intervals = 0;
    int upload_intervals = 0;
    std::string both_summary;
    for (std::string line; std::getline(lines, line);) {
        download_intervals += line.find(",interval,download,") != std::string::npos ? 1 : 0;
        upload_intervals += line.find(",interval,upload,") != std::string::npos ? 1 : 0;
        if (line.find(",summary,both,") != std::string::npos) {
            both_summary = line;
        }
    }
    CHECK(download_intervals == 2);
    CHECK(upload_intervals == 2);
    REQUIRE_FALSE(both_summary.empty());
    // Its latency median, increase and RPM columns (13-15 of 16) are filled.
    std::vector<std::string> cells;
    std::istringstream row(both_summary);
    for (std::string cell; std::getline(row, cell, ',');) {
        cells.push_back(cell);
    }
    REQUIRE(cells.size() >= 15);
    CHECK_FALSE(cells[12].empty());
    CHECK_FALSE(cells[13].empty());
    CHECK_FALSE(cells[14].empty());
}

TEST_CASE("speedcli --bidir --udp: both directions' flows at once, each measured by its receiver",
          "[integration][bidir][udp]") {
    server_process server;
    const auto run =
        run_client({"127.0.0.1", "-p", std::to_string(server.port()), "-t", "2", "-i", "0.5", "-P", "2", "-b",
                    "50M", "--udp", "--pings", "3", "--ping-interval", "0.01", "--bidir", "--json"});
    INFO(run.process.out << run.process.err);
    REQUIRE(run.process.exit_code == 0);
    const json& j = run.json;
    CHECK(j["protocol"] == "udp");
    for (const char* name : {"download", "upload"}) {
        const json& d = j[name];
        INFO(name);
        REQUIRE(d.is_object());
        CHECK(d["intervals"].size() == 4);
        // A fixed 50 Mbit/s per direction, both ways at once: loopback carries it
        // (tests/integration/test_udp.cpp holds a fixed rate to 4 % there), without loss but for a receiver
        // briefly short of CPU on a busy machine: 1 % allows for that, and a direction that lost its flows
        // would show far more. 2 s rather than 1: with three other engineers' builds on the 2 cores, 1-s runs
        // read 40-45 Mbit/s in 2 of 12 (a sender descheduled for 100-200 ms); the longer window halves that.
        CHECK(d["bits_per_second"].get<double>() == Approx(50e6).epsilon(0.05));
        CHECK(d["lost_percent"].get<double>() <= 1.0);
    }
    const json& both = j["bidirectional"];
    REQUIRE(both.is_object());
    CHECK(both["overlap_seconds"].get<double>() > 0.75);
    CHECK(both["latency"]["samples"].get<int>() > 0);
    CHECK(both["latency"]["self_probes"].is_null());  // UDP flows have none: the probes alone
    CHECK(j["responsiveness_rpm"].get<double>() > 0);
}
