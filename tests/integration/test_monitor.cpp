// speedcli monitor on this host's loopback interface: the NDJSON contract of docs/monitor.md, the text output
// in a pipe and in a terminal, --once, stop signals, and the command-line errors. Exact byte counts against
// the kernel are checked on a veth pair of our own (tests/netlab), since other processes share loopback.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <cstdlib>
#include <thread>

#include "tests/integration/client_json.hpp"
#include "tests/integration/monitor_ndjson.hpp"

using namespace speed::testing;

namespace {

constexpr int kExitUsage = 2;

process_result run_monitor(const std::vector<std::string>& args,
                           std::chrono::milliseconds limit = std::chrono::seconds(30)) {
    std::vector<std::string> argv{speedcli_path(), "monitor"};
    argv.insert(argv.end(), args.begin(), args.end());
    return run_process(argv, limit);
}

std::vector<std::string> text_lines(const std::string& text) {
    std::vector<std::string> lines;
    std::istringstream stream(text);
    std::string line;
    while (std::getline(stream, line)) {
        lines.push_back(line);
    }
    return lines;
}

// Sends `datagrams` UDP datagrams of `payload` bytes to a closed port on 127.0.0.1, spread over `seconds`.
void send_on_loopback(int datagrams, std::size_t payload, double seconds) {
    const int fd = ::socket(AF_INET, SOCK_DGRAM, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    to.sin_port = htons(9);  // discard: nothing listens, the datagrams still cross lo
    const std::vector<char> data(payload, 'x');
    for (int i = 0; i < datagrams; ++i) {
        ::sendto(fd, data.data(), data.size(), 0, reinterpret_cast<const sockaddr*>(&to), sizeof to);
        std::this_thread::sleep_for(std::chrono::duration<double>(seconds / datagrams));
    }
    ::close(fd);
}

}  // namespace

TEST_CASE("monitor --json on lo: one interval object per line, then the summary", "[integration][monitor]") {
    // 200 datagrams of 1000 bytes cross lo while the monitor runs, so the figures are not all zero.
    std::thread traffic(send_on_loopback, 200, 1000, 0.3);
    const auto run = run_monitor({"--count", "3", "--interval", "0.1", "--json", "--interface", "lo"});
    traffic.join();
    INFO(run.out << run.err);
    CHECK(run.exit_code == 0);
    CHECK(run.err.empty());
    const auto lines = ndjson_lines(run.out);
    REQUIRE(lines.size() == 4);
    const std::vector<nlohmann::ordered_json> intervals(lines.begin(), lines.begin() + 3);
    std::uint64_t rx_bytes = 0;
    for (const auto& line : intervals) {
        check_interval_line(line);
        REQUIRE(line["interfaces"].size() == 1);
        CHECK(line["interfaces"][0]["name"] == "lo");
        CHECK_FALSE(line.contains("partial"));
        CHECK(line["interval_seconds"].get<double>() < 2.0);
        rx_bytes += line["interfaces"][0]["rx_bytes"].get<std::uint64_t>();
    }
    // On lo every datagram is both sent and received; some of the 200 may fall outside the window.
    CHECK(rx_bytes > 0);
    check_summary_line(lines[3], intervals);
    // Sampling instants are absolute deadlines on the monotonic clock: the last reading is never before the
    // third one, and on a loaded machine it is late by one scheduling delay, not by a drift accumulated per
    // interval.
    CHECK(lines[3]["summary"]["seconds"].get<double>() >= 0.3);
    CHECK(lines[3]["summary"]["seconds"].get<double>() < 2.0);
}

TEST_CASE("monitor --once --json prints one interval and no summary", "[integration][monitor]") {
    const auto run = run_monitor({"--once", "--interval", "0.1", "--json", "-I", "lo"});
    CHECK(run.exit_code == 0);
    const auto lines = ndjson_lines(run.out);
    REQUIRE(lines.size() == 1);
    check_interval_line(lines[0]);
}

TEST_CASE("monitor --once prints download and upload speed per interface", "[integration][monitor]") {
    const auto run = run_monitor({"--once", "--interval", "0.1", "--interface", "lo", "--units", "bytes"});
    INFO(run.out << run.err);
    CHECK(run.exit_code == 0);
    const auto lines = text_lines(run.out);
    REQUIRE(lines.size() == 1);
    CHECK_THAT(lines[0], Catch::StartsWith("lo "));
    CHECK_THAT(lines[0], Catch::Contains("download ") && Catch::Contains("upload ") &&
                             Catch::Contains("B/s") && Catch::Contains(" received, "));
}

TEST_CASE("monitor in a pipe: a header, one row per interval, the summary, no escape codes",
          "[integration][monitor]") {
    const auto run = run_monitor({"--count", "2", "--interval", "0.1", "--interface", "lo"});
    INFO(run.out << run.err);
    CHECK(run.exit_code == 0);
    CHECK(run.out.find('\x1b') == std::string::npos);
    const auto lines = text_lines(run.out);
    REQUIRE(lines.size() == 7);
    CHECK_THAT(lines[0], Catch::StartsWith("time          interface   rx bytes  tx bytes     total"));
    // Other traffic on lo may show as kbit/s, Mbit/s or Gbit/s.
    const std::regex row(R"(\d\d:\d\d:\d\d\.\d{3}  lo .*bit/s .*)");
    CHECK(std::regex_match(lines[1], row));
    CHECK(std::regex_match(lines[2], row));
    CHECK(lines[3].empty());
    CHECK_THAT(lines[4], Catch::StartsWith("Summary: 2 intervals over "));
    CHECK_THAT(lines[5], Catch::StartsWith("interface   received      sent    rx average"));
    CHECK_THAT(lines[6], Catch::StartsWith("lo  "));
}

TEST_CASE("monitor in a terminal redraws in place", "[integration][monitor]") {
    if (::access("/usr/bin/script", X_OK) != 0) {
        WARN("SKIP: /usr/bin/script (bsdutils) is needed to give the monitor a terminal");
        return;
    }
    ::setenv("TERM", "xterm", 1);
    const std::string command = speedcli_path() + " monitor --count 3 --interval 0.1 --interface lo";
    const auto run =
        run_process({"/usr/bin/script", "-qfec", command, "/dev/null"}, std::chrono::seconds(30));
    INFO(run.out << run.err);
    CHECK(run.exit_code == 0);
    // The first block is the header; each interval moves back over the previous block and clears it.
    CHECK_THAT(run.out, Catch::StartsWith("Every 0.1 s; Ctrl-C stops and prints the summary."));
    CHECK_THAT(run.out, Catch::Contains("\r\x1b[1A\x1b[J") && Catch::Contains("\r\x1b[2A\x1b[J"));
    CHECK_THAT(run.out, Catch::Contains("Summary: 3 intervals"));

    ::setenv("TERM", "dumb", 1);
    const auto dumb =
        run_process({"/usr/bin/script", "-qfec", command, "/dev/null"}, std::chrono::seconds(30));
    CHECK(dumb.exit_code == 0);
    CHECK(dumb.out.find('\x1b') == std::string::npos);
    CHECK_THAT(dumb.out, Catch::Contains("Summary: 3 intervals"));
}

TEST_CASE("a stop signal ends the run cleanly with the partial interval and the summary",
          "[integration][monitor]") {
    for (const char* signal : {"INT", "TERM"}) {
        INFO("SIG" << signal);
        // coreutils timeout sends the signal after 0.35 s and passes the monitor's own exit status on.
        const auto run =
            run_process({"/usr/bin/timeout", "--preserve-status", "-s", signal, "0.35", speedcli_path(),
                         "monitor", "--json", "--interval", "0.1", "--interface", "lo"},
                        std::chrono::seconds(30));
        INFO(run.out << run.err);
        CHECK(run.exit_code == 0);
        const auto lines = ndjson_lines(run.out);
        REQUIRE(lines.size() >= 2);
        const std::vector<nlohmann::ordered_json> intervals(lines.begin(), lines.end() - 1);
        for (const auto& line : intervals) {
            check_interval_line(line);
        }
        CHECK(intervals.back()["partial"] == true);
        check_summary_line(lines.back(), intervals);
    }
    const auto text = run_process({"/usr/bin/timeout", "--preserve-status", "-s", "INT", "0.25",
                                   speedcli_path(), "monitor", "--interval", "10"},
                                  std::chrono::seconds(30));
    CHECK(text.exit_code == 0);
    CHECK_THAT(text.out, Catch::Contains("Summary: 1 interval over 0."));
}

TEST_CASE("monitor stops when its reader goes away, also with SIGPIPE ignored", "[integration][monitor]") {
    // `trap '' PIPE` makes the shell and its children ignore SIGPIPE: writes to the closed pipe then fail
    // with EPIPE instead of killing the monitor, which must notice rather than sample forever (timeout's
    // 124).
    const std::string pipeline = "trap '' PIPE; (/usr/bin/timeout 10 " + speedcli_path() +
                                 " monitor --interval 0.01 --interface lo; echo \"monitor exit $?\" >&2)"
                                 " | head -n 3 >/dev/null";
    const auto run = run_process({"/bin/sh", "-c", pipeline}, std::chrono::seconds(20));
    CHECK(run.err == "monitor exit 1\n");
}

TEST_CASE("monitor --interface with an unknown name lists the available ones", "[integration][monitor]") {
    const auto run = run_monitor({"--interface", "lo", "--interface", "nosuch0", "--count", "1"});
    CHECK(run.exit_code == kExitUsage);
    CHECK(run.out.empty());
    CHECK_THAT(run.err, Catch::StartsWith("speedcli monitor: no interface named 'nosuch0'; available: ") &&
                            Catch::Contains("lo"));
}

TEST_CASE("monitor refuses bad options", "[integration][monitor]") {
    CHECK(run_monitor({"--units", "furlongs"}).exit_code == kExitUsage);
    CHECK(run_monitor({"--interval", "0"}).exit_code == kExitUsage);
    CHECK(run_monitor({"--interval", "abc"}).exit_code == kExitUsage);
    CHECK(run_monitor({"--once", "--count", "3"}).exit_code == kExitUsage);
    CHECK(run_monitor({"--count", "-1"}).exit_code == kExitUsage);
}
