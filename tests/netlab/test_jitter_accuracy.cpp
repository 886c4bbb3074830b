// UDP on a jittered link against ground truth: netem-tun delays every packet by 5 ms plus a seeded uniform
// 0-4 ms, so datagrams overtake each other. speedcli's out-of-order count must equal the datagrams netem-tun
// released after a later one (its `overtaken` count), and its IPDV and jitter must match the closed forms of
// that delay distribution and iperf3 on the same link in the same run. See docs/netlab.md.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "tests/netlab/lab_counters.hpp"
#include "tests/netlab/reference_tools.hpp"

using namespace speed::netlab;

namespace {

constexpr double kDelayMs = 5.0;
constexpr double kJitterMs = 4.0;
constexpr double kBitsPerSecond = 20e6;
constexpr std::uint32_t kDataBytes = 1400;  // UDP payload: no other datagram on the path has this length

// The link of the acceptance criterion: 5 ms + uniform 0-4 ms each way, no rate limit (the sender's pace is
// the only one, so no queue adds its own delay variation).
lab_config jittered_link() {
    lab_config config;
    for (link_direction* direction : {&config.upload, &config.download}) {
        direction->delay_ms = kDelayMs;
        direction->jitter_ms = kJitterMs;
    }
    config.seed = 5;
    return config;
}

std::vector<std::string> speedcli_udp_args(double seconds, double interval_seconds) {
    return {"--udp",
            "--bitrate",
            "20M",
            "--length",
            std::to_string(kDataBytes),
            "--streams",
            "1",
            "--duration",
            std::to_string(seconds),
            "--omit",
            "0",
            "--interval",
            std::to_string(interval_seconds),
            "--pings",
            "0",
            "--loaded-ping-interval",
            "0"};
}

std::uint64_t overtaken_data(const nlohmann::json& statistics, const char* device) {
    const auto& lengths = netem_path(statistics, device)["udp_payload_bytes"];
    const std::string key = std::to_string(kDataBytes);
    return lengths.contains(key) ? lengths[key]["overtaken"].get<std::uint64_t>() : 0;
}

// IPDV between consecutive sequence numbers (RFC 5481) of two independent uniform [0, D] delays: |U1 - U2|
// has the triangular density 2 (D - x) / D^2, so P(|U1 - U2| <= x) = 1 - (1 - x / D)^2 and the median is
// D (1 - 1 / sqrt 2).
double ipdv_median_ms() {
    return kJitterMs * (1.0 - 1.0 / std::sqrt(2.0));  // 1.1716 ms
}

// RFC 3550 jitter J is a running mean (gain 1/16) of |transit difference| between packets consecutive in
// ARRIVAL order. Without reordering that is E|U1 - U2| = D / 3. Here a datagram leaves every 0.57 ms while
// the delay varies over 4 ms, so arrival order is not sending order and the pairs are not independent: the
// expectation is that of the model itself (periodic sends, uniform delays, sorted by arrival), computed here
// from two million seeded draws (its own sampling error is below 0.1 %).
double rfc3550_expectation_ms() {
    const double interval_ms = (kDataBytes + 28.0) * 8.0 / kBitsPerSecond * 1e3;  // IPv4 + UDP headers
    std::mt19937_64 random(1);
    std::uniform_real_distribution<double> uniform(0.0, kJitterMs);
    std::vector<std::pair<double, double>> arrivals;  // (arrival, transit - fixed delay)
    const int count = 2'000'000;
    arrivals.reserve(count);
    for (int i = 0; i < count; ++i) {
        const double extra = uniform(random);
        arrivals.emplace_back(i * interval_ms + extra, extra);
    }
    std::sort(arrivals.begin(), arrivals.end());
    double sum = 0.0;
    for (std::size_t i = 1; i < arrivals.size(); ++i) {
        sum += std::abs(arrivals[i].second - arrivals[i - 1].second);
    }
    return sum / static_cast<double>(arrivals.size() - 1);
}

// The median of the running jitter over a run's intervals (each sampled at the interval's end). One sample of
// J has a standard deviation of about 13 % of its value here (sd of |U1 - U2| = 0.94 ms x sqrt(1/31) for an
// exponential mean of gain 1/16; measured 10-20 %). Samples 0.1 s apart, 175 datagrams, are independent (J
// forgets within ~16 datagrams), so the median of a 5 s run's 50 has about 2-3 % (1.25 x 15 % / sqrt 50).
// The median, not the mean: a receiver that stamps arrivals in user space (iperf3) and is descheduled for a
// few milliseconds stamps a burst at once, which lifts the J sampled at the end of that interval. A CI run's
// mean of five 1 s iperf3 server intervals came out at 1.93 ms, 34 % above the model, while speedcli (kernel
// timestamps) and the closed forms agreed: one or two samples far off move a mean of five, not a median of
// fifty. Both tools are sampled and summarized the same way.
constexpr std::size_t kIntervalsAtLeast = 40;

// The samples, for the log: "1.402 1.388 ...".
std::string listed(const std::vector<double>& values) {
    std::string text;
    for (const double v : values) {
        char number[32];
        std::snprintf(number, sizeof number, "%s%.3f", text.empty() ? "" : " ", v);
        text += number;
    }
    return text;
}

// speedcli's or iperf3's (-J, the client receiving) intervals: "jitter_ms" directly or under "sum".
std::vector<double> interval_jitters(const nlohmann::json& intervals) {
    std::vector<double> jitters;
    for (const auto& interval : intervals) {
        const auto& entry = interval.contains("sum") ? interval["sum"] : interval;
        if (entry.contains("jitter_ms") && entry["jitter_ms"].is_number()) {
            jitters.push_back(entry["jitter_ms"].get<double>());
        }
    }
    return jitters;
}

// An iperf3 server's intervals (the receiver of an upload), from the text --get-server-output returns: the
// lines "[  5]   0.00-1.00   sec  2.38 MBytes  20.0 Mbits/sec  1.402 ms  0/1785 (0%)", not the summary
// lines that end in "receiver" or "sender".
std::vector<double> server_text_jitters(const std::string& text) {
    std::vector<double> jitters;
    std::istringstream lines(text);
    for (std::string line; std::getline(lines, line);) {
        const auto ms = line.find(" ms ");
        if (line.rfind("[", 0) != 0 || line.find(" sec ") == std::string::npos || ms == std::string::npos ||
            line.find("receiver") != std::string::npos || line.find("sender") != std::string::npos) {
            continue;
        }
        const auto start = line.rfind(' ', ms - 1);
        jitters.push_back(std::stod(line.substr(start + 1, ms - start - 1)));
    }
    return jitters;
}

}  // namespace

