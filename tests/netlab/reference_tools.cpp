#include "tests/netlab/reference_tools.hpp"

#include <regex>
#include <stdexcept>

#include "common/statistics.hpp"

namespace speed::netlab {

using namespace std::chrono_literals;

namespace {
constexpr const char* kIperf3Port = "5201";  // the server namespace belongs to this lab alone
}  // namespace

ping_result ping_server(const lab& lab, unsigned count, double interval_seconds) {
    const auto limit = std::chrono::milliseconds(static_cast<long>(count * interval_seconds * 1000.0)) + 15s;
    const auto run = lab.run_in_client({"ping", "-n", "-c", std::to_string(count), "-i",
                                        std::to_string(interval_seconds), "-W", "5", kServerAddress},
                                       limit);
    ping_result result;
    result.output = run.out + run.err;
    const std::regex reply("time=([0-9.]+) ms");
    for (auto it = std::sregex_iterator(run.out.begin(), run.out.end(), reply); it != std::sregex_iterator();
         ++it) {
        result.rtt_ms.push_back(std::stod((*it)[1].str()));
    }
    std::smatch summary;
    if (std::regex_search(run.out, summary, std::regex("([0-9]+) packets transmitted, ([0-9]+) received"))) {
        result.transmitted = static_cast<unsigned>(std::stoul(summary[1].str()));
        result.received = static_cast<unsigned>(std::stoul(summary[2].str()));
    }
    return result;
}

iperf3_result run_iperf3(lab& lab, transfer direction, double seconds, double omit_seconds,
                         unsigned streams) {
    lab.start_in_server({"iperf3", "-s", "-1", "--forceflush", "-B", kServerAddress, "-p", kIperf3Port},
                        "Server listening");
    std::vector<std::string> argv{"iperf3",       "-c",
                                  kServerAddress, "-p",
                                  kIperf3Port,    "-J",
                                  "-t",           std::to_string(seconds),
                                  "-O",           std::to_string(omit_seconds),
                                  "-P",           std::to_string(streams)};
    if (direction == transfer::download) {
        argv.push_back("-R");
    }
    const auto limit = std::chrono::milliseconds(static_cast<long>((seconds + omit_seconds) * 1000.0)) + 30s;
    const auto run = lab.run_in_client(argv, limit);
    iperf3_result result;
    result.json = nlohmann::json::parse(run.out, nullptr, /*allow_exceptions=*/false);
    if (run.exit_code != 0 || result.json.is_discarded() || !result.json.contains("end")) {
        throw std::runtime_error("iperf3 failed (exit " + std::to_string(run.exit_code) + "): " + run.out +
                                 run.err);
    }
    const auto& received = result.json["end"]["sum_received"];
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
