// TCP goodput against ground truth: on a tbf-limited link the receiver can get at most rate x payload / frame
// (docs/netlab.md derives the per-packet overhead). The check against that ceiling is one-sided: speedcli and
// iperf3 may not exceed it (beyond the edge of a measurement window) and must reach a stated share of it; and
// speedcli must land within 5 % of iperf3 measured on the same link in the same test.
#include <catch2/catch.hpp>
#include <cstdio>

#include "tests/netlab/lab_counters.hpp"
#include "tests/netlab/reference_tools.hpp"

using namespace speed::netlab;

namespace {

constexpr double kDurationSeconds = 4.0;
constexpr double kOmitSeconds = 1.0;  // slow start and the tbf bucket's initial burst
// Above the ceiling only by what a window's edges can add: the bucket's 1 ms burst (at least 16 KiB) and the
// receiver's reads lagging arrival at the window's ends (TCP windows count bytes when read). That lag is a
// few ms in a release build; under AddressSanitizer on a 2-core machine one upload read 19.334 Mbit/s against
// a 19.128 ceiling (+1.07 %: about 10 ms of backlog read into a 4 s window). 2 % leaves room for 20 ms.
constexpr double kAboveCeiling = 0.02;
// Between the two tools on the same link: measured spread 0.1-2 % (docs/netlab.md).
constexpr double kToolTolerance = 0.05;

lab_config link_of(std::uint64_t rate_bits_per_second) {
    lab_config config;
    config.upload.rate_bits_per_second = rate_bits_per_second;
    config.download.rate_bits_per_second = rate_bits_per_second;
    return config;
}

// The most TCP payload the link carries, bits/s: the rate times a full segment's payload over its frame.
double payload_ceiling(const lab& link, std::uint64_t rate_bits_per_second) {
    const auto segment = full_tcp_segment(kLinkMtu, tcp_timestamps_enabled(link));
    return static_cast<double>(rate_bits_per_second) * static_cast<double>(segment.payload_bytes) /
           static_cast<double>(segment.frame_bytes);
}

// Checks that iperf3's connections (`iperf3_json`) used the segment size the ceiling is derived from.
void check_segment_size(const lab& link, const nlohmann::json& iperf3_json) {
    REQUIRE(iperf3_json["start"]["tcp_mss_default"] ==
            full_tcp_segment(kLinkMtu, tcp_timestamps_enabled(link)).payload_bytes);
}

// Which of a speedcli run's directions (`json`) stayed below `floor` bits/s; empty when neither did.
std::string below_floor(const nlohmann::json& json, double floor) {
    std::string shortfall;
    for (const char* name : {"download", "upload"}) {
        if (const double goodput = json[name]["bits_per_second"].get<double>(); goodput < floor) {
            shortfall += std::string(shortfall.empty() ? "" : ", ") + name + " " + mbit_text(goodput) +
                         " below " + mbit_text(floor);
        }
    }
    return shortfall;
}

// iperf3 in `direction`, repeated once when it stays below `floor` bits/s: the reference must show that the
// link is what it claims before it can judge speedcli, and on a loaded 2-core machine iperf3 itself fell to
// 87-90 Mbit/s (91-94 % of a 100 Mbit/s link's ceiling) in 3 of 12 runs while speedcli, in the same test, got
// 92-96.
iperf3_result run_reference(lab& link, transfer direction, double floor,
                            const std::vector<std::string>& iperf3_args = {}) {
    const char* what = direction == transfer::download ? "iperf3 -R" : "iperf3";
    return measure_repeating_once(
               link, what,
               [&] { return run_iperf3(link, direction, kDurationSeconds, kOmitSeconds, 1, iperf3_args); },
               [floor](const iperf3_result& run, const lab_counters&) {
                   return run.receiver_bits_per_second < floor
                              ? mbit_text(run.receiver_bits_per_second) + " below " + mbit_text(floor)
                              : std::string();
               })
        .result;
}

// `lowest_share`: the share of the ceiling both tools must reach; `congestion`: the TCP congestion control
// both tools use at both ends, empty for the host's default (see the callers).
void check_goodput_on_link(std::uint64_t rate_bits_per_second, double lowest_share,
                           const std::string& congestion = {}) {
    skip_unless_installed("iperf3", "iperf3");
    lab link(link_of(rate_bits_per_second));
    auto& server = link.start_speedsrv();

    // speedcli (both directions), then iperf3 download and upload on the same link.
    std::vector<std::string> speedcli_args{"--pings",    "0",
                                           "--duration", std::to_string(kDurationSeconds),
                                           "--omit",     std::to_string(kOmitSeconds),
                                           "--interval", "0"};
    std::vector<std::string> iperf3_args;
    if (!congestion.empty()) {
        speedcli_args.insert(speedcli_args.end(), {"--congestion", congestion});
        iperf3_args = {"-C", congestion};
    }
    const auto segment = full_tcp_segment(kLinkMtu, tcp_timestamps_enabled(link));
    const double ceiling = payload_ceiling(link, rate_bits_per_second);
    const double floor = ceiling * lowest_share;
    const auto speedcli_run = measure_repeating_once(
        link, "speedcli", [&] { return run_speedcli(link, server.port(), speedcli_args); },
        [floor](const speed::testing::client_run& run, const lab_counters&) {
            return run.process.exit_code == 0 ? below_floor(run.json, floor) : std::string();
        });
    const auto& speedcli = speedcli_run.result;
    INFO(speedcli.process.out << speedcli.process.err << "\nspeedsrv's log:\n" << server.log());
    REQUIRE(speedcli.process.exit_code == 0);
    if (!congestion.empty()) {
        CHECK(speedcli.json["download"]["sender"]["congestion"] == congestion);
        CHECK(speedcli.json["upload"]["sender"]["congestion"] == congestion);
    }
    const iperf3_result iperf3_download = run_reference(link, transfer::download, floor, iperf3_args);
    const iperf3_result iperf3_upload = run_reference(link, transfer::upload, floor, iperf3_args);
    check_segment_size(link, iperf3_download.json);

    const double download = speedcli.json["download"]["bits_per_second"].get<double>();
    const double upload = speedcli.json["upload"]["bits_per_second"].get<double>();
    std::printf(
        "netlab: %.0f Mbit/s link: ceiling %.3f Mbit/s (%zu/%zu B); download speedcli %.3f iperf3 %.3f; "
        "upload speedcli %.3f iperf3 %.3f Mbit/s; speedcli's retransmits %s down, %s up (%s)\n",
        static_cast<double>(rate_bits_per_second) / 1e6, ceiling / 1e6, segment.payload_bytes,
        segment.frame_bytes, download / 1e6, iperf3_download.receiver_bits_per_second / 1e6, upload / 1e6,
        iperf3_upload.receiver_bits_per_second / 1e6,
        speedcli.json["download"]["sender"]["retransmits"].dump().c_str(),
        speedcli.json["upload"]["sender"]["retransmits"].dump().c_str(),
        speedcli.json["upload"]["sender"]["congestion"].dump().c_str());
    INFO("ceiling " << ceiling << " bit/s; iperf3 download " << iperf3_download.receiver_bits_per_second
                    << ", upload " << iperf3_upload.receiver_bits_per_second);
    CHECK(speedcli.json["download"]["measured_by"] == "client");
    CHECK(speedcli.json["upload"]["measured_by"] == "server");
    // Both tools, both directions: never above what the link can carry, and close to it. The reference
    // reaching the ceiling too shows the lab is the link it claims to be.
    for (const double goodput : {download, upload, iperf3_download.receiver_bits_per_second,
                                 iperf3_upload.receiver_bits_per_second}) {
        CHECK(goodput <= ceiling * (1.0 + kAboveCeiling));
        CHECK(goodput >= ceiling * lowest_share);
    }
    CHECK(download == Approx(iperf3_download.receiver_bits_per_second).epsilon(kToolTolerance));
    CHECK(upload == Approx(iperf3_upload.receiver_bits_per_second).epsilon(kToolTolerance));
}

// The share of the ceiling both tools must reach. A sender keeps the tbf queue busy nearly all the time; what
// is missing goes to TCP's congestion control backing off after a tail drop and, at 1 Gbit/s on 2 shared
// cores, to an endpoint that is briefly short of CPU. Measured (docs/netlab.md): 99.2-100 % of the ceiling at
// 10-100 Mbit/s, 97.5-99 % at 1 Gbit/s with the machine at a load average of 8; 95 % leaves room for both.
constexpr double kLowestShare = 0.95;

}  // namespace

