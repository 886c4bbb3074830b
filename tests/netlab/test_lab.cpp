// The lab itself and netem-tun in it: clean-up, the stale-namespace sweep, delay, loss and forwarding
// capacity.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "tests/netlab/lab_counters.hpp"
#include "tests/netlab/reference_tools.hpp"

using namespace speed::netlab;
using namespace std::chrono_literals;

namespace {

bool namespace_exists(const std::string& name) {
    return ::access(("/run/netns/" + name).c_str(), F_OK) == 0;
}

// Running, not merely a zombie waiting for a reaper that may be slow to come (init in some containers).
bool process_exists(pid_t pid) {
    std::ifstream file("/proc/" + std::to_string(pid) + "/stat");
    std::string stat;
    std::getline(file, stat);
    const auto name_end = stat.rfind(')');  // "PID (COMMAND) STATE ...", COMMAND may hold spaces
    if (name_end == std::string::npos || name_end + 2 >= stat.size()) {
        return false;
    }
    const char state = stat[name_end + 2];
    return state != 'Z' && state != 'X';
}

// A pid that belonged to a process that has exited (and been reaped).
pid_t dead_pid() {
    const pid_t child = ::fork();
    if (child == 0) {
        ::_exit(0);
    }
    ::waitpid(child, nullptr, 0);
    return child;
}

}  // namespace

TEST_CASE("the lab deletes its namespaces and stops its servers when a test fails inside it", "[netlab]") {
    std::vector<std::string> names;
    pid_t server_pid = -1;
    try {
        lab_config config;
        config.download.delay_ms = 1.0;  // with netem-tun, so that it is stopped too
        lab link(config);
        names = {link.client_namespace(), link.router_namespace(), link.server_namespace()};
        server_pid = link.start_speedsrv().pid();
        for (const auto& name : names) {
            REQUIRE(namespace_exists(name));
        }
        REQUIRE(process_exists(server_pid));
        throw std::runtime_error("a failing test");
    } catch (const std::runtime_error& e) {
        CHECK(std::string(e.what()) == "a failing test");
    }
    REQUIRE(names.size() == 3);
    for (const auto& name : names) {
        CHECK_FALSE(namespace_exists(name));
    }
    CHECK_FALSE(process_exists(server_pid));
}

// Run by the next test in a child process: a lab that waits to be interrupted. Hidden ([.]): never run alone.
TEST_CASE("a lab waiting for a signal", "[.][interrupt-helper]") {
    lab_config config;
    config.upload.delay_ms = 1.0;
    lab link(config);
    const pid_t server_pid = link.start_speedsrv().pid();
    std::printf("lab ready: %s %s %s %d\n", link.client_namespace().c_str(), link.router_namespace().c_str(),
                link.server_namespace().c_str(), static_cast<int>(server_pid));
    std::fflush(stdout);
    std::this_thread::sleep_for(30s);
    FAIL("not interrupted");
}

TEST_CASE("an interrupted test (SIGINT, SIGTERM) leaves no namespaces or servers behind", "[netlab]") {
    for (const int signal_number : {SIGINT, SIGTERM}) {
        speed::testing::background_process child({"/proc/self/exe", "[interrupt-helper]"});
        // "lab ready: CLIENT ROUTER SERVER SERVER_PID"
        std::istringstream line(child.wait_for_line("lab ready: ", 20s));
        std::string lab_word, ready_word;
        std::vector<std::string> names(3);
        long server_pid = 0;
        line >> lab_word >> ready_word >> names[0] >> names[1] >> names[2] >> server_pid;
        REQUIRE(line);
        child.send_signal(signal_number);
        CHECK(child.stop(10s) == -1);  // ended by the signal, as an interrupted test should be
        INFO(child.log());
        for (const auto& name : names) {
            CHECK_FALSE(namespace_exists(name));
        }
        // SIGKILL takes effect asynchronously: give the server a moment to die.
        for (int i = 0; i < 200 && process_exists(static_cast<pid_t>(server_pid)); ++i) {
            std::this_thread::sleep_for(10ms);
        }
        CHECK_FALSE(process_exists(static_cast<pid_t>(server_pid)));
    }
}

