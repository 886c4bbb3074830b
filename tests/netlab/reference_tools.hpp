// The reference tools of the accuracy tests, run on the lab's link: ping for round trips, iperf3 for goodput,
// and speedcli itself.
#pragma once

#include <chrono>
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/integration/client_json.hpp"
#include "tests/netlab/netlab.hpp"

namespace speed::netlab {

struct ping_result {
    std::vector<double> rtt_ms;  // one per reply, in order
    unsigned transmitted = 0;
    unsigned received = 0;
    std::string output;
};

// ICMP echo from the client namespace to the server address: `count` requests, `interval_seconds` apart.
ping_result ping_server(const lab& lab, unsigned count, double interval_seconds);

// Where the lab's iperf3 servers listen (the server namespace belongs to one lab alone).
inline constexpr const char* kIperf3Port = "5201";

enum class transfer { download, upload };

struct iperf3_result {
    double receiver_bits_per_second =
        0.0;  // end.sum_received: the receiver's figure, omitted seconds excluded
    double seconds = 0.0;
    nlohmann::json json;  // everything iperf3 -J printed
};

// One iperf3 test over the lab's link: a one-off server (-1) in the server namespace and the client in the
// client namespace; a download is iperf3 -R (the server sends). `extra_args` go to the client (e.g. -u -b
// 10M), `server_args` to the server (e.g. -i 0.1 for the intervals --get-server-output returns).
iperf3_result run_iperf3(lab& lab, transfer direction, double seconds, double omit_seconds,
                         unsigned streams = 1, const std::vector<std::string>& extra_args = {},
                         const std::vector<std::string>& server_args = {});

// speedcli --json in the client namespace against the lab's speedsrv at `port`, with `args` added.
testing::client_run run_speedcli(const lab& lab, std::uint16_t port, const std::vector<std::string>& args,
                                 std::chrono::milliseconds limit = std::chrono::seconds(60));

// The payload bytes of one full-sized TCP segment and the bytes tbf counts for it (the Ethernet frame without
// preamble and FCS), on a link of `mtu` bytes with TCP timestamps on or off. See docs/netlab.md.
struct tcp_segment_size {
    std::size_t payload_bytes;
    std::size_t frame_bytes;
};
tcp_segment_size full_tcp_segment(std::size_t mtu, bool timestamps);

// Whether TCP timestamps are on in the client namespace (net.ipv4.tcp_timestamps != 0).
bool tcp_timestamps_enabled(const lab& lab);

double median(const std::vector<double>& values);

// speedsrv and speedcli set only the congestion controls the kernel allows unprivileged processes
// (/proc/sys/net/ipv4/tcp_allowed_congestion_control), root or not. This list is the host's, not the lab
// namespace's: when Cubic is missing from it, it is added for the test's duration and the list restored
// after.
class cubic_allowed {
  public:
    cubic_allowed() {
        std::ifstream in(kPath);
        std::getline(in, original_);
        if ((" " + original_ + " ").find(" cubic ") == std::string::npos) {
            std::ofstream(kPath) << original_ << " cubic\n";
            changed_ = true;
        }
    }
    ~cubic_allowed() {
        if (changed_) {
            std::ofstream(kPath) << original_ << "\n";
        }
    }
    cubic_allowed(const cubic_allowed&) = delete;
    cubic_allowed& operator=(const cubic_allowed&) = delete;

  private:
    static constexpr const char* kPath = "/proc/sys/net/ipv4/tcp_allowed_congestion_control";
    std::string original_;
    bool changed_ = false;
};

}  // namespace speed::netlab
