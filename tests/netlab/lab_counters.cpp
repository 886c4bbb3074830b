#include "tests/netlab/lab_counters.hpp"

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <stdexcept>

#include "tests/support/process.hpp"

namespace speed::netlab {

namespace {

using namespace std::chrono_literals;

std::string output_of(const std::vector<std::string>& argv) {
    const auto run = testing::run_process(argv, 10s);
    if (run.exit_code != 0) {
        std::string command;
        for (const auto& part : argv) {
            command += part + " ";
        }
        throw std::runtime_error("netlab: `" + command + "` failed: " + run.err);
    }
    return run.out;
}

// The first line of /proc/stat: "cpu  user nice system idle iowait irq softirq steal guest guest_nice".
// Guest time is already counted in user and nice, so the total is the first eight fields.
void read_cpu_ticks(lab_counters& counters) {
    std::ifstream in("/proc/stat");
    std::string label;
    in >> label;
    if (label != "cpu") {
        throw std::runtime_error("netlab: /proc/stat does not start with the cpu line");
    }
    for (int field = 0; field < 8; ++field) {
        std::uint64_t ticks = 0;
        in >> ticks;
        counters.cpu_ticks += ticks;
        if (field == 7) {
            counters.steal_ticks = ticks;
        }
    }
}

// The drops of every qdisc on `device` in the router namespace (`tc -s -j`: one object per qdisc).
std::uint64_t queue_drops(const lab& lab, const char* device) {
    const auto qdiscs = nlohmann::json::parse(
        output_of({"tc", "-n", lab.router_namespace(), "-s", "-j", "qdisc", "show", "dev", device}));
    std::uint64_t drops = 0;
    for (const auto& qdisc : qdiscs) {
        drops += qdisc.value("drops", std::uint64_t{0});
    }
    return drops;
}

}  // namespace

std::uint64_t proc_net_value(const std::string& text, const std::string& table, const std::string& name) {
    const std::string prefix = table + ": ";
    std::istringstream lines(text);
    std::string names;
    std::string values;
    while (std::getline(lines, names)) {
        if (names.rfind(prefix, 0) != 0 || !std::getline(lines, values)) {
            continue;
        }
        std::istringstream name_fields(names);
        std::istringstream value_fields(values);
        std::string field;
        std::string value;
        while (name_fields >> field && value_fields >> value) {
            if (field == name) {
                return std::stoull(value);
            }
        }
    }
    throw std::runtime_error("netlab: no " + table + " " + name + " in:\n" + text);
}

lab_counters read_lab_counters(const lab& lab) {
    lab_counters counters;
    read_cpu_ticks(counters);
    counters.download_queue_drops = queue_drops(lab, kRouterToClient);
    counters.upload_queue_drops = queue_drops(lab, kRouterToServer);
    const auto client_snmp = output_of(lab.in_client({"cat", "/proc/net/snmp", "/proc/net/netstat"}));
    const auto server_snmp = output_of(lab.in_server({"cat", "/proc/net/snmp", "/proc/net/netstat"}));
    counters.client_udp_buffer_drops = proc_net_value(client_snmp, "Udp", "RcvbufErrors");
    counters.server_udp_buffer_drops = proc_net_value(server_snmp, "Udp", "RcvbufErrors");
    counters.client_tcp_queue_drops = proc_net_value(client_snmp, "TcpExt", "TCPRcvQDrop");
    counters.server_tcp_queue_drops = proc_net_value(server_snmp, "TcpExt", "TCPRcvQDrop");
    return counters;
}

lab_counters operator-(const lab_counters& after, const lab_counters& before) {
    // Every counter only grows while the lab exists.
    return {after.cpu_ticks - before.cpu_ticks,
            after.steal_ticks - before.steal_ticks,
            after.download_queue_drops - before.download_queue_drops,
            after.upload_queue_drops - before.upload_queue_drops,
            after.client_udp_buffer_drops - before.client_udp_buffer_drops,
            after.server_udp_buffer_drops - before.server_udp_buffer_drops,
            after.client_tcp_queue_drops - before.client_tcp_queue_drops,
            after.server_tcp_queue_drops - before.server_tcp_queue_drops};
}

double steal_share(const lab_counters& during) {
    return during.cpu_ticks == 0
               ? 0.0
               : static_cast<double>(during.steal_ticks) / static_cast<double>(during.cpu_ticks);
}

std::string mbit_text(double bits_per_second) {
    char text[48];
    std::snprintf(text, sizeof text, "%.3f Mbit/s", bits_per_second / 1e6);
    return text;
}

std::string describe(const lab_counters& during) {
    char text[320];
    std::snprintf(
        text, sizeof text,
        "host stole %.1f %% of the CPU; queues dropped %llu down, %llu up; receive buffers dropped %llu "
        "UDP datagrams and %llu TCP segments at the client, %llu and %llu at the server",
        100.0 * steal_share(during), static_cast<unsigned long long>(during.download_queue_drops),
        static_cast<unsigned long long>(during.upload_queue_drops),
        static_cast<unsigned long long>(during.client_udp_buffer_drops),
        static_cast<unsigned long long>(during.client_tcp_queue_drops),
        static_cast<unsigned long long>(during.server_udp_buffer_drops),
        static_cast<unsigned long long>(during.server_tcp_queue_drops));
    return text;
}

}  // namespace speed::netlab
