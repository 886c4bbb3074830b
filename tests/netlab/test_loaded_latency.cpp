// Latency under load against ground truth: on a tbf-limited link, Cubic fills whatever queue the router has,
// so a probe waits behind it. With a deep queue speedcli's loaded latency (the separate probe connection and
// the in-band TCP RTT alike) must show a delay of the order of the queue's and the bufferbloat grade must
// drop; with a shallow queue the increase must stay small and the grade good. The grade is checked against
// DSLReports' bands written out here, and RPM against 60000 / (base RTT + queue delay).
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cstdio>
#include <sstream>
#include <string>
#include <thread>

#include "tests/netlab/lab_counters.hpp"
#include "tests/netlab/reference_tools.hpp"

using namespace speed::netlab;

namespace {

constexpr std::uint64_t kRateBitsPerSecond = 20'000'000;
// Cubic leaves slow start early on a link with a sub-millisecond base RTT (HyStart sees the queue grow) and
// then grows its window along the cubic curve: the warm-up gives it the time to reach the queue's limit, so
// the measured seconds see Cubic's steady state (fill, loss, back off to 70 %, fill again).
constexpr const char* kOmitSeconds = "3";
constexpr const char* kDurationSeconds = "3";
// A probe's round trip may exceed the queue's delay by the base RTT (0.1 ms), the bulk packet ahead of it
// being serialized (1514 bytes at 20 Mbit/s: 0.6 ms), tbf's token granularity and speedcli's and speedsrv's
// wake-ups: about 1 ms. Measured (2 vCPUs, shared): on the 10 ms queue probe medians 5.9-6.5 ms and in-band
// 7.9-8.0 ms, on the 250 ms queue 200-202 ms and 197-198 ms, all below the full queue. 3 ms over the full
// queue leaves room for a busier machine and is still a third of the shallow queue, where 30 ms allowed three
// queues.
constexpr double kAboveQueueMarginMs = 3.0;

struct direction_figures {
    double increase_ms = 0.0;
    double loaded_median_ms = 0.0;
    double in_band_median_ms = 0.0;
};

struct loaded_run {
    double idle_median_ms = 0.0;
    std::array<direction_figures, 2> directions{};  // download, upload
    std::string grade_name;
};

// How long a full queue of `queue_bytes` takes to drain at the link's rate: the most a packet can wait in it.
// tbf counts each packet as its 1514-byte frame against both the limit and the rate, so the framing cancels.
double full_queue_delay_ms(std::uint64_t queue_bytes) {
    return static_cast<double>(queue_bytes) * 8.0 / static_cast<double>(kRateBitsPerSecond) * 1000.0;
}

loaded_run run_with_queue(std::uint64_t queue_bytes) {
    const cubic_allowed allowed;
    lab_config config;
    for (link_direction* direction : {&config.upload, &config.download}) {
        direction->rate_bits_per_second = kRateBitsPerSecond;
        direction->queue_bytes = queue_bytes;
    }
    lab link(config);
    auto& server = link.start_speedsrv();
    const auto speedcli = run_speedcli(
        link, server.port(),
        {"--congestion", "cubic", "--omit", kOmitSeconds, "--duration", kDurationSeconds, "--interval", "0",
         "--pings", "20", "--ping-interval", "0.02", "--loaded-ping-interval", "0.05"});
    INFO(speedcli.process.out << speedcli.process.err << "\nspeedsrv's log:\n" << server.log());
    REQUIRE(speedcli.process.exit_code == 0);
    const auto& json = speedcli.json;
    loaded_run run;
    run.idle_median_ms = json["latency"]["idle"]["rtt_ms"]["median"].get<double>();
    for (std::size_t i = 0; i < run.directions.size(); ++i) {
        const char* direction = i == 0 ? "download" : "upload";
        CHECK(json[direction]["sender"]["congestion"] == "cubic");
        const auto& latency = json[direction]["latency"];
        REQUIRE(latency["samples"].get<int>() >= 40);  // 3 s at one probe per 50 ms, less the odd late one
        REQUIRE(latency["in_band"]["samples"].get<int>() >= 20);
        run.directions[i].loaded_median_ms = latency["rtt_ms"]["median"].get<double>();
        run.directions[i].increase_ms = latency["increase_ms"].get<double>();
        run.directions[i].in_band_median_ms = latency["in_band"]["rtt_ms"]["median"].get<double>();
    }
    run.grade_name = json["bufferbloat_grade"].get<std::string>();
    std::printf(
        "netlab: 20 Mbit/s, Cubic, queue %llu bytes (%.0f ms when full): idle median %.2f ms; download "
        "loaded "
        "median %.1f ms (+%.1f), in-band %.1f ms; upload loaded median %.1f ms (+%.1f), in-band %.1f ms; "
        "grade %s\n",
        static_cast<unsigned long long>(queue_bytes), full_queue_delay_ms(queue_bytes), run.idle_median_ms,
        run.directions[0].loaded_median_ms, run.directions[0].increase_ms,
        run.directions[0].in_band_median_ms, run.directions[1].loaded_median_ms,
        run.directions[1].increase_ms, run.directions[1].in_band_median_ms, run.grade_name.c_str());
    return run;
}

}  // namespace

