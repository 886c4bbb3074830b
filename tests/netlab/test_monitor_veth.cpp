// speedcli monitor against the kernel on a veth pair of our own between two network namespaces (root only):
// a known amount of UDP traffic crosses it while the monitor runs, and the monitor's byte and packet sums
// must equal both that amount and the kernel's counter delta (read independently, over netlink, with `ip -j
// -s link`). Also: interfaces appearing and disappearing mid-run are reported, not fatal. Part of the netlab
// runner (main.cpp): skipped, with the reason, where namespaces cannot be made.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <thread>

#include "tests/integration/monitor_ndjson.hpp"
#include "tests/netlab/netlab.hpp"
#include "tests/support/process.hpp"
#include "tests/support/streaming_process.hpp"

using namespace speed::testing;
using nlohmann::json;

namespace {

constexpr auto kCommandLimit = std::chrono::seconds(20);
// Ethernet (14) + IPv4 (20) + UDP (8) headers: what a veth counts beyond each datagram's payload.
constexpr std::uint64_t kUdpFrameOverhead = 42;

std::string ip_binary() {
    for (const char* path : {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"}) {
        if (::access(path, X_OK) == 0) {
            return path;
        }
    }
    return "";
}

// Runs `ip ARGS...`; a failure fails the test with ip's message.
std::string ip(const std::vector<std::string>& args) {
    std::vector<std::string> argv{ip_binary()};
    argv.insert(argv.end(), args.begin(), args.end());
    const auto run = run_process(argv, kCommandLimit);
    std::string command;
    for (const auto& a : argv) {
        command += a + " ";
    }
    INFO(command << "\n" << run.err);
    REQUIRE(run.exit_code == 0);
    return run.out;
}

// Two namespaces joined by a veth pair: `near_if` (10.77.0.1, in `near_ns`) and `far_if` (10.77.0.2, in
// `far_ns`). Nothing but our own traffic crosses it: IPv6 is off (no neighbour discovery or MLD), and the
// neighbours are static (no ARP). Both namespaces go away with the object, also when a check fails; named
// like the lab's ("speedlab-PID-..."), they are swept by the next run when this one is killed.
struct veth_lab {
    std::string tag = std::to_string(::getpid());
    std::string near_ns = std::string(speed::netlab::kNamespacePrefix) + tag + "-mon-a";
    std::string far_ns = std::string(speed::netlab::kNamespacePrefix) + tag + "-mon-b";
    std::string near_if = "sm" + tag + "a";
    std::string far_if = "sm" + tag + "b";

    veth_lab() {
        speed::netlab::sweep_stale_namespaces();
        ip({"netns", "add", near_ns});
        created_near_ = true;
        ip({"netns", "add", far_ns});
        created_far_ = true;
        ip({"link", "add", near_if, "address", "02:00:00:00:00:0a", "netns", near_ns, "type", "veth", "peer",
            "name", far_if, "address", "02:00:00:00:00:0b", "netns", far_ns});
        for (const auto& [ns, ifname] : {std::pair{near_ns, near_if}, std::pair{far_ns, far_if}}) {
            disable_ipv6(ns, ifname);
            ip({"-n", ns, "link", "set", "lo", "up"});
        }
        ip({"-n", near_ns, "addr", "add", "10.77.0.1/24", "dev", near_if});
        ip({"-n", far_ns, "addr", "add", "10.77.0.2/24", "dev", far_if});
        ip({"-n", near_ns, "neigh", "replace", "10.77.0.2", "lladdr", "02:00:00:00:00:0b", "dev", near_if,
            "nud", "permanent"});
        ip({"-n", far_ns, "neigh", "replace", "10.77.0.1", "lladdr", "02:00:00:00:00:0a", "dev", far_if,
            "nud", "permanent"});
        ip({"-n", near_ns, "link", "set", near_if, "up"});
        ip({"-n", far_ns, "link", "set", far_if, "up"});
    }
    ~veth_lab() {
        if (created_near_) {
            run_process({ip_binary(), "netns", "del", near_ns}, kCommandLimit);
        }
        if (created_far_) {
            run_process({ip_binary(), "netns", "del", far_ns}, kCommandLimit);
        }
    }
    veth_lab(const veth_lab&) = delete;
    veth_lab& operator=(const veth_lab&) = delete;

    // The kernel's counters of `ifname` in `ns`, over netlink (IFLA_STATS64), not /proc/net/dev.
    json kernel_counters(const std::string& ns, const std::string& ifname) const {
        const auto links = json::parse(ip({"-n", ns, "-j", "-s", "link", "show", "dev", ifname}));
        REQUIRE(links.size() == 1);
        return links[0].at("stats64");
    }

    // speedcli monitor ARGS... inside `ns`.
    std::vector<std::string> monitor_in(const std::string& ns, const std::vector<std::string>& args) const {
        std::vector<std::string> argv{ip_binary(), "netns", "exec", ns, speedcli_path(), "monitor"};
        argv.insert(argv.end(), args.begin(), args.end());
        return argv;
    }

  private:
    static void disable_ipv6(const std::string& ns, const std::string& ifname) {
        // Absent when the kernel has no IPv6: then there is nothing to disable.
        run_process({ip_binary(), "netns", "exec", ns, "/bin/sh", "-c",
                     "f=/proc/sys/net/ipv6/conf/" + ifname + "/disable_ipv6; [ ! -e $f ] || echo 1 > $f"},
                    kCommandLimit);
    }
    bool created_near_ = false;
    bool created_far_ = false;
};

// A socket in namespace `ns`: created by a thread that joined it (setns affects only the calling thread),
// then usable from any thread.
int udp_socket_in(const std::string& ns) {
    int fd = -1;
    std::thread joiner([&ns, &fd] {
        const int ns_fd = ::open(("/run/netns/" + ns).c_str(), O_RDONLY | O_CLOEXEC);
        if (ns_fd >= 0 && ::setns(ns_fd, CLONE_NEWNET) == 0) {
            fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        }
        if (ns_fd >= 0) {
            ::close(ns_fd);
        }
    });
    joiner.join();
    REQUIRE(fd >= 0);
    return fd;
}

sockaddr_in address(const char* ip_address, std::uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    ::inet_pton(AF_INET, ip_address, &a.sin_addr);
    return a;
}

// A bound UDP socket, so datagrams to it are accepted rather than answered with ICMP port unreachable.
int bound_udp_socket_in(const std::string& ns, const char* ip_address, std::uint16_t port) {
    const int fd = udp_socket_in(ns);
    const sockaddr_in a = address(ip_address, port);
    REQUIRE(::bind(fd, reinterpret_cast<const sockaddr*>(&a), sizeof a) == 0);
    return fd;
}

// Sends `count` datagrams of `payload` bytes, in small bursts so the peer's backlog never overflows.
void send_datagrams(int fd, const char* to_address, std::uint16_t port, int count, std::size_t payload) {
    const sockaddr_in to = address(to_address, port);
    const std::vector<char> data(payload, 'm');
    for (int i = 0; i < count; ++i) {
        REQUIRE(::sendto(fd, data.data(), data.size(), 0, reinterpret_cast<const sockaddr*>(&to),
                         sizeof to) == static_cast<ssize_t>(payload));
        if (i % 50 == 49) {
            std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
    }
}

bool has_name(const json& names, const std::string& name) {
    return std::any_of(names.begin(), names.end(), [&name](const json& n) { return n == name; });
}

// Reads NDJSON lines from `monitor` until one satisfies `wanted`; fails the test after `limit`.
template <typename Predicate>
json await_line(streaming_process& monitor, Predicate wanted,
                std::chrono::seconds limit = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (std::chrono::steady_clock::now() < deadline) {
        const auto line = monitor.read_line(std::chrono::milliseconds(500));
        if (!line) {
            continue;
        }
        const auto parsed = json::parse(*line, nullptr, false);
        if (parsed.is_object() && wanted(parsed)) {
            return parsed;
        }
    }
    FAIL("the monitor printed no such line; stdout:\n" << monitor.out() << "\nstderr:\n" << monitor.err());
    return nullptr;
}

}  // namespace

TEST_CASE("the monitor's byte sums equal the kernel's counters on a veth pair", "[netlab][monitor]") {
    veth_lab lab;
    const int far_receiver = bound_udp_socket_in(lab.far_ns, "10.77.0.2", 5001);
    const int near_receiver = bound_udp_socket_in(lab.near_ns, "10.77.0.1", 5002);
    const int near_sender = udp_socket_in(lab.near_ns);
    const int far_sender = udp_socket_in(lab.far_ns);

    const json before = lab.kernel_counters(lab.near_ns, lab.near_if);
    streaming_process monitor(
        lab.monitor_in(lab.near_ns, {"--json", "--interface", lab.near_if, "--interval", "0.2"}));
    // The first line proves the baseline reading was taken: every datagram from here on falls in the window.
    REQUIRE(monitor.read_line(std::chrono::seconds(10)));

    constexpr int kOut = 3000;
    constexpr std::size_t kOutPayload = 1200;
    constexpr int kIn = 700;
    constexpr std::size_t kInPayload = 300;
    send_datagrams(near_sender, "10.77.0.2", 5001, kOut, kOutPayload);
    send_datagrams(far_sender, "10.77.0.1", 5002, kIn, kInPayload);
    std::this_thread::sleep_for(std::chrono::milliseconds(300));  // a full interval with the traffic in it
    // SIGTERM ends the window: the monitor's last reading is taken after it, so after the last datagram.
    monitor.send_signal(SIGTERM);
    const int exit_code = monitor.wait(std::chrono::seconds(10));
    const json after = lab.kernel_counters(lab.near_ns, lab.near_if);
    for (const int fd : {far_receiver, near_receiver, near_sender, far_sender}) {
        ::close(fd);
    }
    INFO("stdout:\n" << monitor.out() << "\nstderr:\n" << monitor.err());
    REQUIRE(exit_code == 0);

    const auto lines = ndjson_lines(monitor.out());
    REQUIRE(lines.size() >= 3);  // at least two intervals and the summary
    const std::vector<nlohmann::ordered_json> intervals(lines.begin(), lines.end() - 1);
    std::uint64_t rx_bytes = 0;
    std::uint64_t tx_bytes = 0;
    std::uint64_t rx_packets = 0;
    std::uint64_t tx_packets = 0;
    std::uint64_t dropped = 0;
    for (const auto& line : intervals) {
        check_interval_line(line);
        REQUIRE(line["interfaces"].size() == 1);
        const auto& row = line["interfaces"][0];
        CHECK(row["name"] == lab.near_if);
        CHECK_FALSE(row.contains("counters_reset"));
        rx_bytes += row["rx_bytes"].get<std::uint64_t>();
        tx_bytes += row["tx_bytes"].get<std::uint64_t>();
        rx_packets += row["rx_packets"].get<std::uint64_t>();
        tx_packets += row["tx_packets"].get<std::uint64_t>();
        dropped += row["rx_dropped"].get<std::uint64_t>() + row["tx_dropped"].get<std::uint64_t>();
    }
    CHECK(intervals.back()["partial"] == true);
    check_summary_line(lines.back(), intervals);

    // The kernel's own delta over a window that contains the monitor's (and no other traffic).
    const auto delta = [&](const char* direction, const char* counter) {
        return after[direction][counter].get<std::uint64_t>() -
               before[direction][counter].get<std::uint64_t>();
    };
    CHECK(tx_bytes == delta("tx", "bytes"));
    CHECK(rx_bytes == delta("rx", "bytes"));
    CHECK(tx_packets == delta("tx", "packets"));
    CHECK(rx_packets == delta("rx", "packets"));
    // And the traffic we sent, to the byte.
    CHECK(dropped == 0);
    CHECK(tx_packets == kOut);
    CHECK(rx_packets == kIn);
    CHECK(tx_bytes == kOut * (kOutPayload + kUdpFrameOverhead));
    CHECK(rx_bytes == kIn * (kInPayload + kUdpFrameOverhead));
    // The summary's totals are the same sums (check_summary_line) and its average is bytes over the window.
    const auto& summary = lines.back()["summary"]["interfaces"][0];
    CHECK(summary["tx_bytes"].get<std::uint64_t>() == kOut * (kOutPayload + kUdpFrameOverhead));
    CHECK(summary["tx_bits_per_second"].get<double>() ==
          Approx(static_cast<double>(tx_bytes) * 8.0 / summary["seconds"].get<double>()).epsilon(1e-9));
}

TEST_CASE("interfaces that appear and disappear mid-run are reported", "[netlab][monitor]") {
    veth_lab lab;
    const std::string extra = "sm" + lab.tag + "x";
    const std::string extra_peer = "sm" + lab.tag + "y";
    const auto add_extra_pair = [&] {
        ip({"-n", lab.near_ns, "link", "add", extra, "type", "veth", "peer", "name", extra_peer});
        ip({"-n", lab.near_ns, "link", "set", extra, "up"});
        ip({"-n", lab.near_ns, "link", "set", extra_peer, "up"});
    };

    // Every interface that is up (JSON), and one named interface (text).
    streaming_process every(lab.monitor_in(lab.near_ns, {"--json", "--interval", "0.1"}));
    const json first = await_line(every, [](const json&) { return true; });
    REQUIRE(first["interfaces"].size() == 2);
    CHECK(first["interfaces"][0]["name"] == "lo");
    CHECK(first["interfaces"][1]["name"] == lab.near_if);

    add_extra_pair();
    streaming_process named(lab.monitor_in(lab.near_ns, {"--interface", extra, "--interval", "0.1"}));
    REQUIRE(named.read_line(std::chrono::seconds(10)));  // the header: its baseline is taken
    const json appeared = await_line(every, [](const json& line) { return line.contains("appeared"); });
    CHECK(appeared["appeared"].size() == 2);
    CHECK(has_name(appeared["appeared"], extra));
    CHECK(has_name(appeared["appeared"], extra_peer));
    // From the next interval on the new interfaces have rows.
    const json next = await_line(every, [](const json&) { return true; });
    CHECK(next["interfaces"].size() == 4);

    ip({"-n", lab.near_ns, "link", "del", extra});  // deletes its peer too
    const json gone = await_line(every, [](const json& line) { return line.contains("disappeared"); });
    CHECK(has_name(gone["disappeared"], extra));
    CHECK(has_name(gone["disappeared"], extra_peer));
    CHECK(gone["interfaces"].size() == 2);

    add_extra_pair();
    const json back = await_line(every, [](const json& line) { return line.contains("appeared"); });
    CHECK(has_name(back["appeared"], extra));
    std::this_thread::sleep_for(std::chrono::milliseconds(300));

    for (streaming_process* monitor : {&every, &named}) {
        monitor->send_signal(SIGINT);
        INFO("stdout:\n" << monitor->out() << "\nstderr:\n" << monitor->err());
        CHECK(monitor->wait(std::chrono::seconds(10)) == 0);
    }
    const auto lines = ndjson_lines(every.out());
    REQUIRE(lines.size() >= 2);
    for (std::size_t i = 0; i + 1 < lines.size(); ++i) {
        check_interval_line(lines[i]);
    }
    const auto& summary_interfaces = lines.back()["summary"]["interfaces"];
    CHECK(summary_interfaces.size() == 4);  // lo, the lab's veth, and both extra ones

    // The text output of the named interface: one line when it went, one when it came back, rows around them.
    INFO(named.out());
    CHECK_THAT(named.out(),
               Catch::Contains(extra + " disappeared (its traffic since the previous row is not counted)"));
    CHECK_THAT(named.out(), Catch::Contains(extra + " appeared (rows from the next interval on)"));
    CHECK_THAT(named.out(), Catch::Contains("Summary: "));
    CHECK(named.out().find('\x1b') == std::string::npos);
}
