// speedcli --servers: every candidate is timed, the test runs against the nearest that answered, and the JSON
// keeps every candidate with its figure or its reason.
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>

#include "tests/integration/client_json.hpp"

using namespace speed::testing;
using json = nlohmann::json;

namespace {

// A file that lives as long as the test.
struct temporary_file {
    std::string path;
    explicit temporary_file(const std::string& text) {
        char name[] = "/tmp/speedcli-servers-XXXXXX";
        const int fd = ::mkstemp(name);
        REQUIRE(fd >= 0);
        ::close(fd);
        path = name;
        std::ofstream(path) << text;
    }
    ~temporary_file() { std::remove(path.c_str()); }
};

}  // namespace

TEST_CASE("speedcli --servers times every candidate and tests the nearest that answered",
          "[integration][servers]") {
    server_process first;
    server_process second;
    // Port 1 on loopback refuses: a candidate that cannot be used, listed first so that order alone cannot
    // win.
    temporary_file list("# fleet\n127.0.0.1:1\n127.0.0.1:" + std::to_string(first.port()) +
                        "\n[::ffff:127.0.0.1]:" + std::to_string(second.port()) + "\n");
    const auto run = run_client({"--servers", list.path, "-t", "0.5", "--pings", "2", "-J"});
    INFO(run.process.out << run.process.err);
    REQUIRE(run.process.exit_code == 0);
    const json& selection = run.json["server_selection"];
    CHECK(selection["rounds"] == 3);
    REQUIRE(selection["candidates"].size() == 3);
    const json& refused = selection["candidates"][0];
    CHECK(refused["port"] == 1);
    CHECK(refused["rtt_ms"].is_null());
    CHECK_THAT(refused["error"].get<std::string>(), Catch::Contains("Connection refused"));
    for (int i : {1, 2}) {
        const json& live = selection["candidates"][static_cast<std::size_t>(i)];
        CHECK(live["error"].is_null());
        CHECK(live["rtt_ms"].get<double>() > 0.0);
        CHECK(live["rtt_ms"].get<double>() < 1000.0);
    }
    // The chosen one is the faster of the two that answered, and the test ran against it.
    const std::size_t chosen = selection["chosen"].get<std::size_t>();
    REQUIRE((chosen == 1 || chosen == 2));
    const std::size_t other = chosen == 1 ? 2 : 1;
    CHECK(selection["candidates"][chosen]["rtt_ms"].get<double>() <=
          selection["candidates"][other]["rtt_ms"].get<double>());
    CHECK(run.json["server"]["port"] == selection["candidates"][chosen]["port"]);
    CHECK(run.json["download"]["bits_per_second"].get<double>() > 0.0);
    CHECK(run.json["error"].is_null());
}

TEST_CASE("speedcli --servers with no usable candidate is not reached (exit 3), each reason kept",
          "[integration][servers]") {
    temporary_file list("127.0.0.1:1\n127.0.0.1:2\n");
    const auto run = run_client({"--servers", list.path, "-t", "0.5", "-J"});
    INFO(run.process.out << run.process.err);
    CHECK(run.process.exit_code == 3);
    CHECK(run.json["server_selection"]["chosen"].is_null());
    CHECK(run.json["server_selection"]["candidates"].size() == 2);
    CHECK_THAT(run.json["error"].get<std::string>(), Catch::Contains("none of the 2 servers"));
}

TEST_CASE("speedcli --servers and HOST together, or a list that cannot be read, are usage errors",
          "[integration][servers]") {
    temporary_file list("127.0.0.1\n");
    CHECK(run_client({"127.0.0.1", "--servers", list.path}).process.exit_code == 2);
    const auto missing = run_client({"--servers", "/nonexistent/servers.txt"});
    CHECK(missing.process.exit_code == 2);
    CHECK_THAT(missing.process.err, Catch::Contains("--servers /nonexistent/servers.txt"));
    temporary_file bad("a.example:99999\n");
    const auto refused = run_client({"--servers", bad.path});
    CHECK(refused.process.exit_code == 2);
    CHECK_THAT(refused.process.err, Catch::Contains("line 1: '99999' is not a port"));
}
