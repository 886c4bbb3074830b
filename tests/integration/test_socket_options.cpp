// speedcli's socket flags (-B, --cport, -w, -M, -S/--dscp): each reaches the sockets it names, as the kernel
// reports them back (streams[].socket in the JSON), and a value that cannot work is a usage error.
#include <catch2/catch.hpp>

#include <random>

#include "tests/integration/client_json.hpp"
#include "tests/support/ports.hpp"
#include "tests/support/sysctl.hpp"

using namespace speed::testing;
using json = nlohmann::json;

namespace {

// Two consecutive local ports nothing holds right now, outside the kernel's ephemeral range (32768-60999).
std::uint16_t free_port_pair() {
    std::mt19937 random(std::random_device{}());
    std::uniform_int_distribution<int> pick(20000, 29998);
    for (int attempt = 0; attempt < 100; ++attempt) {
        const auto port = static_cast<std::uint16_t>(pick(random));
        if (loopback_port_free(port) && loopback_port_free(static_cast<std::uint16_t>(port + 1))) {
            return port;
        }
    }
    FAIL("no two free consecutive ports in 20000-29999");
    return 0;
}

}  // namespace

TEST_CASE("the socket flags -B --cport -w -M and --dscp reach speedcli's data sockets in both directions",
          "[integration][sockets]") {
    server_process server;
    const std::uint16_t cport = free_port_pair();
    // 127.0.0.2 is a loopback address like 127.0.0.1 (all of 127/8 is local), so the bound source shows.
    const auto run = run_client({"127.0.0.1",
                                 "-p",
                                 std::to_string(server.port()),
                                 "-t",
                                 "0.5",
                                 "--pings",
                                 "0",
                                 "-P",
                                 "2",
                                 "-B",
                                 "127.0.0.2",
                                 "--cport",
                                 std::to_string(cport),
                                 "-w",
                                 "64K",
                                 "-M",
                                 "1000",
                                 "--dscp",
                                 "AF41",
                                 "-J"});
    INFO(run.process.out << run.process.err);
    REQUIRE(run.process.exit_code == 0);
    const json& j = run.json;
    CHECK(j["local"]["address"] == "127.0.0.2");
    const json& p = j["parameters"];
    CHECK(p["bind"] == "127.0.0.2");
    CHECK(p["family"] == "ipv4");
    CHECK(p["cport"] == cport);
    CHECK(p["window"] == 65536);
    CHECK(p["mss"] == 1000);
    CHECK(p["tos"] == 136);  // AF41 = 34, shifted past the two ECN bits
    // Linux keeps twice the buffer asked for, capped at twice net.core.wmem_max / rmem_max.
    const std::uint64_t send_buffer =
        2 * std::min<std::uint64_t>(65536, proc_value("/proc/sys/net/core/wmem_max"));
    const std::uint64_t receive_buffer =
        2 * std::min<std::uint64_t>(65536, proc_value("/proc/sys/net/core/rmem_max"));
    for (const char* direction : {"download", "upload"}) {
        INFO(direction);
        const json& streams = j[direction]["streams"];
        REQUIRE(streams.size() == 2);
        for (std::size_t i = 0; i < 2; ++i) {
            const json& socket = streams[i]["socket"];
            CHECK(socket["local_port"] == cport + i);
            CHECK(socket["send_buffer_bytes"] == send_buffer);
            CHECK(socket["receive_buffer_bytes"] == receive_buffer);
            // TCP_MAXSEG reports the segment size in use: at most the 1000 bytes announced, less the 12 bytes
            // of the timestamp option loopback connections carry.
            CHECK(socket["mss_bytes"].get<int>() <= 1000);
            CHECK(socket["mss_bytes"].get<int>() >= 1000 - 40);
            CHECK(socket["tos"] == 136);
        }
        CHECK(j[direction]["bits_per_second"].get<double>() > 0.0);
    }
}

TEST_CASE("a bound address carries --udp too: the server takes UDP from the control connection's address",
          "[integration][sockets]") {
    server_process server;
    const auto run = run_client({"127.0.0.1", "-p", std::to_string(server.port()), "-t", "0.5", "--pings",
                                 "3", "--udp", "-b", "10M", "-B", "127.0.0.2", "-S", "0x10", "-J"});
    INFO(run.process.out << run.process.err);
    REQUIRE(run.process.exit_code == 0);
    CHECK(run.json["local"]["address"] == "127.0.0.2");
    CHECK(run.json["parameters"]["tos"] == 16);
    CHECK(run.json["latency"]["idle"]["samples"] == 3);
    CHECK(run.json["download"]["bits_per_second"].get<double>() > 0.0);
    CHECK(run.json["upload"]["bits_per_second"].get<double>() > 0.0);
}

TEST_CASE("socket flags that cannot work are usage errors, or a clear failure to reach the server",
          "[integration][sockets]") {
    const auto usage = [](std::vector<std::string> args) {
        args.insert(args.begin(), "127.0.0.1");
        const auto run = run_client(args);
        INFO(run.process.out << run.process.err);
        CHECK(run.process.exit_code == 2);
        return run.process.err;
    };
    CHECK_THAT(usage({"-B", "not-an-address"}), Catch::Contains("is not an IP address"));
    CHECK_THAT(usage({"-B", "127.0.0.1", "-6"}), Catch::Contains("is not of the family"));
    CHECK_THAT(usage({"--tos", "300"}), Catch::Contains("is not a TOS byte"));
    CHECK_THAT(usage({"--dscp", "AF44"}), Catch::Contains("is not a DSCP code point"));
    usage({"-S", "16", "--dscp", "EF"});
    CHECK_THAT(usage({"-w", "100"}), Catch::Contains("is not a size from 1K to 512M"));
    CHECK_THAT(usage({"--cport", "65535", "-P", "2"}), Catch::Contains("goes past port 65535"));
    usage({"-M", "50"});

    // An address this host does not have: the connection cannot be made, exit 3 (not reached), and why.
    server_process server;
    const auto run =
        run_client({"127.0.0.1", "-p", std::to_string(server.port()), "-B", "192.0.2.1", "-t", "0.5"});
    CHECK(run.process.exit_code == 3);
    CHECK_THAT(run.process.err, Catch::Contains("cannot use the local address 192.0.2.1"));
}