// Cubic at 10 Mbit/s, where the ceiling check's premise (a sender that keeps the queue busy) does not hold
// for BBR, this kernel's default: the lab's 16 KiB bucket is 13 ms at 10 Mbit/s, a quarter of the 64 KiB
// queue, and BBR (which does not back off on loss) retransmitted 250-1300 packets in every 5 s test, a fifth
// of them lost again (TcpExtTCPLostRetransmit); once in about 50 runs the sender stalled and read 8.9 Mbit/s
// (93 %) while iperf3 read 9.5. Cubic on the same link: 18-35 retransmits, 9.53-9.57 Mbit/s (docs/netlab.md).
// At 100 Mbit/s BBR retransmits nothing.
TEST_CASE("TCP goodput on a 10 Mbit/s link reaches the ceiling and matches iperf3", "[netlab][accuracy]") {
    const cubic_allowed allowed;
    check_goodput_on_link(10'000'000, kLowestShare, "cubic");
}

TEST_CASE("TCP goodput on a 100 Mbit/s link reaches the ceiling and matches iperf3", "[netlab][accuracy]") {
    check_goodput_on_link(100'000'000, kLowestShare);
}

TEST_CASE("TCP goodput on a 1 Gbit/s link reaches the ceiling and matches iperf3", "[netlab][accuracy]") {
    check_goodput_on_link(1'000'000'000, kLowestShare);
}

// speedcli --iperf3 against a real iperf3 server (issue 14): the download is measured by speedcli's own
// receiver, the upload is the iperf3 server's receiver report (docs/methodology.md). On the same link in the
// same test, iperf3's own client must see the same goodput within the tool tolerance above.
TEST_CASE(
    "speedcli --iperf3 against an iperf3 server on a 100 Mbit/s link is within 5 % of iperf3's own figures",
    "[netlab][accuracy][iperf3]") {
    skip_unless_installed("iperf3", "iperf3");
    constexpr std::uint64_t kRate = 100'000'000;
    lab link(link_of(kRate));
    const double ceiling = payload_ceiling(link, kRate);
    const double floor = ceiling * kLowestShare;
    const auto speedcli_run = measure_repeating_once(
        link, "speedcli --iperf3",
        [&] {
            // A server for both of speedcli's tests (download, then upload): not a one-off (-1).
            auto& iperf3_server = link.start_in_server(
                {"iperf3", "-s", "--forceflush", "-B", kServerAddress, "-p", kIperf3Port},
                "Server listening");
            auto run =
                run_speedcli(link, static_cast<std::uint16_t>(std::stoi(kIperf3Port)),
                             {"--iperf3", "--pings", "0", "--duration", std::to_string(kDurationSeconds),
                              "--omit", std::to_string(kOmitSeconds), "--interval", "0"});
            iperf3_server.stop();  // run_iperf3 starts its own one-off servers on the same port
            return run;
        },
        [floor](const speed::testing::client_run& run, const lab_counters&) {
            return run.process.exit_code == 0 ? below_floor(run.json, floor) : std::string();
        });
    const auto& speedcli = speedcli_run.result;
    INFO(speedcli.process.out << speedcli.process.err);
    REQUIRE(speedcli.process.exit_code == 0);
    CHECK(speedcli.json["server"]["software"] == "iperf3");
    const iperf3_result iperf3_download = run_reference(link, transfer::download, floor);
    const iperf3_result iperf3_upload = run_reference(link, transfer::upload, floor);
    check_segment_size(link, iperf3_download.json);

    const double download = speedcli.json["download"]["bits_per_second"].get<double>();
    const double upload = speedcli.json["upload"]["bits_per_second"].get<double>();
    std::printf(
        "netlab: speedcli --iperf3 on a 100 Mbit/s link: ceiling %.3f Mbit/s; download speedcli %.3f iperf3 "
        "%.3f; upload speedcli (the iperf3 server's report) %.3f iperf3 %.3f Mbit/s\n",
        ceiling / 1e6, download / 1e6, iperf3_download.receiver_bits_per_second / 1e6, upload / 1e6,
        iperf3_upload.receiver_bits_per_second / 1e6);
    INFO("ceiling " << ceiling << " bit/s; iperf3 download " << iperf3_download.receiver_bits_per_second
                    << ", upload " << iperf3_upload.receiver_bits_per_second);
    for (const double goodput : {download, upload, iperf3_download.receiver_bits_per_second,
                                 iperf3_upload.receiver_bits_per_second}) {
        CHECK(goodput <= ceiling * (1.0 + kAboveCeiling));
        CHECK(goodput >= floor);
    }
    CHECK(download == Approx(iperf3_download.receiver_bits_per_second).epsilon(kToolTolerance));
    CHECK(upload == Approx(iperf3_upload.receiver_bits_per_second).epsilon(kToolTolerance));
}

// speedcli --iperf3 --bidir (issue 14): one iperf3 test both ways through 100 Mbit/s each way. Each direction
// is measured by its receiver (the download by speedcli, the upload by the iperf3 server) and must reach most
// of the ceiling at the same time, as for a speedsrv --bidir run (test_loaded_latency.cpp); iperf3's own
// --bidir client on the same link is printed beside it.
TEST_CASE("speedcli --iperf3 --bidir fills a 100 Mbit/s link both ways at once against an iperf3 server",
          "[netlab][accuracy][iperf3][bidir]") {
    skip_unless_installed("iperf3", "iperf3");
    constexpr std::uint64_t kRate = 100'000'000;
    // The bar of the speedsrv --bidir test: each direction loses a little to the other's ACKs in its queue.
    // Measured (5 runs, a machine at a load average of 9): download 94.2-97.7 %, upload 92.0-97.6 %.
    constexpr double kBothWaysShare = 0.85;
    // That test's Cubic (both ends: speedcli asks the iperf3 server for it) and 50 ms queues. With the host's
    // BBR and the lab's default queues speedcli read 80-94 % of the ceiling each way and iperf3's own --bidir
    // client 86-91 Mbit/s (3 runs each, a machine at a load average of 10); with BBR and 50 ms queues 88-97
    // %.
    const cubic_allowed allowed;
    lab_config config = link_of(kRate);
    config.upload.queue_bytes = config.download.queue_bytes = 625'000;
    lab link(config);
    const double ceiling = payload_ceiling(link, kRate);
    const auto speedcli_run = measure_repeating_once(
        link, "speedcli --iperf3 --bidir",
        [&] {
            auto& iperf3_server = link.start_in_server(
                {"iperf3", "-s", "-1", "--forceflush", "-B", kServerAddress, "-p", kIperf3Port},
                "Server listening");
            auto run = run_speedcli(link, static_cast<std::uint16_t>(std::stoi(kIperf3Port)),
                                    {"--iperf3", "--bidir", "--congestion", "cubic", "--pings", "0",
                                     "--duration", std::to_string(kDurationSeconds), "--omit",
                                     std::to_string(kOmitSeconds), "--interval", "0.5"});
            if (iperf3_server.wait(std::chrono::seconds(5)) == -1 && iperf3_server.running()) {
                iperf3_server.stop();  // the next server needs the port
            }
            return run;
        },
        [&ceiling](const speed::testing::client_run& run, const lab_counters&) {
            return run.process.exit_code == 0 ? below_floor(run.json, kBothWaysShare * ceiling)
                                              : std::string();
        });
    const auto& speedcli = speedcli_run.result;
    INFO(speedcli.process.out << speedcli.process.err);
    REQUIRE(speedcli.process.exit_code == 0);
    const iperf3_result reference =
        run_iperf3(link, transfer::upload, kDurationSeconds, kOmitSeconds, 1, {"--bidir", "-C", "cubic"});
    const auto& json = speedcli.json;
    const double download = json["download"]["bits_per_second"].get<double>();
    const double upload = json["upload"]["bits_per_second"].get<double>();
    const double overlap = json["bidirectional"]["overlap_seconds"].get<double>();
    std::printf(
        "netlab: speedcli --iperf3 --bidir on 100 Mbit/s both ways: download %.2f, upload %.2f Mbit/s "
        "(ceiling "
        "%.2f: %.1f %%, %.1f %%), overlap %.3f s, in-band RTT median %.1f ms; iperf3 --bidir: download %.2f, "
        "upload %.2f Mbit/s\n",
        download / 1e6, upload / 1e6, ceiling / 1e6, 100.0 * download / ceiling, 100.0 * upload / ceiling,
        overlap, json["bidirectional"]["latency"]["in_band"]["rtt_ms"]["median"].get<double>(),
        reference.json["end"]["sum_received_bidir_reverse"]["bits_per_second"].get<double>() / 1e6,
        reference.receiver_bits_per_second / 1e6);
    CHECK(download >= kBothWaysShare * ceiling);
    CHECK(upload >= kBothWaysShare * ceiling);
    CHECK(download <= ceiling * (1.0 + kAboveCeiling));
    CHECK(upload <= ceiling * (1.0 + kAboveCeiling));
    // Both windows are the same -t after the same start (TEST_RUNNING): they overlap nearly all of it.
    CHECK(overlap >= 0.95 * kDurationSeconds);
}
