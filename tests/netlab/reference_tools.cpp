#include "tests/netlab/reference_tools.hpp"

#include <cstdio>
#include <sstream>
#include <stdexcept>

#include "common/statistics.hpp"

namespace speed::netlab {

using namespace std::chrono_literals;

ping_result ping_server(const lab& lab, unsigned count, double interval_seconds) {
    const auto limit = std::chrono::milliseconds(static_cast<long>(count * interval_seconds * 1000.0)) + 15s;
    const auto run = lab.run_in_client({"ping", "-n", "-c", std::to_string(count), "-i",
                                        std::to_string(interval_seconds), "-W", "5", kServerAddress},
                                       limit);
    ping_result result;
    result.output = run.out + run.err;
    // "64 bytes from 10.201.2.2: icmp_seq=1 ttl=62 time=20.3 ms" per reply, then
    // "40 packets transmitted, 40 received, 0% packet loss, time 1953ms".
    std::istringstream lines(run.out);
    for (std::string line; std::getline(lines, line);) {
        if (const auto at = line.find(" time=");
            at != std::string::npos && line.find(" ms", at) != std::string::npos) {
            result.rtt_ms.push_back(std::stod(line.substr(at + 6)));
        } else if (line.find(" packets transmitted, ") != std::string::npos) {
            std::sscanf(line.c_str(), "%u packets transmitted, %u received", &result.transmitted,
                        &result.received);
        }
    }
    return result;
}

iperf3_result run_iperf3(lab& lab, transfer direction, double seconds, double omit_seconds, unsigned streams,
                         const std::vector<std::string>& extra_args,
                         const std::vector<std::string>& server_args) {
    std::vector<std::string> server_argv{"iperf3", "-s",           "-1", "--forceflush",
                                         "-B",     kServerAddress, "-p", kIperf3Port};
    server_argv.insert(server_argv.end(), server_args.begin(), server_args.end());
    auto& server = lab.start_in_server(server_argv, "Server listening");
    std::vector<std::string> argv{"iperf3",       "-c",
                                  kServerAddress, "-p",
                                  kIperf3Port,    "-J",
                                  "-t",           std::to_string(seconds),
                                  "-O",           std::to_string(omit_seconds),
                                  "-P",           std::to_string(streams)};
    if (direction == transfer::download) {
        argv.push_back("-R");
    }
    argv.insert(argv.end(), extra_args.begin(), extra_args.end());
    const auto limit = std::chrono::milliseconds(static_cast<long>((seconds + omit_seconds) * 1000.0)) + 30s;
    const auto run = lab.run_in_client(argv, limit);
    // The one-off server (-1) exits after its test, but only after the client has its results: wait for it,
    // so that the next run's server finds the port free ("Address already in use" otherwise).
    if (server.wait(5s) == -1 && server.running()) {
        server.stop();
    }
    iperf3_result result;
    result.json = nlohmann::json::parse(run.out, nullptr, /*allow_exceptions=*/false);
    if (run.exit_code != 0 || result.json.is_discarded() || !result.json.contains("end")) {
        throw std::runtime_error("iperf3 failed (exit " + std::to_string(run.exit_code) + "): " + run.out +
                                 run.err);
    }
    const auto& end = result.json["end"];
    const auto& received = end.contains("sum_received") ? end["sum_received"] : end["sum"];  // UDP: "sum"
    result.receiver_bits_per_second = received["bits_per_second"].get<double>();
    result.seconds = received["seconds"].get<double>();
    return result;
}

testing::client_run run_speedcli(const lab& lab, std::uint16_t port, const std::vector<std::string>& args,
                                 std::chrono::milliseconds limit) {
    std::vector<std::string> argv{kServerAddress, "--port", std::to_string(port), "--json"};
    argv.insert(argv.end(), args.begin(), args.end());
    return testing::run_client_via(lab.in_client({}), argv, limit);
}

tcp_segment_size full_tcp_segment(std::size_t mtu, bool timestamps) {
    constexpr std::size_t kEthernetHeader =
        14;                                  // destination, source, EtherType; tbf sees no preamble or FCS
    constexpr std::size_t kIpv4Header = 20;  // no options
    constexpr std::size_t kTcpHeader = 20;
    constexpr std::size_t kTimestampOption = 12;  // 10 bytes of option, padded to 12 with two NOPs
    const std::size_t payload = mtu - kIpv4Header - kTcpHeader - (timestamps ? kTimestampOption : 0);
    return {payload, mtu + kEthernetHeader};
}

bool tcp_timestamps_enabled(const lab& lab) {
    const auto run = lab.run_in_client({"sysctl", "-n", "net.ipv4.tcp_timestamps"}, 10s);
    return run.exit_code == 0 && std::stoi(run.out) != 0;
}

double median(const std::vector<double>& values) {
    return stats::summarize(values).median;
}

}  // namespace speed::netlab