TEST_CASE("the sweep deletes namespaces of dead runs and keeps those of live ones", "[netlab]") {
    const std::string stale = std::string(kNamespacePrefix) + std::to_string(dead_pid()) + "-0-c";
    const std::string live = std::string(kNamespacePrefix) + "1-0-c";  // pid 1 never exits
    REQUIRE(speed::testing::run_process({"ip", "netns", "add", stale}, 10s).exit_code == 0);
    REQUIRE(speed::testing::run_process({"ip", "netns", "add", live}, 10s).exit_code == 0);
    CHECK(sweep_stale_namespaces() >= 1);
    CHECK_FALSE(namespace_exists(stale));
    CHECK(namespace_exists(live));
    speed::testing::run_process({"ip", "netns", "del", live}, 10s);
}

TEST_CASE("netem-tun adds its one-way delays: ping shows their sum plus a small constant", "[netlab]") {
    skip_unless_installed("ping", "iputils-ping");
    // Symmetric and one-sided: each direction is delayed on its own.
    for (const auto& [upload_ms, download_ms] : {std::pair{10.0, 10.0}, std::pair{20.0, 0.0}}) {
        lab_config config;
        config.upload.delay_ms = upload_ms;
        config.download.delay_ms = download_ms;
        lab link(config);
        const ping_result ping = ping_server(link, 40, 0.05);
        INFO(ping.output);
        REQUIRE(ping.rtt_ms.size() == 40);
        const double added_ms = upload_ms + download_ms;
        std::printf("netlab: delay %.0f+%.0f ms: ping min %.3f median %.3f max %.3f ms\n", upload_ms,
                    download_ms, *std::min_element(ping.rtt_ms.begin(), ping.rtt_ms.end()),
                    median(ping.rtt_ms), *std::max_element(ping.rtt_ms.begin(), ping.rtt_ms.end()));
        // Never early: the delay is a floor. The constant on top is the veths' own round trip (~0.1 ms) and
        // netem-tun's timer wake-up; 1.5 ms leaves room for a loaded machine.
        CHECK(*std::min_element(ping.rtt_ms.begin(), ping.rtt_ms.end()) >= added_ms);
        CHECK(median(ping.rtt_ms) <= added_ms + 1.5);
    }
}

TEST_CASE("netem-tun's jitter delays each packet by the delay plus a uniform share of the jitter",
          "[netlab]") {
    skip_unless_installed("ping", "iputils-ping");
    lab_config config;
    for (link_direction* direction : {&config.upload, &config.download}) {
        direction->delay_ms = 5.0;
        direction->jitter_ms = 4.0;
    }
    lab link(config);
    const unsigned count = 400;
    const ping_result ping = ping_server(link, count, 0.01);
    INFO(ping.output.substr(ping.output.size() > 400 ? ping.output.size() - 400 : 0));
    REQUIRE(ping.rtt_ms.size() == count);
    double sum = 0.0;
    for (const double rtt : ping.rtt_ms) {
        sum += rtt;
    }
    const double mean = sum / count;
    const double low = *std::min_element(ping.rtt_ms.begin(), ping.rtt_ms.end());
    const double high = *std::max_element(ping.rtt_ms.begin(), ping.rtt_ms.end());
    std::printf("netlab: 5+5 ms with 0-4 ms jitter each way: ping min %.3f mean %.3f max %.3f ms\n", low,
                mean, high);
    // A round trip is 10 ms plus the sum of two uniform 0-4 ms draws: within [10, 18] ms. On top comes the
    // constant of the path (0.1-0.4 ms measured, above) and a loaded machine's wake-ups.
    CHECK(low >= 10.0);
    CHECK(low <= 10.0 + 1.0);  // the sum of two draws comes near 0 within 400 round trips
    CHECK(high >= 18.0 - 1.0);
    // The centre and the spread are checked with the median and the interquartile range, not the mean and a
    // high percentile: on a 2-core VM a few round trips of the 400 come 3-7 ms late when the host deschedules
    // the VM or CI's sanitizer build competes (max 23.8 and 25.4 ms in 3 of 6 idle runs; once a 99th
    // percentile of 21.6 ms in CI), which no jitter setting explains and which quartiles barely see. The sum
    // of two uniform 0-4 ms draws has a triangular distribution on [0, 8] ms: median 4 ms, quartiles
    // sqrt(8) and 8 - sqrt(8) ms, an interquartile range of 2.34 ms. For 400 samples the median's standard
    // error is 0.10 ms and the range's about 0.15 ms. A jitter range twice too wide reads a median of 18 ms
    // and a range of 4.7 ms; half as wide, 12 ms and 1.2 ms; no jitter, a range near 0.
    std::vector<double> sorted = ping.rtt_ms;
    std::sort(sorted.begin(), sorted.end());
    const auto quantile = [&sorted](double share) {
        return sorted[static_cast<std::size_t>(share * static_cast<double>(sorted.size() - 1) + 0.5)];
    };
    const double middle = quantile(0.5);
    const double interquartile = quantile(0.75) - quantile(0.25);
    std::printf("netlab: jitter round trips: median %.3f ms, interquartile range %.3f ms\n", middle,
                interquartile);
    CHECK(middle == Approx(14.0 + 0.3).margin(0.5));  // 0.3 ms for the path's constant, as the fixed delay
    CHECK(interquartile == Approx(2.0 * (4.0 - std::sqrt(8.0))).margin(0.8));
}