TEST_CASE("UDP out-of-order through a jittered link equals the datagrams netem-tun counts as overtaken",
          "[netlab][accuracy]") {
    lab link(jittered_link());
    auto& server = link.start_speedsrv();
    const auto before = link.netem_statistics();
    const auto speedcli = run_speedcli(link, server.port(), speedcli_udp_args(3.0, 0.0));
    const auto after = link.netem_statistics();
    INFO(speedcli.process.out << speedcli.process.err << "\nnetem-tun: " << after.dump(2));
    REQUIRE(speedcli.process.exit_code == 0);
    for (const auto& [name, device] :
         {std::pair{"download", kDownloadTun}, std::pair{"upload", kUploadTun}}) {
        const auto& d = speedcli.json[name];
        const std::uint64_t reported = d["out_of_order"].get<std::uint64_t>();
        const std::uint64_t overtaken = overtaken_data(after, device) - overtaken_data(before, device);
        std::printf(
            "netlab: UDP %s through 5 ms + 0-4 ms jitter: speedcli out_of_order %llu of %llu, netem-tun "
            "overtaken %llu\n",
            name, static_cast<unsigned long long>(reported),
            static_cast<unsigned long long>(d["packets_received"].get<std::uint64_t>()),
            static_cast<unsigned long long>(overtaken));
        // One flow, no loss, nothing between netem-tun and the receiver that reorders (veths, no qdisc
        // queue): the receiver sees exactly netem-tun's release order.
        CHECK(overtaken > 1000);  // about two thirds of the datagrams at this spacing: the check has teeth
        CHECK(reported == overtaken);
        CHECK(d["lost_packets"] == 0);
        CHECK(d["duplicates"] == 0);
    }
}