TEST_CASE("loaded latency with Cubic shows a deep tbf queue, and the grade drops", "[netlab][accuracy]") {
    // 250 ms of queue at 20 Mbit/s: a bloated home router. Cubic fills it until tbf drops, then cuts its
    // window to 70 % (beta 0.7) and refills it: with a negligible base RTT the queue swings between about 70
    // and 100 % full, 175-250 ms of waiting. Half the full-queue delay is the bound: well below Cubic's
    // trough, far above anything a link without a standing queue shows.
    constexpr std::uint64_t kQueueBytes = 625'000;
    const double full_ms = full_queue_delay_ms(kQueueBytes);
    const loaded_run run = run_with_queue(kQueueBytes);
    for (const auto& direction : run.directions) {
        CHECK(direction.increase_ms >= 0.5 * full_ms);
        CHECK(direction.in_band_median_ms >= 0.5 * full_ms);  // the bulk connection's own RTT shows it too
        // Nor more than the queue can hold: speedcli must not invent delay.
        CHECK(direction.increase_ms <= full_ms + kAboveQueueMarginMs);
        CHECK(direction.in_band_median_ms <= full_ms + kAboveQueueMarginMs);
    }
    // The queue adds 175-250 ms: DSLReports' C (60-200 ms) or D (200-400 ms), nothing else.
    CHECK((run.grade_name == "C" || run.grade_name == "D"));
}

TEST_CASE("loaded latency with Cubic stays low with a shallow tbf queue, and the grade is good",
          "[netlab][accuracy]") {
    // 10 ms of queue: what a well-sized or AQM-managed router keeps.
    constexpr std::uint64_t kQueueBytes = 25'000;
    const double full_ms = full_queue_delay_ms(kQueueBytes);
    const loaded_run run = run_with_queue(kQueueBytes);
    for (const auto& direction : run.directions) {
        CHECK(direction.increase_ms <= full_ms + kAboveQueueMarginMs);
        CHECK(direction.in_band_median_ms <= full_ms + kAboveQueueMarginMs);
    }
    // The queue adds at most 10 ms: DSLReports' A+ (under 5 ms) or A (5-30 ms).
    CHECK((run.grade_name == "A+" || run.grade_name == "A"));
}