TEST_CASE("netem-tun drops the seeded share of packets, and nothing else is lost", "[netlab]") {
    skip_unless_installed("ping", "iputils-ping");
    lab_config config;
    config.upload.loss_percent = 5.0;
    config.download.loss_percent = 5.0;
    config.seed = 7;
    lab link(config);
    const unsigned count = 2000;
    const auto ping = ping_server(link, count, 0.002);
    const auto stats = link.netem_statistics();
    INFO(ping.output.substr(ping.output.size() > 400 ? ping.output.size() - 400 : 0) << "\n"
                                                                                     << stats.dump(2));
    REQUIRE(ping.transmitted == count);
    REQUIRE(stats["paths"].size() == 2);
    const auto& up = stats["paths"][0];
    const auto& down = stats["paths"][1];
    // Every request reached netem-tun; every reply it saw came from a request it passed on.
    CHECK(up["received"] == count);
    CHECK(down["received"] == up["forwarded"]);
    // The only losses on the path are netem-tun's: ping misses exactly what it dropped.
    CHECK(ping.transmitted - ping.received == up["lost"].get<unsigned>() + down["lost"].get<unsigned>());
    CHECK(up["overflowed"] == 0);
    CHECK(down["overflowed"] == 0);
    // Binomial: 5 % of 2000 has a standard deviation of 0.49 percentage points; 2 pp is four of them.
    const double up_loss = 100.0 * up["lost"].get<double>() / up["received"].get<double>();
    const double down_loss = 100.0 * down["lost"].get<double>() / down["received"].get<double>();
    std::printf("netlab: loss 5 %%: netem-tun dropped %.2f %% up, %.2f %% down; ping lost %u of %u\n",
                up_loss, down_loss, ping.transmitted - ping.received, ping.transmitted);
    CHECK(up_loss == Approx(5.0).margin(2.0));
    CHECK(down_loss == Approx(5.0).margin(2.0));
}

