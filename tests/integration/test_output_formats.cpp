// speedcli's outputs besides the text and the --json document (docs/json.md): --json-stream lines, --csv
// rows,
// --quiet, -f/--format, --logfile, and the start time, local end and parameters every output carries.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <map>
#include <regex>
#include <sstream>

#include "tests/integration/client_json.hpp"
#include "tests/support/ports.hpp"

using namespace speed::testing;
using json = nlohmann::json;

namespace {

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream in(text);
    for (std::string line; std::getline(in, line);) {
        lines.push_back(line);
    }
    return lines;
}

// One CSV line split at commas; the tests' rows hold no quoted fields except the last ("error").
std::vector<std::string> cells_of(const std::string& line) {
    std::vector<std::string> cells;
    std::string cell;
    for (const char c : line) {
        if (c == ',') {
            cells.push_back(cell);
            cell.clear();
        } else {
            cell += c;
        }
    }
    cells.push_back(cell);
    return cells;
}

process_result speedcli(std::vector<std::string> args) {
    args.insert(args.begin(), speedcli_path());
    return run_process(args, std::chrono::seconds(60));
}

}  // namespace

TEST_CASE("JSON carries the start time, both ends' addresses and every requested parameter",
          "[integration][output]") {
    server_process server;
    const auto run = run_client({"127.0.0.1", "-p", std::to_string(server.port()), "-t", "0.5", "-O", "0.2",
                                 "-P", "2", "-b", "3G", "--pings", "3", "--no-upload", "-J"});
    INFO(run.process.out << run.process.err);
    REQUIRE(run.process.exit_code == 0);
    const json& j = run.json;
    // "2026-11-29T19:41:18.537Z"
    CHECK(std::regex_match(j["start_time"].get<std::string>(),
                           std::regex(R"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)")));
    CHECK(j["local"]["address"] == "127.0.0.1");
    CHECK(j["local"]["port"].get<int>() > 0);
    CHECK(j["local"]["port"].get<int>() != server.port());
    const json& p = j["parameters"];
    CHECK(p["duration_seconds"] == 0.5);
    CHECK(p["omit_seconds"] == 0.2);
    CHECK(p["streams"] == 2);
    CHECK(p["bitrate"] == 3'000'000'000ULL);
    CHECK(p["udp"] == false);
    CHECK(p["download"] == true);
    CHECK(p["upload"] == false);
    CHECK(p["pings"] == 3);
    CHECK(p["family"] == "any");
    CHECK(p["authentication"] == false);
}

TEST_CASE("the JSON stream prints each event as one JSON line, the last one the whole --json document",
          "[integration][output]") {
    server_process server;
    const auto run = speedcli({"127.0.0.1", "-p", std::to_string(server.port()), "-t", "1", "-i", "0.25",
                               "--pings", "3", "--json-stream"});
    INFO(run.out << run.err);
    REQUIRE(run.exit_code == 0);
    std::vector<json> events;
    for (const auto& line : lines_of(run.out)) {
        events.push_back(json::parse(line));  // throws (fails) on anything that is not one JSON object
    }
    REQUIRE(events.size() >= 2);
    CHECK(events.front()["event"] == "start");
    CHECK(events.front()["data"]["parameters"]["interval_seconds"] == 0.25);
    CHECK(events.back()["event"] == "end");
    const json& end = events.back()["data"];
    CHECK(end["error"].is_null());
    std::map<std::string, int> counts;
    for (const auto& e : events) {
        ++counts[e["event"].get<std::string>()];
    }
    CHECK(counts["start"] == 1);
    CHECK(counts["idle_latency"] == 1);
    CHECK(counts["direction"] == 2);
    CHECK(counts["end"] == 1);
    // Every interval line is the same interval the end document lists, in order, per direction.
    for (const char* direction : {"download", "upload"}) {
        std::vector<json> streamed;
        for (const auto& e : events) {
            if (e["event"] == "interval" && e["data"]["direction"] == direction) {
                json interval = e["data"];
                interval.erase("direction");
                streamed.push_back(interval);
            }
        }
        CHECK(streamed.size() == 4);  // 1 s in 0.25 s intervals
        CHECK(json(streamed) == end[direction]["intervals"]);
    }
}

TEST_CASE("CSV output prints a header, interval rows as they end and summary rows that agree with them",
          "[integration][output]") {
    server_process server;
    const auto run = speedcli(
        {"127.0.0.1", "-p", std::to_string(server.port()), "-t", "1", "-i", "0.5", "--pings", "3", "--csv"});
    INFO(run.out << run.err);
    REQUIRE(run.exit_code == 0);
    const auto lines = lines_of(run.out);
    REQUIRE(!lines.empty());
    const auto header = cells_of(lines.front());
    CHECK(lines.front() ==
          "time,kind,direction,start_seconds,end_seconds,bytes,bits_per_second,omitted,packets,lost_packets,"
          "lost_percent,jitter_ms,latency_median_ms,latency_increase_ms,responsiveness_rpm,error");
    std::map<std::string, std::uint64_t> interval_bytes;
    std::map<std::string, std::uint64_t> summary_bytes;
    int idle_rows = 0;
    for (std::size_t i = 1; i < lines.size(); ++i) {
        const auto cells = cells_of(lines[i]);
        REQUIRE(cells.size() == header.size());
        CHECK(cells[0] == cells_of(lines[1])[0]);  // every row carries the run's start time
        if (cells[1] == "interval") {
            interval_bytes[cells[2]] += std::stoull(cells[5]);
        } else if (cells[1] == "summary") {
            summary_bytes[cells[2]] = std::stoull(cells[5]);
            CHECK(std::stod(cells[6]) > 0.0);
            CHECK(!cells[12].empty());  // loaded latency median
        } else if (cells[1] == "idle_latency") {
            ++idle_rows;
            CHECK(std::stod(cells[12]) > 0.0);
        } else {
            FAIL("unexpected row kind " << cells[1]);
        }
    }
    CHECK(idle_rows == 1);
    // No warm-up: the intervals partition the window, so their bytes add up to the summary's exactly.
    REQUIRE(summary_bytes.size() == 2);
    CHECK(interval_bytes == summary_bytes);
}

TEST_CASE("quiet output prints only the summary, -f a fixed unit, --logfile appends to a file",
          "[integration][output]") {
    server_process server;
    const std::vector<std::string> base{"127.0.0.1", "-p", std::to_string(server.port()), "-t", "0.5",
                                        "--pings",   "3"};
    auto args = base;
    args.insert(args.end(), {"-q", "-f", "k"});
    const auto quiet = speedcli(args);
    INFO(quiet.out << quiet.err);
    REQUIRE(quiet.exit_code == 0);
    CHECK_THAT(quiet.out, Catch::StartsWith("Summary (TCP to 127.0.0.1)"));
    CHECK(quiet.out.find("Connected") == std::string::npos);
    CHECK(quiet.out.find("[") == std::string::npos);  // no interval lines
    // Every rate in kbit/s with two decimals, whatever its size.
    CHECK(std::regex_search(quiet.out, std::regex(R"(Download +\d+\.\d\d kbit/s)")));
    CHECK(std::regex_search(quiet.out, std::regex(R"(Upload +\d+\.\d\d kbit/s)")));

    char path[] = "/tmp/speedcli-logfile-XXXXXX";
    const int fd = ::mkstemp(path);
    REQUIRE(fd >= 0);
    ::close(fd);
    for (int run = 0; run < 2; ++run) {
        args = base;
        args.insert(args.end(), {"--logfile", path});
        const auto logged = speedcli(args);
        CHECK(logged.exit_code == 0);
        CHECK(logged.out.empty());
    }
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    ::unlink(path);
    std::size_t summaries = 0;
    for (auto at = text.str().find("Summary ("); at != std::string::npos;
         at = text.str().find("Summary (", at + 1)) {
        ++summaries;
    }
    CHECK(summaries == 2);  // appended, not overwritten
}

TEST_CASE("the JSON stream and CSV also report a failure and a usage error", "[integration][output]") {
    const auto stream =
        speedcli({"127.0.0.1", "-p", std::to_string(unused_loopback_port()), "--json-stream"});
    CHECK(stream.exit_code == 3);
    auto lines = lines_of(stream.out);
    REQUIRE(lines.size() == 1);  // nothing started: only the end
    const json end = json::parse(lines.front());
    CHECK(end["event"] == "end");
    CHECK_THAT(end["data"]["error"].get<std::string>(), Catch::Contains("cannot connect"));

    const auto usage = speedcli({"127.0.0.1", "--streams", "0", "--csv"});
    CHECK(usage.exit_code == 2);
    lines = lines_of(usage.out);
    REQUIRE(lines.size() == 2);
    CHECK_THAT(lines.front(), Catch::StartsWith("time,kind,"));
    CHECK_THAT(lines.back(), Catch::Contains(",error,") && Catch::Contains("--streams"));
}