// RPM against ground truth: a download through a deep tbf queue that Cubic keeps full. A probe's reply and
// the bulk data's own segments wait behind the queue, so every round trip in working conditions is the base
// RTT plus the queue's delay, which Cubic keeps between 70 % (after a loss: beta 0.7) and 100 % of a full
// queue's. The foreign RPM (probes on their own connection) and the kernel's in-band RTT must therefore lie
// between 60000 / (base + full + margin) and 60000 / (base + 0.7 full).
// The self probes' answer also waits behind the sender's socket buffer (what the draft means to measure).
// Linux sizes that buffer to twice the congestion window in segments of ~2.3 KB of memory per 1448-byte
// segment (tcp_sndbuf_expand), while bulk payload is stored nearly without overhead: it holds about 3.2
// windows of payload, one in flight and about 2.2 unsent, so the answer waits about 2.2 (base + queue) more:
// a self round trip of up to ~3.2 (base + full). Measured (5 runs): self medians 242-267 ms, p95 under
// 3.5 (base + full) (the trimmed mean drops what is above it; single maxima 330-400 ms), self RPM 217-231;
// the self RPM must lie between 60000 / (kSendBufferRounds (base + full) + margin) = ~170 and the same upper
// bound as the foreign one (nothing makes a round trip shorter than the network's), and below the foreign
// RPM. No warm-up is omitted: averaging the samples from before the queue filled (what RPM used to do) reads
// well above that range. The upload through the same queue in the other direction gives the same figures
// (3 runs: foreign 758-760, kernel self 742-744, self 216-219, self medians 262-270 ms).
TEST_CASE("RPM under a standing tbf queue is 60000 / (base RTT + queue delay)", "[netlab][accuracy]") {
    constexpr std::uint64_t kQueueBytes = 250'000;  // 100 ms when full
    const cubic_allowed allowed;
    const double full_ms = full_queue_delay_ms(kQueueBytes);
    lab_config config;
    for (link_direction* direction : {&config.upload, &config.download}) {
        direction->rate_bits_per_second = kRateBitsPerSecond;
        direction->queue_bytes = kQueueBytes;
    }
    lab link(config);
    auto& server = link.start_speedsrv();
    const auto speedcli =
        run_speedcli(link, server.port(),
                     {"--congestion", "cubic", "--omit", "0", "--duration", "8", "--interval", "0", "--pings",
                      "20", "--ping-interval", "0.02", "--loaded-ping-interval", "0.05"});
    INFO(speedcli.process.out << speedcli.process.err << "\nspeedsrv's log:\n" << server.log());
    REQUIRE(speedcli.process.exit_code == 0);
    const auto& json = speedcli.json;
    const double base_ms = json["latency"]["idle"]["application_rtt_ms"]["median"].get<double>();
    const double lowest = 60000.0 / (base_ms + full_ms + kAboveQueueMarginMs);
    const double highest = 60000.0 / (base_ms + 0.7 * full_ms);
    constexpr double kSendBufferRounds = 3.5;
    const double lowest_self = 60000.0 / (kSendBufferRounds * (base_ms + full_ms) + kAboveQueueMarginMs);
    // The upload is the mirror image: its data, the foreign probes' PINGs and the self probes' answers queue
    // in the client-to-server tbf, the answers behind the client's socket buffer (the same kernel's sizing).
    for (const char* direction : {"download", "upload"}) {
        INFO(direction);
        const auto& latency = json[direction]["latency"];
        const auto& rpm = latency["responsiveness"];
        REQUIRE(rpm["foreign_samples"].get<int>() >= 70);  // the last 4 s at one probe per 50 ms
        REQUIRE(rpm["self_samples"].get<int>() >= 30);     // self probes every 100 ms
        CHECK(rpm["self_source"] == "self_probes");
        const double measured = latency["responsiveness_rpm"].get<double>();
        std::printf(
            "netlab: %s RPM under a %.0f ms tbf queue: %.0f (foreign %.0f and kernel self %.0f expected "
            "%.0f-%.0f; self %.0f expected %.0f-%.0f; kernel-corrected %.0f)\n",
            direction, full_ms, measured, rpm["foreign_rpm"].get<double>(),
            rpm["kernel_self_rpm"].get<double>(), lowest, highest, rpm["self_rpm"].get<double>(), lowest_self,
            highest, rpm["kernel_corrected_rpm"].get<double>());
        const auto& self = latency["self_probes"];
        std::printf(
            "netlab: %s self probes sent %d, samples %d, dropped %d, rtt min %.1f median %.1f max %.1f ms; "
            "in-band median %.1f ms; self rpm %.0f kernel self %.0f\n",
            direction, self["sent"].get<int>(), self["samples"].get<int>(), self["dropped"].get<int>(),
            self["rtt_ms"]["min"].get<double>(), self["rtt_ms"]["median"].get<double>(),
            self["rtt_ms"]["max"].get<double>(), latency["in_band"]["rtt_ms"]["median"].get<double>(),
            rpm["self_rpm"].get<double>(), rpm["kernel_self_rpm"].get<double>());
        const double foreign = rpm["foreign_rpm"].get<double>();
        const double self_rpm = rpm["self_rpm"].get<double>();
        CHECK(foreign >= lowest);
        CHECK(foreign <= highest);
        CHECK(rpm["kernel_self_rpm"].get<double>() >= lowest);
        CHECK(rpm["kernel_self_rpm"].get<double>() <= highest);
        CHECK(self_rpm >= lowest_self);
        CHECK(self_rpm <= highest);
        CHECK(self_rpm < foreign);
        CHECK(measured == Approx((foreign + self_rpm) / 2.0));
    }
}

