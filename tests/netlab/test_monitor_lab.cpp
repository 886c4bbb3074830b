// speedcli monitor against ground truth in the lab: while a speedcli UDP download crosses the link, the
// monitor on the client's interface must count exactly what the kernel counted there, and exactly the packets
// netem-tun forwarded towards the client (every packet the client receives went through it) and received from
// the client (every packet the client sends goes into it).
#include <signal.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <thread>

#include "tests/integration/monitor_ndjson.hpp"
#include "tests/netlab/reference_tools.hpp"
#include "tests/support/streaming_process.hpp"

using namespace speed::netlab;
using nlohmann::json;

namespace {

constexpr auto kCommandLimit = std::chrono::seconds(10);

std::string run_checked(const speed::testing::process_result& result, const std::string& what) {
    INFO(what << ": " << result.out << result.err);
    REQUIRE(result.exit_code == 0);
    return result.out;
}

std::string mac_address(const lab& link, bool router_side) {
    const std::vector<std::string> argv{"ip",   "-j",  "link",
                                        "show", "dev", router_side ? kRouterToClient : "eth0"};
    const std::string out = run_checked(
        router_side ? link.run_in_router(argv, kCommandLimit) : link.run_in_client(argv, kCommandLimit),
        "ip link");
    return json::parse(out).at(0).at("address").get<std::string>();
}

// Nothing but the test's own packets may cross the client's link: no IPv6 (router solicitations, MLD
// reports) and no ARP (static neighbours on both ends).
void quiet_client_link(const lab& link) {
    const std::string client_mac = mac_address(link, false);
    const std::string router_mac = mac_address(link, true);
    run_checked(
        link.run_in_client({"sysctl", "-q", "-w", "net.ipv6.conf.eth0.disable_ipv6=1"}, kCommandLimit),
        "sysctl");
    run_checked(link.run_in_router({"sysctl", "-q", "-w",
                                    std::string("net.ipv6.conf.") + kRouterToClient + ".disable_ipv6=1"},
                                   kCommandLimit),
                "sysctl");
    run_checked(link.run_in_client({"ip", "neigh", "replace", "10.201.1.1", "lladdr", router_mac, "dev",
                                    "eth0", "nud", "permanent"},
                                   kCommandLimit),
                "ip neigh");
    run_checked(link.run_in_router({"ip", "neigh", "replace", kClientAddress, "lladdr", client_mac, "dev",
                                    kRouterToClient, "nud", "permanent"},
                                   kCommandLimit),
                "ip neigh");
}

// The kernel's counters of the client's eth0 (IFLA_STATS64 over netlink).
json client_counters(const lab& link) {
    const std::string out = run_checked(
        link.run_in_client({"ip", "-j", "-s", "link", "show", "dev", "eth0"}, kCommandLimit), "ip -s");
    return json::parse(out).at(0).at("stats64");
}

std::uint64_t delta(const json& before, const json& after, const char* path_or_direction,
                    const char* counter) {
    return after[path_or_direction][counter].get<std::uint64_t>() -
           before[path_or_direction][counter].get<std::uint64_t>();
}

}  // namespace

