// The tests' iperf3 server (tests/support/iperf3.hpp: Debian's, or $SPEED_IPERF3) on a free loopback port,
// for the tests of speedcli against iperf3 servers.
#pragma once

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/iperf3.hpp"
#include "tests/support/ports.hpp"
#include "tests/support/streaming_process.hpp"

namespace speed::testing {

// `iperf3 -s` plus `extra` (e.g. "-1", "-J": one test, then its JSON), ready once its port is taken: with -J
// it prints nothing before the test.
struct iperf3_server {
    std::uint16_t port = unused_loopback_port();
    streaming_process process;

    explicit iperf3_server(const std::vector<std::string>& extra = {}) : process(argv(port, extra)) {
        for (int tries = 0; tries < 100 && loopback_port_free(port); ++tries) {
            std::this_thread::sleep_for(std::chrono::milliseconds(50));
        }
        REQUIRE_FALSE(loopback_port_free(port));
    }

  private:
    static std::vector<std::string> argv(std::uint16_t port, const std::vector<std::string>& extra) {
        std::vector<std::string> args{iperf3_binary(),      "-s",          "-B", "127.0.0.1", "-p",
                                      std::to_string(port), "--forceflush"};
        args.insert(args.end(), extra.begin(), extra.end());
        return args;
    }
};

// A real iperf3 client holding `server` busy (iperf3's server runs one test at a time): 10 s at 1 Mbit/s,
// its test on once the constructor returns.
struct busy_iperf3_client {
    streaming_process process;

    explicit busy_iperf3_client(const iperf3_server& server)
        : process({iperf3_binary(), "-c", "127.0.0.1", "-p", std::to_string(server.port), "-t", "10", "-b",
                   "1M", "--forceflush"}) {
        REQUIRE(process.read_line(std::chrono::seconds(5)));  // "Connecting to host ..."
        REQUIRE(process.read_line(std::chrono::seconds(5)));  // its first stream connected: the test is on
    }
};

}  // namespace speed::testing