// What the two tbf queues held while a test ran, sampled by tc in the router namespace: each sample's wait in
// the download queue (to-cli), in the upload queue (to-srv) and in both, in ms at `rate`.
struct queue_waits {
    std::vector<double> download_ms;
    std::vector<double> upload_ms;
    std::vector<double> both_ms;
};

// `count` samples 100 ms apart (plus tc's own time), the first `delay_seconds` after the call; blocks until
// the last.
queue_waits sample_queues(const lab& link, std::uint64_t rate, int delay_seconds, int count) {
    const std::string script = "sleep " + std::to_string(delay_seconds) + "; for i in $(seq " +
                               std::to_string(count) +
                               "); do for dev in to-cli to-srv; do tc -s qdisc show dev $dev | grep -o -m1 "
                               "'backlog [0-9]*b'; done; sleep 0.1; done";
    const auto run =
        link.run_in_router({"sh", "-c", script}, std::chrono::seconds(delay_seconds + count + 10));
    REQUIRE(run.exit_code == 0);
    std::istringstream lines(run.out);
    queue_waits waits;
    const auto to_ms = [rate](const std::string& line) {
        return std::stod(line.substr(std::string("backlog ").size())) * 8.0 / static_cast<double>(rate) *
               1000.0;
    };
    for (std::string download, upload; std::getline(lines, download) && std::getline(lines, upload);) {
        waits.download_ms.push_back(to_ms(download));
        waits.upload_ms.push_back(to_ms(upload));
        waits.both_ms.push_back(waits.download_ms.back() + waits.upload_ms.back());
    }
    return waits;
}