TEST_CASE("UDP IPDV and jitter through 5 ms + 0-4 ms jitter match the closed forms and iperf3",
          "[netlab][accuracy]") {
    skip_unless_installed("iperf3", "iperf3");
    lab_config config = jittered_link();
    // iperf3 stamps arrivals in user space: at real-time priority a busy machine does not add its
    // scheduling delays to them (speedcli takes the kernel's receive timestamps either way).
    config.realtime_endpoints = true;
    lab link(config);
    auto& server = link.start_speedsrv();
    constexpr double kSeconds = 5.0;
    constexpr double kIntervalSeconds = 0.1;  // the shortest both tools allow: the most samples (see median)
    const auto speedcli = run_speedcli(link, server.port(), speedcli_udp_args(kSeconds, kIntervalSeconds));
    INFO(speedcli.process.out << speedcli.process.err);
    REQUIRE(speedcli.process.exit_code == 0);
    const std::vector<std::string> iperf3_args{"-u",
                                               "-b",
                                               "20M",
                                               "-l",
                                               std::to_string(kDataBytes),
                                               "-i",
                                               std::to_string(kIntervalSeconds),
                                               "--get-server-output"};
    const lab_counter_window counters(link);
    const std::vector<std::string> iperf3_server_args{"-i", std::to_string(kIntervalSeconds)};
    const iperf3_result iperf3_download =
        run_iperf3(link, transfer::download, kSeconds, 0.0, 1, iperf3_args, iperf3_server_args);
    const iperf3_result iperf3_upload =
        run_iperf3(link, transfer::upload, kSeconds, 0.0, 1, iperf3_args, iperf3_server_args);
    std::printf("netlab: UDP on the jittered link, both tools: %s\n", describe(counters.during()).c_str());

    const double ipdv_expected = ipdv_median_ms();
    const double jitter_expected = rfc3550_expectation_ms();
    const double jitter_independent = kJitterMs / 3.0;
    for (const auto& [name, iperf3] :
         {std::pair{"download", &iperf3_download}, std::pair{"upload", &iperf3_upload}}) {
        const auto& d = speedcli.json[name];
        // The receiver's intervals: the client's own for -R, the server's for uploads (as text from
        // --get-server-output); every 0.1 s in both.
        const std::vector<double> iperf3_jitters =
            std::string(name) == "download"
                ? interval_jitters(iperf3->json["intervals"])
                : server_text_jitters(iperf3->json["server_output_text"].get<std::string>());
        const std::vector<double> speedcli_jitters = interval_jitters(d["intervals"]);
        REQUIRE(iperf3_jitters.size() >= kIntervalsAtLeast);
        REQUIRE(speedcli_jitters.size() >= kIntervalsAtLeast);
        const double iperf3_jitter = median(iperf3_jitters);
        const double speedcli_jitter = median(speedcli_jitters);
        const double speedcli_ipdv_p50 = d["ipdv_ms"]["p50"].get<double>();
        std::printf(
            "netlab: UDP %s, 5 ms + 0-4 ms jitter, 20 Mbit/s of %u-byte datagrams: speedcli IPDV p50 %.3f ms "
            "(closed form %.3f), jitter %.3f ms median of intervals (final %.3f); iperf3 jitter %.3f ms "
            "median of intervals (final %.3f); RFC 3550 expectation %.3f ms (%.3f without reordering)\n"
            "netlab:   interval jitters, speedcli: %s; iperf3: %s\n",
            name, kDataBytes, speedcli_ipdv_p50, ipdv_expected, speedcli_jitter, d["jitter_ms"].get<double>(),
            iperf3_jitter, iperf3->json["end"]["sum"]["jitter_ms"].get<double>(), jitter_expected,
            jitter_independent, listed(speedcli_jitters).c_str(), listed(iperf3_jitters).c_str());
        // The reference first: iperf3 on this link is the RFC 3550 figure of the delay model, which checks
        // the lab (netem-tun's jitter) as much as iperf3. 25 % is the acceptance criterion's tolerance; the
        // spread of the median estimate is about 2-3 % (above).
        // (Not against D / 3: that holds only when arrival order is sending order, which this link's
        // reordering breaks; it is printed for comparison.)
        CHECK(iperf3_jitter == Approx(jitter_expected).epsilon(0.25));
        // speedcli: the acceptance criterion (issue 11).
        CHECK(speedcli_ipdv_p50 == Approx(ipdv_expected).epsilon(0.25));
        CHECK(speedcli_jitter == Approx(iperf3_jitter).epsilon(0.25));
    }
}