// netem-tun's capacity, checked by what it carries, not by its CPU time (a share of a core is a benchmark:
// bench/speedbench.py reports it). One packet per read and write topped out near 530 Mbit/s; with
// segmentation offload a direction without loss or jitter moves 64 KiB TCP super-packets per system call.
TEST_CASE("netem-tun carries a 1 Gbit/s link with 20 ms round trips at the tbf ceiling", "[netlab]") {
    skip_unless_installed("iperf3", "iperf3");
    constexpr double kRate = 1e9;
    lab_config config;
    for (link_direction* direction : {&config.upload, &config.download}) {
        direction->rate_bits_per_second = static_cast<std::uint64_t>(kRate);
        direction->delay_ms = 10.0;
    }
    lab link(config);
    const auto segment = full_tcp_segment(kLinkMtu, tcp_timestamps_enabled(link));
    const double ceiling =
        kRate * static_cast<double>(segment.payload_bytes) / static_cast<double>(segment.frame_bytes);

    // iperf3 is the load here, netem-tun the thing under test; a run below the floor is repeated once, as the
    // throughput tests do (lab_counters.hpp): a host that steals a vCPU from netem-tun or iperf3 for a while
    // lowers a 4 s figure without either being at fault. netem-tun's own counters (a full line, a failed
    // write) are never repeated away: they are its totals since it started, so both runs are checked.
    struct carried {
        iperf3_result iperf3;
        nlohmann::json before;
        nlohmann::json after;
    };
    const double floor = 0.95 * ceiling;
    const auto measured = measure_repeating_once(
        link, "iperf3 -R through netem-tun at 1 Gbit/s",
        [&link] {
            carried run;
            run.before = link.netem_statistics();
            run.iperf3 = run_iperf3(link, transfer::download, 4.0, 2.0);
            run.after = link.netem_statistics();
            return run;
        },
        [floor](const carried& run, const lab_counters&) {
            return run.iperf3.receiver_bits_per_second < floor
                       ? mbit_text(run.iperf3.receiver_bits_per_second) + " below " + mbit_text(floor)
                       : std::string();
        });
    const iperf3_result& iperf3 = measured.result.iperf3;
    const nlohmann::json& before = measured.result.before;
    const nlohmann::json& after = measured.result.after;
    INFO(after.dump(2));

    const double cpu_seconds =
        after["cpu_user_seconds"].get<double>() + after["cpu_system_seconds"].get<double>() -
        before["cpu_user_seconds"].get<double>() - before["cpu_system_seconds"].get<double>();
    const double wall_seconds = after["wall_seconds"].get<double>() - before["wall_seconds"].get<double>();
    const auto& down = netem_path(after, kDownloadTun);
    std::printf(
        "netlab: 1 Gbit/s, 10+10 ms: iperf3 %.1f Mbit/s (ceiling %.1f); netem-tun read %llu frames for %llu "
        "packets down; CPU %.1f %% of a core (reported, not checked)\n",
        iperf3.receiver_bits_per_second / 1e6, ceiling / 1e6,
        static_cast<unsigned long long>(down["reads"].get<std::uint64_t>()),
        static_cast<unsigned long long>(down["received"].get<std::uint64_t>()),
        100.0 * cpu_seconds / wall_seconds);
    // The link, not netem-tun, sets the pace: nothing dropped or refused by netem-tun, and the goodput
    // reaches the ceiling the tbf rate allows. (The counters are netem-tun's totals since it started: a
    // repeated run's first attempt must not have dropped anything either.)
    for (const auto& path : after["paths"]) {
        CHECK(path["segmentation_offload"] == true);  // no loss, no jitter
        CHECK(path["overflowed"] == 0);
        CHECK(path["write_errors"] == 0);
        CHECK(path["lost"] == 0);
    }
    CHECK(iperf3.receiver_bits_per_second <= ceiling * 1.01);
    CHECK(iperf3.receiver_bits_per_second >= floor);
}

// The counters the throughput tests print beside their figures (lab_counters.hpp) against a known overflow:
// iperf3 sends 40 Mbit/s of UDP into a 10 Mbit/s upload, so three of every four datagrams cannot fit.
// iperf3's server counts as lost the gaps below the highest sequence number it received: each is a datagram
// the upload's queue or the server's socket dropped. The drops it cannot see are those after that number (the
// sender's last datagrams, which meet a full queue: measured 3-16, bounded here by the 10 ms the sender needs
// for 42) and any of the control connection's packets the full queue dropped.
TEST_CASE("the lab's counters see the drops of a queue that is sent four times its rate", "[netlab]") {
    skip_unless_installed("iperf3", "iperf3");
    constexpr std::uint64_t kUnseenDropsAtMost = 42;
    lab_config config;
    config.upload.rate_bits_per_second = 10'000'000;
    lab link(config);
    const lab_counter_window counters(link);
    const iperf3_result iperf3 =
        run_iperf3(link, transfer::upload, 2.0, 0.0, 1, {"-u", "-b", "40M", "-l", "1200"});
    const lab_counters during = counters.during();
    const auto lost = iperf3.json["end"]["sum"]["lost_packets"].get<std::uint64_t>();
    const auto sent = iperf3.json["end"]["sum"]["packets"].get<std::uint64_t>();
    const std::uint64_t dropped = during.upload_queue_drops + during.server_udp_buffer_drops;
    std::printf("netlab: 40 Mbit/s into 10: iperf3 sent %llu datagrams, lost %llu; %s\n",
                static_cast<unsigned long long>(sent), static_cast<unsigned long long>(lost),
                describe(during).c_str());
    CHECK(during.cpu_ticks > 0);
    CHECK(during.steal_ticks <= during.cpu_ticks);
    CHECK(sent >= 7'000);                     // 8,333 at the rate
    CHECK(lost >= sent / 2);                  // three quarters cannot fit
    CHECK(during.download_queue_drops == 0);  // only the control connection's packets go that way
    CHECK(lost <= dropped);
    CHECK(dropped <= lost + kUnseenDropsAtMost);
}