// --bidir against ground truth: download and upload at once over a 100 Mbit/s link shaped both ways, each
// tbf holding 50 ms. Each direction's data shares its queue with the other's ACKs (about 1/40 of the bytes at
// one ACK per two segments): both must still reach most of the ceiling at the same time. A probe's PING waits
// in the upload queue and its PONG in the download queue, so the latency under both is the idle RTT plus the
// two queues' waits together, which tc shows. Two-way TCP traffic keeps the two queues out of phase (one
// fills as the other drains: Zhang, Shenker and Clark 1991), so their sum stays near one full queue rather
// than two, and which queue holds more changes from run to run: the figure must match the sum tc saw.
TEST_CASE(
    "speedcli --bidir fills a 100 Mbit/s link both ways at once, and its loaded latency shows both queues",
    "[netlab][accuracy][bidir]") {
    constexpr std::uint64_t kRate = 100'000'000;
    constexpr std::uint64_t kQueueBytes = 625'000;  // 50 ms at 100 Mbit/s
    // Each direction's goodput: measured 95.8-98.6 % of the ceiling (7 runs), less than alone (99-100 %,
    // test_tcp_accuracy.cpp) by the other direction's ACKs in its queue; 85 % is the bar, and leaves
    // room for a busy machine.
    constexpr double kLowestShare = 0.85;
    // Between the probes' median increase and the median of tc's sums: measured -3.5 to +2.2 ms on one VM (7
    // runs; the sum swings 35-58 ms as the queues trade places, and 30 samples of it give its median to a few
    // ms), +3.0 to +15.4 ms on another beside CI's nice-19 compiler (2026-12-02, 13 runs, this commit and the
    // one before it alike: the probes saw 42-49 ms, tc's sums 31-45 ms) and +0.7 to +1.1 ms there when idle
    // (3 runs). A guess, not measured: on a busy machine tc's samples, each a process of its own reading the
    // two queues one after the other, come late or uneven while the queues trade places. The probes may see
    // up to 20 ms more than tc's sum (two fifths of one full queue) and 10 ms less.
    constexpr double kQueueSumBelowMs = 10.0;
    constexpr double kQueueSumAboveMs = 20.0;
    const cubic_allowed allowed;
    lab_config config;
    for (link_direction* direction : {&config.upload, &config.download}) {
        direction->rate_bits_per_second = kRate;
        direction->queue_bytes = kQueueBytes;
    }
    lab link(config);
    auto& server = link.start_speedsrv();
    const auto segment = full_tcp_segment(kLinkMtu, tcp_timestamps_enabled(link));
    const double ceiling = static_cast<double>(kRate) * static_cast<double>(segment.payload_bytes) /
                           static_cast<double>(segment.frame_bytes);
    // One run in nine (a quiet machine, the second verification of stop 14) had the upload at 49 % of the
    // ceiling with its own queue empty, while the download filled its link. The likely cause (not verified)
    // is the link's: the upload's ACKs wait in, and are dropped from, the download's full 50 ms queue, and
    // Cubic's upload window stays small, as it would for iperf3 --bidir. Such a run is repeated once.
    struct bidir_run {
        speed::testing::client_run speedcli;
        queue_waits queues;
    };
    const auto measured = measure_repeating_once(
        link, "speedcli --bidir",
        [&] {
            // speedcli spends about 0.5 s on idle latency and set-up, then 2 s of warm-up: the window runs
            // from about 2.5 s to 6.5 s. tc samples 3.0 s to about 6.3 s.
            bidir_run run;
            std::thread sampler([&] { run.queues = sample_queues(link, kRate, 3, 30); });
            run.speedcli = run_speedcli(
                link, server.port(),
                {"--bidir", "--congestion", "cubic", "--omit", "2", "--duration", "4", "--interval", "0.5",
                 "--pings", "20", "--ping-interval", "0.02", "--loaded-ping-interval", "0.05"});
            sampler.join();
            return run;
        },
        [&ceiling](const bidir_run& run, const lab_counters&) {
            if (run.speedcli.process.exit_code != 0) {
                return std::string();
            }
            const double slower = std::min(run.speedcli.json["download"]["bits_per_second"].get<double>(),
                                           run.speedcli.json["upload"]["bits_per_second"].get<double>());
            return slower < kLowestShare * ceiling
                       ? "one direction reached only " + std::to_string(slower / 1e6) + " Mbit/s"
                       : std::string();
        });
    const auto& speedcli = measured.result.speedcli;
    const queue_waits& queues = measured.result.queues;
    INFO(speedcli.process.out << speedcli.process.err << "\nspeedsrv's log:\n" << server.log());
    REQUIRE(speedcli.process.exit_code == 0);
    REQUIRE(queues.both_ms.size() >= 20);
    const auto& json = speedcli.json;
    const double download = json["download"]["bits_per_second"].get<double>();
    const double upload = json["upload"]["bits_per_second"].get<double>();
    const auto& both = json["bidirectional"];
    const auto& latency = both["latency"];
    const double idle_ms = json["latency"]["idle"]["rtt_ms"]["median"].get<double>();
    const double loaded_ms = latency["rtt_ms"]["median"].get<double>();
    const double queued_ms = median(queues.both_ms);
    const double download_queue_ms = median(queues.download_ms);
    const double upload_queue_ms = median(queues.upload_ms);
    std::printf(
        "netlab: --bidir on 100 Mbit/s both ways, Cubic, 50 ms queues: download %.2f, upload %.2f Mbit/s "
        "(ceiling %.2f: %.1f %%, %.1f %%); overlap %.3f s, start skew %.2f ms; idle median %.2f ms, loaded "
        "median %.1f ms (in-band %.1f ms), RPM %.0f; tc: download queue %.1f ms, upload queue %.1f ms, both "
        "%.1f ms (medians of %zu samples)\n",
        download / 1e6, upload / 1e6, ceiling / 1e6, 100.0 * download / ceiling, 100.0 * upload / ceiling,
        both["overlap_seconds"].get<double>(), both["start_skew_seconds"].get<double>() * 1e3, idle_ms,
        loaded_ms, latency["in_band"]["rtt_ms"]["median"].get<double>(),
        latency["responsiveness_rpm"].get<double>(), download_queue_ms, upload_queue_ms, queued_ms,
        queues.both_ms.size());
    CHECK(download >= kLowestShare * ceiling);
    CHECK(upload >= kLowestShare * ceiling);
    CHECK(download <= ceiling * 1.02);
    CHECK(upload <= ceiling * 1.02);
    CHECK(both["overlap_seconds"].get<double>() >= 3.9);
    REQUIRE(latency["samples"].get<int>() >= 60);  // 4 s at one probe per 50 ms, less the odd late one
    CHECK(loaded_ms > idle_ms);
    CHECK(loaded_ms - idle_ms >= queued_ms - kQueueSumBelowMs);
    CHECK(loaded_ms - idle_ms <= queued_ms + kQueueSumAboveMs);
}
