// UDP through a lossy link between two network namespaces: setup starts every time although the first
// handshake datagrams and 5 % of everything else are dropped (nftables), the accounting is exact, and the
// reported loss is the link's. Needs root; run through run_as_root.sh, which skips otherwise.
#include <unistd.h>

#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>
#include <string>

#include "tests/support/process.hpp"

using namespace speed::testing;
using nlohmann::json;

namespace {

constexpr const char* kServerAddress = "10.77.0.1";
constexpr const char* kClientAddress = "10.77.0.2";

// posix_spawn does not search PATH (ip and nft live in /usr/sbin or /sbin): go through the shell.
process_result shell(const std::string& command) {
    return run_process({"/bin/sh", "-c", command}, std::chrono::seconds(60));
}

void must(const std::string& command) {
    const auto result = shell(command);
    INFO(command << "\n" << result.out << result.err);
    REQUIRE(result.exit_code == 0);
}

// Two namespaces joined by a veth pair, named after this process so concurrent runs do not collide, and
// removed (with everything in them) however the test ends.
struct lossy_lab {
    lossy_lab() {
        const std::string id = std::to_string(::getpid());
        server_ns = "spdu-s-" + id;
        client_ns = "spdu-c-" + id;
        const std::string server_if = "vus" + id;
        const std::string client_if = "vuc" + id;
        must("ip netns add " + server_ns);
        must("ip netns add " + client_ns);
        must("ip link add " + server_if + " netns " + server_ns + " type veth peer name " + client_if +
             " netns " + client_ns);
        must("ip -n " + server_ns + " addr add " + kServerAddress + "/24 dev " + server_if);
        must("ip -n " + client_ns + " addr add " + kClientAddress + "/24 dev " + client_if);
        for (const auto& ns : {server_ns, client_ns}) {
            must("ip -n " + ns + " link set lo up");
        }
        must("ip -n " + server_ns + " link set " + server_if + " up");
        must("ip -n " + client_ns + " link set " + client_if + " up");
        // The server dies with the test at the latest after a minute, whatever happens to this process.
        const auto started =
            shell("ip netns exec " + server_ns + " timeout 120 " + speedsrv_path() + " --bind " +
                  kServerAddress + " --port 5201 --max-bitrate 0 >/dev/null 2>&1 & echo $!");
        server_pid = std::stoi(started.out);
        for (int attempt = 0; attempt < 50; ++attempt) {
            if (shell("ip netns exec " + server_ns + " ss -ltn | grep -q ':5201 '").exit_code == 0) {
                break;
            }
            ::usleep(100'000);
        }
    }
    ~lossy_lab() {
        shell("kill " + std::to_string(server_pid));
        shell("ip netns del " + client_ns);
        shell("ip netns del " + server_ns);
    }

    // On the way into each namespace (where a drop is silent, as on a real link): the first 2 UDP datagrams
    // (HELLOs into the server, HELLO_ACKs into the client), then 5 % of the rest at random. Recreated per run
    // so every run starts with lost handshakes.
    void lossy_udp() {
        for (const auto& ns : {server_ns, client_ns}) {
            shell("ip netns exec " + ns + " nft delete table inet spdu");
            must(
                "printf '%s\\n' "
                "'table inet spdu {' "
                "'  chain in { type filter hook input priority 0; "
                "meta l4proto udp quota until 112 bytes counter drop; "
                "meta l4proto udp numgen random mod 100 < 5 drop; }' "
                "'}' | ip netns exec " +
                ns + " nft -f -");
        }
    }

    // Datagrams the handshake-dropping rules dropped so far, in both namespaces.
    int handshake_drops() {
        // std::regex would do, but GCC 12 warns about its internals under ASan (and CI makes warnings
        // errors).
        int dropped = 0;
        const std::string key = "counter packets ";
        for (const auto& ns : {server_ns, client_ns}) {
            const auto listing = shell("ip netns exec " + ns + " nft list table inet spdu");
            for (auto at = listing.out.find(key); at != std::string::npos;
                 at = listing.out.find(key, at + 1)) {
                dropped += std::stoi(listing.out.substr(at + key.size()));
            }
        }
        return dropped;
    }

    std::string server_ns;
    std::string client_ns;
    int server_pid = -1;
};

std::uint64_t u64(const json& value) {
    return value.get<std::uint64_t>();
}

void check_identity(const json& d) {
    INFO(d.dump(2));
    CHECK(u64(d["packets_received"]) + u64(d["lost_packets"]) == u64(d["packets_sent"]));
    std::uint64_t sent = 0;
    std::uint64_t lost = 0;
    for (const auto& stream : d["streams"]) {
        CHECK(u64(stream["packets_received"]) + u64(stream["lost_packets"]) == u64(stream["packets_sent"]));
        sent += u64(stream["packets_sent"]);
        lost += u64(stream["lost_packets"]);
    }
    CHECK(sent == u64(d["packets_sent"]));
    CHECK(lost == u64(d["lost_packets"]));
}

}  // namespace

TEST_CASE("UDP through a lossy namespace link: setup survives, accounting is exact, loss is the link's",
          "[netlab][udp]") {
    if (::geteuid() != 0) {
        WARN("SKIP: needs root");
        return;
    }
    lossy_lab lab;
    for (int run = 0; run < 3; ++run) {
        lab.lossy_udp();
        const auto result =
            shell("ip netns exec " + lab.client_ns + " " + speedcli_path() + " " + kServerAddress +
                  " --udp -b 20M -t 1 -P 2 --pings 10 --ping-interval 0.01 -J");
        INFO("run " << run << "\n" << result.out << result.err);
        REQUIRE(result.exit_code == 0);
        const json j = json::parse(result.out);
        CHECK(lab.handshake_drops() == 4);  // the first two datagrams each way were really lost
        for (const char* direction : {"download", "upload"}) {
            const json& d = j[direction];
            check_identity(d);
            // 5 % random loss on the link: the figure is the link's, give or take the randomness of ~3,400
            // datagrams (one standard deviation is 0.4 %).
            CHECK(d["lost_percent"].get<double>() > 2.0);
            CHECK(d["lost_percent"].get<double>() < 9.0);
            CHECK(d["bits_per_second"].get<double>() == Approx(20e6 * 0.95).epsilon(0.05));
        }
        const json& idle = j["latency"]["idle"];
        CHECK(u64(idle["sent"]) == 10);
        CHECK(u64(idle["samples"]) + u64(idle["lost"]) == 10);
    }
}
