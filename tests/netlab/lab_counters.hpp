// What the machine and the lab did during a run, beside a throughput test's figures: the CPU time the host
// stole from this VM, the tbf queues' drops and the receive-buffer drops of the namespaces' sockets. They
// tell a run on a disturbed machine (a vCPU paused while a sender's burst overflowed a queue) from a tool
// that measured wrong (docs/netlab.md, "When a throughput test fails").
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "tests/netlab/netlab.hpp"

namespace speed::netlab {

struct lab_counters {
    // Host-wide CPU time (/proc/stat, every CPU), in clock ticks; `steal_ticks` is the part the hypervisor
    // gave to other guests while this VM had work to run.
    std::uint64_t cpu_ticks = 0;
    std::uint64_t steal_ticks = 0;
    std::uint64_t download_queue_drops = 0;  // the router's qdisc towards the client (tbf when rate-limited)
    std::uint64_t upload_queue_drops = 0;    // towards the server
    // Datagrams the namespace's UDP sockets dropped on a full receive buffer (Udp RcvbufErrors).
    std::uint64_t client_udp_buffer_drops = 0;
    std::uint64_t server_udp_buffer_drops = 0;
    // TCP segments the namespace dropped because a socket's receive queue was over its memory (TcpExt
    // TCPRcvQDrop).
    std::uint64_t client_tcp_queue_drops = 0;
    std::uint64_t server_tcp_queue_drops = 0;
};

// Every counter of `lab` now.
lab_counters read_lab_counters(const lab& lab);

// What happened between two readings.
lab_counters operator-(const lab_counters& after, const lab_counters& before);

// The share of the CPU time the host stole, 0 to 1 (0 when no time passed).
double steal_share(const lab_counters& during);

// One line for a test's output: "host stole 0.3 % of the CPU; queues dropped 0 down, 2 up; receive buffers
// dropped 0 UDP datagrams and 0 TCP segments at the client, 0 and 0 at the server".
std::string describe(const lab_counters& during);

// "89.300 Mbit/s": a rate in the texts that name a shortfall.
std::string mbit_text(double bits_per_second);

// Measures from construction: `during()` is what happened since.
class lab_counter_window {
  public:
    explicit lab_counter_window(const lab& lab) : lab_(lab), start_(read_lab_counters(lab)) {}
    lab_counters during() const { return read_lab_counters(lab_) - start_; }

  private:
    const lab& lab_;
    lab_counters start_;
};

// A result and what the lab's counters saw during the run that gave it.
template <typename Result>
struct counted_run {
    Result result;
    lab_counters during;
};

// Runs `measure` and, when `shortfall(result, during)` names one (a non-empty text: "89.300 Mbit/s below
// 90.860 Mbit/s"), runs it once more and returns the second run. A shortfall the tool under test caused
// itself (its own receive buffer overflowing, which `during` shows) is for the caller to leave unnamed, so
// that it fails the test instead of being repeated. A throughput run of either tool on this 2-core VM can
// fall short of the link for reasons that are not the tool's (the host stealing CPU while a vCPU holds a
// sender's queue or a receiver's socket); the first run's figures and counters are printed, so a repeat never
// hides what happened, and a tool that falls short twice still fails the test's checks.
template <typename Measure, typename Shortfall>
auto measure_repeating_once(const lab& lab, const std::string& what, Measure measure, Shortfall shortfall)
    -> counted_run<decltype(measure())> {
    for (int attempt = 1;; ++attempt) {
        const lab_counter_window counters(lab);
        auto result = measure();
        const lab_counters during = counters.during();
        const std::string reason = shortfall(result, during);
        std::printf("netlab: %s%s: %s\n", what.c_str(), attempt == 2 ? " (repeated)" : "",
                    describe(during).c_str());
        if (reason.empty() || attempt == 2) {
            return {std::move(result), during};
        }
        std::printf("netlab: %s fell short (%s); repeating it once\n", what.c_str(), reason.c_str());
    }
}

// The value of `name` in the `table` lines ("Udp:", "TcpExt:": a line of names, then one of values) of
// /proc/net/snmp or /proc/net/netstat text; throws when it is not there.
std::uint64_t proc_net_value(const std::string& text, const std::string& table, const std::string& name);

}  // namespace speed::netlab