TEST_CASE("the monitor counts exactly the packets that crossed the lab's link", "[netlab][monitor]") {
    lab_config config;
    config.upload.delay_ms = 1.0;  // both directions through netem-tun, which counts every packet
    config.download.delay_ms = 1.0;
    lab link(config);
    quiet_client_link(link);
    auto& server = link.start_speedsrv();

    const json netem_before = link.netem_statistics();
    const json kernel_before = client_counters(link);
    speed::testing::streaming_process monitor(link.in_client(
        {speed::testing::speedcli_path(), "monitor", "--json", "--interface", "eth0", "--interval", "0.2"}));
    // The first line proves the monitor's baseline reading was taken: the transfer falls in its window.
    REQUIRE(monitor.read_line(std::chrono::seconds(10)));
    constexpr std::uint32_t kDatagramBytes = 1200;
    const auto speedcli =
        run_speedcli(link, server.port(),
                     {"--udp", "--bitrate", "20M", "--length", std::to_string(kDatagramBytes), "--duration",
                      "2", "--interval", "0", "--no-upload", "--pings", "0", "--loaded-ping-interval", "0"});
    // The connections' last packets (FIN, ACK) cross within a few ms of speedcli's exit.
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    monitor.send_signal(SIGTERM);  // its last reading comes after this
    const int monitor_exit = monitor.wait(std::chrono::seconds(10));
    const json kernel_after = client_counters(link);
    const json netem_after = link.netem_statistics();
    INFO("speedcli: " << speedcli.process.out << speedcli.process.err << "\nmonitor:\n"
                      << monitor.out() << monitor.err());
    REQUIRE(speedcli.process.exit_code == 0);
    REQUIRE(monitor_exit == 0);

    const auto lines = speed::testing::ndjson_lines(monitor.out());
    REQUIRE(lines.size() >= 3);  // intervals and the summary
    std::uint64_t rx_bytes = 0, tx_bytes = 0, rx_packets = 0, tx_packets = 0, dropped = 0;
    for (std::size_t i = 0; i + 1 < lines.size(); ++i) {
        speed::testing::check_interval_line(lines[i]);
        REQUIRE(lines[i]["interfaces"].size() == 1);
        const auto& row = lines[i]["interfaces"][0];
        rx_bytes += row["rx_bytes"].get<std::uint64_t>();
        tx_bytes += row["tx_bytes"].get<std::uint64_t>();
        rx_packets += row["rx_packets"].get<std::uint64_t>();
        tx_packets += row["tx_packets"].get<std::uint64_t>();
        dropped += row["rx_dropped"].get<std::uint64_t>() + row["tx_dropped"].get<std::uint64_t>();
    }
    const auto& download = speedcli.json["download"];
    const std::uint64_t data_received = download["packets_received"].get<std::uint64_t>();
    const json& down_before = netem_path(netem_before, kDownloadTun);
    const json& down_after = netem_path(netem_after, kDownloadTun);
    const json& up_before = netem_path(netem_before, kUploadTun);
    const json& up_after = netem_path(netem_after, kUploadTun);
    const std::uint64_t forwarded_to_client =
        down_after["forwarded"].get<std::uint64_t>() - down_before["forwarded"].get<std::uint64_t>();
    const std::uint64_t received_from_client =
        up_after["received"].get<std::uint64_t>() - up_before["received"].get<std::uint64_t>();
    std::printf(
        "netlab: monitor on the client's eth0: rx %llu packets / %llu bytes, tx %llu / %llu; kernel rx %llu "
        "/ "
        "%llu, tx %llu / %llu; netem-tun forwarded %llu to the client and received %llu from it; speedcli "
        "got "
        "%llu DATA datagrams\n",
        static_cast<unsigned long long>(rx_packets), static_cast<unsigned long long>(rx_bytes),
        static_cast<unsigned long long>(tx_packets), static_cast<unsigned long long>(tx_bytes),
        static_cast<unsigned long long>(delta(kernel_before, kernel_after, "rx", "packets")),
        static_cast<unsigned long long>(delta(kernel_before, kernel_after, "rx", "bytes")),
        static_cast<unsigned long long>(delta(kernel_before, kernel_after, "tx", "packets")),
        static_cast<unsigned long long>(delta(kernel_before, kernel_after, "tx", "bytes")),
        static_cast<unsigned long long>(forwarded_to_client),
        static_cast<unsigned long long>(received_from_client),
        static_cast<unsigned long long>(data_received));

    // The monitor's window lies inside the kernel's and netem-tun's, and nothing crossed outside it.
    CHECK(rx_bytes == delta(kernel_before, kernel_after, "rx", "bytes"));
    CHECK(tx_bytes == delta(kernel_before, kernel_after, "tx", "bytes"));
    CHECK(rx_packets == delta(kernel_before, kernel_after, "rx", "packets"));
    CHECK(tx_packets == delta(kernel_before, kernel_after, "tx", "packets"));
    CHECK(dropped == 0);
    CHECK(rx_packets == forwarded_to_client);
    CHECK(tx_packets == received_from_client);
    // The transfer itself is in there: every DATA datagram speedcli received, each a frame of 1200 + 8 (UDP)
    // + 20 (IPv4) + 14 (Ethernet) bytes, besides the control connection's segments.
    CHECK(data_received == download["packets_sent"].get<std::uint64_t>());  // nothing dropped on this link
    CHECK(rx_packets > data_received);
    CHECK(rx_bytes > data_received * (kDatagramBytes + 8 + 20 + 14));
}
