// The real iperf3 client (tests/support/iperf3.hpp: Debian's 3.12 in CI, or $SPEED_IPERF3) against speedsrv:
// uploads, -R, -P, a refusal with iperf3's own error, two clients at once, and --no-iperf3. The figures
// iperf3 prints for the server's side come from speedsrv's results exchange, so they must equal what speedsrv
// logged exactly. Paced uploads (iperf3 --fq-rate, and speedcli --iperf3, which paces the same way) check
// speedsrv's upload rate.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "tests/integration/client_json.hpp"
#include "tests/support/iperf3.hpp"
#include "tests/support/process.hpp"
#include "tests/support/sysctl.hpp"

using namespace speed::testing;
using namespace std::chrono_literals;

namespace {

struct iperf3_run {
    process_result process;
    nlohmann::json document;
};

// iperf3 -c 127.0.0.1 -p PORT -J plus `args`, which say how the test ends.
iperf3_run run_iperf3_until(std::uint16_t port, const std::vector<std::string>& args) {
    std::vector<std::string> argv{iperf3_binary(), "-c", "127.0.0.1", "-p", std::to_string(port), "-J"};
    argv.insert(argv.end(), args.begin(), args.end());
    iperf3_run run;
    run.process = run_process(argv, 30s);
    INFO("iperf3 output: " << run.process.out << run.process.err);
    run.document = nlohmann::json::parse(run.process.out, nullptr, false);
    REQUIRE(run.document.is_object());
    return run;
}

// iperf3 -c 127.0.0.1 -p PORT -J -t 2 plus `args`. A two-second test keeps the suite short and still gives
// iperf3 whole intervals.
iperf3_run run_iperf3(std::uint16_t port, const std::vector<std::string>& args) {
    std::vector<std::string> with_time{"-t", "2"};
    with_time.insert(with_time.end(), args.begin(), args.end());
    return run_iperf3_until(port, with_time);
}

// A refusal as the client printed it: -J puts it in the document's "error" member; iperf3 before 3.12 (3.9
// seen) printed a document without one and the error on stderr ("iperf3: error - ...").
std::string refusal_of(const iperf3_run& run) {
    if (iperf3_at_least({3, 12, 0})) {
        REQUIRE(run.document.contains("error"));
    }
    return run.document.contains("error") ? run.document["error"].get<std::string>() : run.process.err;
}

// From 3.16 iperf3's client cancels its sending threads when its time is up (pthread_cancel, asynchronous): a
// write the kernel took in part is then missing from its sender figure, while speedsrv's receiver counts it:
// up to a block (128 KiB by default) per stream (seen: 127786 and 131072 bytes, with 3.16 and 3.21).
std::uint64_t uncounted_writes(std::uint64_t streams) {
    return iperf3_at_least({3, 16, 0}) ? streams * 128 * 1024 : 0;
}

// iperf3 3.11 added the -J members the UDP and --bidir tests compare with speedsrv's log: a UDP test's
// end.sum_received (before, its end.sum holds the sender's bytes with the receiver's datagrams) and --bidir's
// end.sum_*_bidir_reverse (before, end.sum_sent and sum_received hold one of the two directions).
constexpr iperf3_version kReceiverSums{3, 11, 0};
const char* const kNoReceiverSums =
    "before 3.11 its -J has no receiver sums of a UDP test (end.sum_received) nor of --bidir "
    "(end.sum_*_bidir_reverse) to compare speedsrv's figures with";

// The payload bytes of the results speedsrv gave its iperf3 clients, from its "ended" lines, in order.
std::vector<std::uint64_t> logged_result_bytes(const std::string& log) {
    static const std::regex line(
        "iperf3 [^\n]* session from [^\n]* ended [^\n]*; ([0-9]+) bytes in the results");
    std::vector<std::uint64_t> out;
    for (auto it = std::sregex_iterator(log.begin(), log.end(), line); it != std::sregex_iterator(); ++it) {
        out.push_back(std::stoull((*it)[1].str()));
    }
    return out;
}

// Waits until the server logged `count` finished iperf3 sessions (it logs right after the client's last
// byte, which may be just after the client exits).
std::string log_with_sessions(server_process& server, std::size_t count) {
    for (int i = 0; i < 100; ++i) {
        const std::string log = server.log();
        if (logged_result_bytes(log).size() >= count) {
            return log;
        }
        std::this_thread::sleep_for(50ms);
    }
    return server.log();
}

// A completed test's totals as the client printed them, and the bytes speedsrv logged it gave the client.
struct test_figures {
    std::uint64_t sent = 0;
    std::uint64_t received = 0;
    std::uint64_t logged = 0;
};

test_figures figures_of(server_process& server, const iperf3_run& run) {
    REQUIRE(run.process.exit_code == 0);
    REQUIRE_FALSE(run.document.contains("error"));
    const auto& end = run.document["end"];
    const auto logged = logged_result_bytes(log_with_sessions(server, 1));
    INFO(server.log());
    REQUIRE(logged.size() == 1);
    return {end["sum_sent"]["bytes"].get<std::uint64_t>(), end["sum_received"]["bytes"].get<std::uint64_t>(),
            logged[0]};
}

}  // namespace

TEST_CASE("the tests' iperf3 is known by the version its --version names", "[integration][iperf3]") {
    CHECK(parse_iperf3_version("iperf 3.12 (cJSON 1.7.15)\nLinux vm 6.1.0 #1 SMP x86_64\n") ==
          iperf3_version{3, 12, 0});
    CHECK(parse_iperf3_version("iperf 3.21+ (cJSON 1.7.15)") == iperf3_version{3, 21, 0});
    CHECK(parse_iperf3_version("iperf 3.10.1 (cJSON 1.7.13)") == iperf3_version{3, 10, 1});
    CHECK_FALSE(parse_iperf3_version("iperf version 2.1.8 (12 August 2022) pthreads"));
    CHECK_FALSE(parse_iperf3_version(""));
    CHECK(iperf3_version{3, 9, 0} < iperf3_version{3, 16, 0});
    CHECK(iperf3_version{3, 10, 1} > iperf3_version{3, 10, 0});
}

TEST_CASE("an iperf3 client's upload: the receiver figure it prints is speedsrv's, exactly",
          "[integration][iperf3][iperf3-binary]") {
    if (!have_iperf3()) {
        return;
    }
    server_process server;
    const auto run = run_iperf3(server.port(), {});
    const auto figures = figures_of(server, run);
    CHECK(figures.received == figures.logged);
    CHECK(figures.received > 0);
    // The server counts what arrived in its window: never more than the client wrote.
    CHECK(figures.received <= figures.sent + uncounted_writes(1));
    CHECK(server.log().find("upload 1 stream: received") != std::string::npos);
    // The client prints the server's CPU use as iperf3 -s reports its own (it read 0 % before speedsrv
    // measured it): receiving two seconds of unpaced data takes some, and no more than every core.
    const auto& cpu = run.document["end"]["cpu_utilization_percent"];
    const double total = cpu["remote_total"].get<double>();
    CHECK(total > 0.0);
    CHECK(total == Approx(cpu["remote_user"].get<double>() + cpu["remote_system"].get<double>()));
    CHECK(total <= 100.0 * std::max(1U, std::thread::hardware_concurrency()) * 1.05);
}

namespace {

// An upload that the client ends by amount (`args`: -n or -k): the receiver figures the client prints are
// speedsrv's logged bytes, and hold every byte the client sent (at least `least`), give or take `skew`.
void check_upload_by_amount(const std::vector<std::string>& args, std::uint64_t least,
                            std::uint64_t skew = 0) {
    server_process server;
    const auto run = run_iperf3_until(server.port(), args);
    const auto figures = figures_of(server, run);
    INFO("sent " << figures.sent << ", received " << figures.received);
    CHECK(figures.received == figures.logged);
    CHECK(figures.received + skew >= least);
    // The window ends at TEST_END and then takes what was still on its way: all the client wrote.
    CHECK(figures.received + skew >= figures.sent);
    CHECK(figures.received <= figures.sent + skew);
    const auto& streams = run.document["end"]["streams"];
    REQUIRE(streams.size() == 1);
    CHECK(streams[0]["receiver"]["bytes"].get<std::uint64_t>() == figures.received);
}

}  // namespace

TEST_CASE("iperf3 -n 20M upload: speedsrv receives until TEST_END and reports every byte",
          "[integration][iperf3][iperf3-binary]") {
    if (!have_iperf3()) {
        return;
    }
    check_upload_by_amount({"-n", "20M"}, 20ull * 1024 * 1024);
}

TEST_CASE("iperf3 -k 500 -l 64K upload: speedsrv receives until TEST_END and reports every byte",
          "[integration][iperf3][iperf3-binary]") {
    if (!have_iperf3()) {
        return;
    }
    check_upload_by_amount({"-k", "500", "-l", "64K"}, 500ull * 64 * 1024);
}

TEST_CASE("iperf3 -n 20M -O 1 upload: the amount counts after the warm-up, and so do speedsrv's figures",
          "[integration][iperf3][iperf3-binary]") {
    if (!have_iperf3()) {
        return;
    }
    // Paced at 200 Mbit/s the warm-up carries 25 MB, more than the amount: counted, it would be in the figure
    // (it was: 46.0 MB received of 20.97 MB). Each end's warm-up ends on its own clock, the server's first
    // (from its TEST_RUNNING), so what the client sent in between is in the server's figure only, as with
    // iperf3's own server: seen 0 and 2 blocks (131 kB, 5 ms at this rate) here. 2.5 MB is 100 ms of skew
    // for a machine busy with other tests, and a tenth of what the warm-up would add.
    constexpr std::uint64_t kSkew = 2'500'000;
    check_upload_by_amount({"-n", "20M", "-O", "1", "-b", "200M"}, 20ull * 1024 * 1024, kSkew);
    check_upload_by_amount({"-k", "300", "-l", "64K", "-O", "1", "-b", "200M"}, 300ull * 64 * 1024, kSkew);
}

TEST_CASE("iperf3 -n above --max-bytes is refused before the test with iperf3's own error",
          "[integration][iperf3][iperf3-binary]") {
    if (!have_iperf3()) {
        return;
    }
    server_process server({"--max-bytes", "8M"});
    const auto run = run_iperf3_until(server.port(), {"-n", "20M"});
    CHECK_THAT(refusal_of(run), Catch::Contains("not implemented"));
    CHECK(log_shows_within(server, "bytes, the server allows 8388608"));
}

namespace {

// The bytes received and sent that speedsrv's results gave its iperf3 --bidir client, from its log.
struct bidir_bytes {
    std::uint64_t received = 0;
    std::uint64_t sent = 0;
};

// An iperf3 --bidir client's own figures: it names its upload sum_sent/sum_received and its download
// sum_*_bidir_reverse (3.11 and later; before, a TCP test's are summed from its streams, the sending ones
// flagged "sender").
struct bidir_figures {
    std::uint64_t upload_sent = 0;
    std::uint64_t upload_received = 0;
    std::uint64_t download_sent = 0;
    std::uint64_t download_received = 0;
};

bidir_figures bidir_figures_of(const nlohmann::json& end) {
    if (iperf3_at_least(kReceiverSums)) {
        return {end["sum_sent"]["bytes"].get<std::uint64_t>(),
                end["sum_received"]["bytes"].get<std::uint64_t>(),
                end["sum_sent_bidir_reverse"]["bytes"].get<std::uint64_t>(),
                end["sum_received_bidir_reverse"]["bytes"].get<std::uint64_t>()};
    }
    bidir_figures figures;
    for (const auto& stream : end["streams"]) {
        const bool upload = stream["sender"]["sender"].get<bool>();
        (upload ? figures.upload_sent : figures.download_sent) +=
            stream["sender"]["bytes"].get<std::uint64_t>();
        (upload ? figures.upload_received : figures.download_received) +=
            stream["receiver"]["bytes"].get<std::uint64_t>();
    }
    return figures;
}

bidir_bytes logged_bidir_bytes(server_process& server) {
    static const std::regex line("; ([0-9]+) bytes received and ([0-9]+) bytes sent in the results");
    std::smatch logged;
    std::string log;
    for (int i = 0; i < 100 && !std::regex_search(log, logged, line); ++i) {
        std::this_thread::sleep_for(50ms);
        log = server.log();
    }
    INFO(log);
    REQUIRE(logged.size() == 3);
    return {std::stoull(logged[1].str()), std::stoull(logged[2].str())};
}

// Runs iperf3 --bidir plus `args` against `server`, which must succeed, and checks that the figures speedsrv
// gave the client (the upload's receiver bytes, the download's sender bytes) are those of its log.
nlohmann::json run_bidir_logged(server_process& server, const std::vector<std::string>& args) {
    std::vector<std::string> with_bidir{"--bidir"};
    with_bidir.insert(with_bidir.end(), args.begin(), args.end());
    const auto run = run_iperf3(server.port(), with_bidir);
    REQUIRE(run.process.exit_code == 0);
    REQUIRE_FALSE(run.document.contains("error"));
    const auto& end = run.document["end"];
    const bidir_figures figures = bidir_figures_of(end);
    const auto logged = logged_bidir_bytes(server);
    CHECK(figures.upload_received == logged.received);
    CHECK(figures.download_sent == logged.sent);
    return end;
}

}  // namespace

TEST_CASE("iperf3 --bidir: both directions at once, each end's figures for each",
          "[integration][iperf3][iperf3-binary]") {
    if (!have_iperf3()) {
        return;
    }
    server_process server;
    const auto end = run_bidir_logged(server, {"-P", "2"});
    const auto [upload_sent, upload_received, download_sent, download_received] = bidir_figures_of(end);
    CHECK(upload_received > 0);
    CHECK(download_received > 0);
    // The upload's window takes every byte written before TEST_END (and those of writes a 3.16 or later
    // client left out of its figure); the client reads its download until then.
    CHECK(upload_received >= upload_sent);
    CHECK(upload_received <= upload_sent + uncounted_writes(2));
    CHECK(download_received <= download_sent);
    // Four streams, each with its role and the other end's figure: ids 1 and 3 carry the upload, 4 and 5 the
    // download, as iperf3's own server numbers them.
    const auto& streams = end["streams"];
    REQUIRE(streams.size() == 4);
    for (std::size_t i = 0; i < streams.size(); ++i) {
        CHECK(streams[i]["sender"]["sender"].get<bool>() == (i < 2));
        CHECK(streams[i]["receiver"]["bytes"].get<std::uint64_t>() > 0);
    }
    const std::string log = server.log();
    CHECK(log.find("upload 2 streams: received") != std::string::npos);
    CHECK(log.find("download 2 streams: sent") != std::string::npos);
}

TEST_CASE("an iperf3 client's -R download: speedsrv sends until TEST_END and reports what it sent",
          "[integration][iperf3][iperf3-binary]") {
    if (!have_iperf3()) {
        return;
    }
    server_process server;
    const auto figures = figures_of(server, run_iperf3(server.port(), {"-R"}));
    CHECK(figures.sent == figures.logged);
    CHECK(figures.received > 0);
    // The client counts what it read: never more than the server handed to its sockets.
    CHECK(figures.received <= figures.sent);
    CHECK(server.log().find("download 1 stream: sent") != std::string::npos);
}

TEST_CASE("iperf3 -R -O 1: the sender's figure leaves the warm-up out, as iperf3's own server does",
          "[integration][iperf3][iperf3-binary]") {
    if (!have_iperf3()) {
        return;
    }
    server_process server;
    const auto run = run_iperf3(server.port(), {"-R", "-O", "1"});
    REQUIRE(run.process.exit_code == 0);
    REQUIRE_FALSE(run.document.contains("error"));
    const auto& end = run.document["end"];
    const double sent = end["sum_sent"]["bytes"].get<double>();
    const double received = end["sum_received"]["bytes"].get<double>();
    INFO("sent " << sent << ", received " << received);
    // Both ends leave out the first second: the server from its TEST_RUNNING, the client from reading it, a
    // moment later. What remains apart is that moment and the bytes in flight at the end (a few MB of socket
    // buffers against GBs). With the warm-up counted, the sender's figure was 1.5x the receiver's (3 s of
    // sending against 2 s received); 10 % either way tells the two apart.
    CHECK(sent >= 0.9 * received);
    CHECK(sent <= 1.1 * received);
    CHECK(end["sum_sent"]["seconds"].get<double>() == Approx(2.0).margin(0.3));
}

TEST_CASE("iperf3 --bidir -O 1: each direction's figures leave the warm-up out, as iperf3's own server does",
          "[integration][iperf3][iperf3-binary]") {
    if (!have_iperf3()) {
        return;
    }
    server_process server;
    const auto end = run_bidir_logged(server, {"-O", "1"});
    const auto [upload_sent, upload_received, download_sent, download_received] = bidir_figures_of(end);
    INFO("upload sent " << upload_sent << ", received " << upload_received << "; download sent "
                        << download_sent << ", received " << download_received);
    // Each end leaves out the first second, from its own start of the test (the server's TEST_RUNNING, the
    // client's reading of it a moment later); what remains apart is that moment and the bytes in flight at
    // the end. With a warm-up counted, one end's figure is 1.5x the other's (3 s against 2 s); 10 % either
    // way tells the two apart.
    CHECK(static_cast<double>(upload_received) >= 0.9 * static_cast<double>(upload_sent));
    CHECK(static_cast<double>(upload_received) <= 1.1 * static_cast<double>(upload_sent));
    CHECK(static_cast<double>(download_sent) >= 0.9 * static_cast<double>(download_received));
    CHECK(static_cast<double>(download_sent) <= 1.1 * static_cast<double>(download_received));
    CHECK(end["sum_received"]["seconds"].get<double>() == Approx(2.0).margin(0.3));
}

namespace {

// Uploads whose sender paces in the kernel (SO_MAX_PACING_RATE: speedcli, iperf3 --fq-rate) leave part of
// what they wrote before TEST_END in their socket buffers, still arriving after it. Their figure must be the
// bytes over the time they arrived in. Measured for 200 Mbit/s on loopback, 2 shared cores at load 8, 17 runs
// (these tests and by hand): 195.8-203.3 Mbit/s (-2.1 % to +1.7 %); before the window's end took the last
// byte into account, 225-233 (speedcli --bidir, iperf3 --bidir) and 240 (iperf3 -n). 5 % holds the first with
// room for a busier host and fails the second.
constexpr double kPacedRate = 200e6;
constexpr double kPacedTolerance = 0.05;

// speedsrv's log of an iperf3 upload: the rate, bytes and span it printed ("received 200.1 Mbit/s (47.70 MiB
// in 2.00 s, receiver side)"; the figures of a 200 Mbit/s test of a few seconds are in those units).
struct logged_upload_window {
    double mbit_per_second = 0.0;
    double mib = 0.0;
    double seconds = 0.0;
};

logged_upload_window logged_upload_window_of(server_process& server) {
    static const std::regex line(
        "upload [0-9]+ streams?: received ([0-9.]+) Mbit/s \\(([0-9.]+) MiB in ([0-9.]+) s");
    REQUIRE(log_shows_within(server, " session from "));
    std::smatch logged;
    const std::string log = server.log();
    INFO(log);
    REQUIRE(std::regex_search(log, logged, line));
    return {std::stod(logged[1].str()), std::stod(logged[2].str()), std::stod(logged[3].str())};
}

// The log's own rate is its bytes over its span, as far as its rounding (0.01 s, 0.01 MiB, 0.1 Mbit/s) goes.
void check_logged_rate_is_bytes_over_span(const logged_upload_window& logged) {
    INFO(logged.mbit_per_second << " Mbit/s, " << logged.mib << " MiB in " << logged.seconds << " s");
    CHECK(logged.mbit_per_second == Approx(logged.mib * 8.0 * 1.048576 / logged.seconds).epsilon(0.005));
}

void check_near_paced_rate(double bits_per_second) {
    CHECK(bits_per_second == Approx(kPacedRate).epsilon(kPacedTolerance));
}

// An iperf3 client's paced upload: the receiver figure it prints (speedsrv's bytes over speedsrv's span) and
// speedsrv's log.
void check_paced_iperf3_upload(server_process& server, const nlohmann::json& end) {
    const auto& received = end["sum_received"];
    check_logged_rate_is_bytes_over_span(logged_upload_window_of(server));
    check_near_paced_rate(static_cast<double>(received["bytes"].get<std::uint64_t>()) * 8.0 /
                          received["seconds"].get<double>());
}

}  // namespace

TEST_CASE("speedcli --iperf3 --bidir against speedsrv: the upload is its bytes over the span they arrived in",
          "[integration][iperf3][bidir]") {
    server_process server;
    // speedcli sends its upload on until its download's window closes and then TEST_END: the bytes still in
    // its socket buffers arrive after it.
    const auto run = run_client({"127.0.0.1", "-p", std::to_string(server.port()), "--iperf3", "--bidir",
                                 "-P", "2", "-t", "2", "-b", "200M", "-J"});
    INFO(run.process.out << run.process.err);
    REQUIRE(run.process.exit_code == 0);
    const nlohmann::json& upload = run.json["upload"];
    const auto logged = logged_bidir_bytes(server);
    const logged_upload_window window = logged_upload_window_of(server);
    CHECK(upload["bytes"].get<std::uint64_t>() == logged.received);
    CHECK(upload["seconds"].get<double>() == Approx(window.seconds).margin(0.005));
    CHECK(upload["bits_per_second"].get<double>() / 1e6 == Approx(window.mbit_per_second).margin(0.05));
    check_logged_rate_is_bytes_over_span(window);
    check_near_paced_rate(upload["bits_per_second"].get<double>());
}

TEST_CASE("speedcli --iperf3 upload against speedsrv: the upload is its bytes over its window",
          "[integration][iperf3]") {
    server_process server;
    const auto run = run_client({"127.0.0.1", "-p", std::to_string(server.port()), "--iperf3",
                                 "--no-download", "-P", "2", "-t", "2", "-b", "200M", "-J"});
    INFO(run.process.out << run.process.err);
    REQUIRE(run.process.exit_code == 0);
    const nlohmann::json& upload = run.json["upload"];
    const auto logged = logged_result_bytes(log_with_sessions(server, 1));
    REQUIRE(logged.size() == 1);
    const logged_upload_window window = logged_upload_window_of(server);
    CHECK(upload["bytes"].get<std::uint64_t>() == logged[0]);
    CHECK(upload["seconds"].get<double>() == Approx(window.seconds).margin(0.005));
    check_logged_rate_is_bytes_over_span(window);
    check_near_paced_rate(upload["bits_per_second"].get<double>());
}

TEST_CASE(
    "iperf3 --bidir --fq-rate: the upload paced by the kernel is its bytes over the span they arrived in",
    "[integration][iperf3][iperf3-binary]") {
    if (!have_iperf3() || !skip_unless_iperf3_at_least(kReceiverSums, kNoReceiverSums)) {
        return;
    }
    server_process server;
    // --fq-rate is per stream.
    const auto end = run_bidir_logged(server, {"-P", "2", "--fq-rate", "100M"});
    check_paced_iperf3_upload(server, end);
}

TEST_CASE(
    "iperf3 -n 50M --fq-rate: the upload paced by the kernel is its bytes over the span they arrived in",
    "[integration][iperf3][iperf3-binary]") {
    if (!have_iperf3()) {
        return;
    }
    server_process server;
    const auto run = run_iperf3_until(server.port(), {"-n", "50M", "-P", "2", "--fq-rate", "100M"});
    const auto figures = figures_of(server, run);
    CHECK(figures.received == figures.logged);
    CHECK(figures.received == figures.sent);
    check_paced_iperf3_upload(server, run.document["end"]);
}

TEST_CASE("iperf3 -P 2: two streams, each with the server's figure", "[integration][iperf3][iperf3-binary]") {
    if (!have_iperf3()) {
        return;
    }
    server_process server;
    const auto run = run_iperf3(server.port(), {"-P", "2"});
    REQUIRE(run.process.exit_code == 0);
    REQUIRE_FALSE(run.document.contains("error"));
    const auto& streams = run.document["end"]["streams"];
    REQUIRE(streams.size() == 2);
    std::uint64_t received = 0;
    for (const auto& stream : streams) {
        CHECK(stream["receiver"]["bytes"].get<std::uint64_t>() > 0);
        received += stream["receiver"]["bytes"].get<std::uint64_t>();
    }
    const auto logged = logged_result_bytes(log_with_sessions(server, 1));
    REQUIRE(logged.size() == 1);
    CHECK(received == logged[0]);
    CHECK(run.document["end"]["sum_received"]["bytes"].get<std::uint64_t>() == logged[0]);
}

TEST_CASE("iperf3 asking for more streams than --max-streams gets iperf3's own error",
          "[integration][iperf3][iperf3-binary]") {
    if (!have_iperf3()) {
        return;
    }
    server_process server({"--max-streams", "2"});
    const auto run = run_iperf3(server.port(), {"-P", "3"});
    // iperf3 -J reports a server's refusal in its "error" member (3.12 exits 1; some versions 0).
    CHECK_THAT(refusal_of(run), Catch::Contains("parallel streams"));
    CHECK(log_shows_within(server, "3 streams, the server allows 2"));
    // And the server serves the next client.
    const auto next = run_iperf3(server.port(), {"-P", "2"});
    CHECK(next.process.exit_code == 0);
    CHECK_FALSE(next.document.contains("error"));
}

TEST_CASE("four iperf3 clients at once against one speedsrv all complete",
          "[integration][iperf3][iperf3-binary]") {
    if (!have_iperf3()) {
        return;
    }
    server_process server;
    const std::uint16_t port = server.port();
    // Two uploads and two downloads, all running their whole test at the same time: iperf3's own server would
    // answer every client after the first "busy". Four is speedsrv's default cap of sessions per host.
    constexpr std::size_t kClients = 4;
    std::vector<process_result> runs(kClients);
    std::vector<std::thread> clients;
    for (std::size_t i = 0; i < kClients; ++i) {
        clients.emplace_back([&runs, port, i] {
            std::vector<std::string> argv{iperf3_binary(),      "-c", "127.0.0.1", "-p",
                                          std::to_string(port), "-J", "-t",        "3"};
            if (i % 2 == 1) {
                argv.push_back("-R");
            }
            runs[i] = run_process(argv, 30s);
        });
    }
    for (auto& client : clients) {
        client.join();
    }
    for (const auto& run : runs) {
        INFO(run.out << run.err << server.log());
        CHECK(run.exit_code == 0);
        const auto document = nlohmann::json::parse(run.out, nullptr, false);
        REQUIRE(document.is_object());
        CHECK_FALSE(document.contains("error"));
    }
    const auto logged = logged_result_bytes(log_with_sessions(server, kClients));
    CHECK(logged.size() == kClients);
}

TEST_CASE("speedsrv --no-iperf3 closes an iperf3 client's connection",
          "[integration][iperf3][iperf3-binary]") {
    if (!have_iperf3()) {
        return;
    }
    server_process server({"--no-iperf3"});
    const auto run = run_iperf3(server.port(), {});
    CHECK_FALSE(refusal_of(run).empty());
    CHECK(server.log().find("iperf3 session") == std::string::npos);
}

// ---- UDP (`iperf3 -u`): speedsrv's iperf3 data path (server/runners/iperf3_udp_runner.hpp) ----

namespace {

// iperf3's receiver figures as speedsrv logged them for its UDP uploads: lost/packets and the jitter as the
// log prints it (ms, 3 decimals), then the bytes the results carried.
struct logged_udp_upload {
    std::uint64_t lost = 0;
    std::uint64_t packets = 0;
    std::string jitter_ms;
    std::uint64_t bytes = 0;
};

std::vector<logged_udp_upload> logged_udp_uploads(const std::string& log) {
    static const std::regex line(
        "udp upload [^\n]*, lost ([0-9]+)/([0-9]+), jitter ([0-9.]+) ms; ([0-9]+) "
        "bytes in the results");
    std::vector<logged_udp_upload> out;
    for (auto it = std::sregex_iterator(log.begin(), log.end(), line); it != std::sregex_iterator(); ++it) {
        out.push_back({std::stoull((*it)[1].str()), std::stoull((*it)[2].str()), (*it)[3].str(),
                       std::stoull((*it)[4].str())});
    }
    return out;
}

struct udp_upload {
    nlohmann::json received;  // the client's end.sum_received
    nlohmann::json document;
    std::string log;  // speedsrv's
};

// Runs an iperf3 UDP upload with `args` against a new speedsrv and checks that the receiver figures the
// client printed (end.sum_received: speedsrv's, from the results exchange) are the ones speedsrv logged,
// exactly, and that loopback at these rates (50 Mbit/s at most) lost nothing.
udp_upload udp_upload_matching_log(const std::vector<std::string>& args) {
    server_process server;
    const auto run = run_iperf3(server.port(), args);
    REQUIRE(run.process.exit_code == 0);
    REQUIRE_FALSE(run.document.contains("error"));
    const auto& end = run.document["end"];
    // Before 3.11 (kReceiverSums) the client prints speedsrv's datagrams, loss and jitter in end.sum, with
    // its own bytes sent in place of speedsrv's received ones.
    const bool receiver_sums = iperf3_at_least(kReceiverSums);
    const auto& received = receiver_sums ? end["sum_received"] : end["sum"];
    const auto logged = logged_udp_uploads(log_with_sessions(server, 1));
    INFO(server.log() << "\nclient: " << end.dump());
    REQUIRE(logged.size() == 1);
    if (receiver_sums) {
        CHECK(received["bytes"].get<std::uint64_t>() == logged[0].bytes);
        CHECK(received["bytes"].get<std::uint64_t>() > 0);
        // The server counts what arrived in its window: never more than the client wrote.
        CHECK(received["bytes"].get<std::uint64_t>() <= end["sum_sent"]["bytes"].get<std::uint64_t>());
    }
    CHECK(received["lost_packets"].get<std::uint64_t>() == logged[0].lost);
    CHECK(received["packets"].get<std::uint64_t>() == logged[0].packets);
    std::array<char, 32> jitter{};
    std::snprintf(jitter.data(), jitter.size(), "%.3f", received["jitter_ms"].get<double>());
    CHECK(std::string(jitter.data()) == logged[0].jitter_ms);
    CHECK(received["lost_packets"].get<std::uint64_t>() == 0);
    return {received, run.document, server.log()};
}

}  // namespace

TEST_CASE("an iperf3 UDP upload (-u -b 50M): the receiver figures it prints are speedsrv's, exactly",
          "[integration][iperf3][udp][iperf3-binary]") {
    if (!have_iperf3()) {
        return;
    }
    const auto upload = udp_upload_matching_log({"-u", "-b", "50M"});
    CHECK(upload.received["packets"].get<std::uint64_t>() > 0);
    CHECK(upload.log.find("udp upload 1 stream: received") != std::string::npos);
}

TEST_CASE("an iperf3 UDP upload with --udp-counters-64bit reads the 64-bit sequence numbers",
          "[integration][iperf3][udp][iperf3-binary]") {
    if (!have_iperf3()) {
        return;
    }
    const auto upload = udp_upload_matching_log({"-u", "-b", "20M", "--udp-counters-64bit"});
    // Read as 32-bit, every count would be 0 (the high half): no packets, every datagram out of order.
    CHECK(upload.received["packets"].get<std::uint64_t>() > 0);
}

TEST_CASE("an iperf3 UDP upload with -P 2: both streams connect and are counted",
          "[integration][iperf3][udp][iperf3-binary]") {
    if (!have_iperf3()) {
        return;
    }
    const auto upload = udp_upload_matching_log({"-u", "-b", "20M", "-P", "2"});
    CHECK(upload.document["end"]["streams"].size() == 2);
    CHECK(upload.log.find("udp upload 2 streams: received") != std::string::npos);
}

TEST_CASE("an iperf3 UDP -R download: speedsrv sends iperf3's datagrams at -b and reports what it sent",
          "[integration][iperf3][udp][iperf3-binary]") {
    if (!have_iperf3() || !skip_unless_iperf3_at_least(kReceiverSums, kNoReceiverSums)) {
        return;
    }
    // The client's socket buffers as large as the host lets it ask for (-w; Linux keeps twice the request, so
    // iperf3's check that it got what it asked for passes): with 4 MiB limits they hold 0.6 s of this rate.
    // With the default 208 KiB (20 ms), one CI run lost 4 % (357 datagrams in a row) to a descheduled client.
    const std::uint64_t window = std::min({std::uint64_t{2} << 20, proc_value("/proc/sys/net/core/rmem_max"),
                                           proc_value("/proc/sys/net/core/wmem_max")});
    server_process server;
    const auto run =
        run_iperf3(server.port(), {"-u", "-R", "-b", "50M", "-l", "1400", "-w", std::to_string(window)});
    REQUIRE(run.process.exit_code == 0);
    REQUIRE_FALSE(run.document.contains("error"));
    const auto& end = run.document["end"];
    const std::uint64_t sent = end["sum_sent"]["bytes"].get<std::uint64_t>();
    const std::uint64_t received = end["sum_received"]["bytes"].get<std::uint64_t>();
    const auto logged = logged_result_bytes(log_with_sessions(server, 1));
    INFO(server.log() << "\nclient: " << end.dump());
    REQUIRE(logged.size() == 1);
    CHECK(sent == logged[0]);
    CHECK(received > 0);
    CHECK(received <= sent);
    // At the pace asked for: 2 s at 50 Mbit/s is 12.5 MB; the pacer's first burst and the moment between
    // the client's timer and the server's add a few datagrams, a sender ignoring -b would send GBs.
    CHECK(sent <= 12'600'000);
    CHECK(sent >= 12'000'000);
    // With that much buffer, a loss is a datagram that never reached the client's socket, not a late read.
    CHECK(end["sum_received"]["lost_percent"].get<double>() <= 2.0);
    CHECK(server.log().find("udp download 1 stream: sent") != std::string::npos);
}

TEST_CASE(
    "an iperf3 UDP -R download at 200 Mbit/s: speedsrv's batches reach the client as separate "
    "datagrams, numbered and sized as iperf3's own",
    "[integration][iperf3][udp]") {
    if (!have_iperf3()) {
        return;
    }
    // speedsrv sends in GSO batches (net/iperf3_udp_sender.hpp); this client (3.12) has no GRO, so the kernel
    // splits them and the client's own receiver figures (end.sum_received, the stream's out_of_order) count
    // every datagram: a batch with a repeated sequence number shows as out of order, a skipped one as a
    // highest number above what speedsrv sent, a wrong length in the bytes.
    server_process server;
    const auto run = run_iperf3(server.port(), {"-u", "-R", "-b", "200M", "-l", "1400"});
    REQUIRE(run.process.exit_code == 0);
    REQUIRE_FALSE(run.document.contains("error"));
    const auto& end = run.document["end"];
    const auto logged = logged_result_bytes(log_with_sessions(server, 1));
    INFO(server.log() << "\nclient: " << end.dump());
    REQUIRE(logged.size() == 1);
    std::smatch sent_line;
    const std::string log = server.log();
    REQUIRE(std::regex_search(log, sent_line, std::regex("udp download 1 stream: sent ([0-9]+) datagrams")));
    const std::uint64_t sent_datagrams = std::stoull(sent_line[1].str());
    const auto& received = end["sum_received"];
    const std::uint64_t packets = received["packets"].get<std::uint64_t>();
    const std::uint64_t lost = received["lost_packets"].get<std::uint64_t>();
    CHECK(logged[0] == sent_datagrams * 1400);
    // The highest sequence number the client saw: never above what speedsrv sent (a skipped number would
    // be). Not equal: the client stops reading at its own end, and the last datagrams speedsrv sent in that
    // moment may stay unread (measured: 6 of 35,664 in 1 run of 5, 0 in the others).
    CHECK(packets <= sent_datagrams);
    REQUIRE(lost <= packets);
    CHECK(received["bytes"].get<std::uint64_t>() == (packets - lost) * 1400);
    REQUIRE(end["streams"].size() == 1);
    CHECK(end["streams"][0]["udp"]["out_of_order"].get<std::uint64_t>() == 0);
    // Enough datagrams for many batches: 2 s at 200 Mbit/s is 35,714; a loaded host sent 31,196 at worst
    // (measured; the pace itself is the -R test's above).
    CHECK(packets > 20'000);
    // Not asserted: lost == 0. A 3.12 client's 208 KiB receive buffer holds 8 ms of this rate; descheduled
    // longer on a loaded host it drops datagrams (measured at a load of 4 to 5 on 2 cores: 0 to 529 of 35,700
    // with speedsrv before batches, 0 to 3,345 after). Lost datagrams were sent and numbered, so every check
    // above holds with them.
}

TEST_CASE("an iperf3 UDP rate above the server's cap is refused with iperf3's own error",
          "[integration][iperf3][udp][iperf3-binary]") {
    if (!have_iperf3()) {
        return;
    }
    server_process server({"--max-bitrate", "10M"});
    const auto run = run_iperf3(server.port(), {"-u", "-b", "20M"});
    CHECK_THAT(refusal_of(run), Catch::Contains("larger than server limit"));
    // Within the cap, and -b 0 (-R) is sent at the cap.
    const auto within = run_iperf3(server.port(), {"-u", "-b", "5M"});
    CHECK(within.process.exit_code == 0);
    CHECK_FALSE(within.document.contains("error"));
    const auto unpaced = run_iperf3(server.port(), {"-u", "-R", "-b", "0", "-l", "1400"});
    CHECK(unpaced.process.exit_code == 0);
    REQUIRE_FALSE(unpaced.document.contains("error"));
    // 2 s at 10 Mbit/s is 2.5 MB; the pacer's bucket adds at most two datagrams, 10 kB is room for both.
    // Before 3.11 (kReceiverSums) a UDP test's sender figure is in end.sum.
    const auto& unpaced_end = unpaced.document["end"];
    const auto& sent = iperf3_at_least(kReceiverSums) ? unpaced_end["sum_sent"] : unpaced_end["sum"];
    CHECK(sent["bytes"].get<std::uint64_t>() <= 2'510'000);
}

namespace {

// speedsrv's log of an iperf3 -u --bidir session: the upload's receiver figures, then the datagrams its
// download sent.
struct logged_udp_bidir {
    std::uint64_t lost = 0;
    std::uint64_t packets = 0;
    std::uint64_t sent_packets = 0;
};

logged_udp_bidir logged_udp_bidir_of(const std::string& log) {
    static const std::regex line(
        "udp upload [^\n]*, lost ([0-9]+)/([0-9]+), jitter [0-9.]+ ms; udp download [^\n]*: sent ([0-9]+) "
        "datagrams");
    std::smatch logged;
    INFO(log);
    REQUIRE(std::regex_search(log, logged, line));
    return {std::stoull(logged[1].str()), std::stoull(logged[2].str()), std::stoull(logged[3].str())};
}

// iperf3 -u --bidir -l 1400 at `bitrate` per stream over `streams` streams for 2 s against a new speedsrv:
// the client's upload receiver figures and its download's sender figures are speedsrv's, exactly.
void check_udp_bidir(const std::string& bitrate, int streams) {
    server_process server;
    const auto end =
        run_bidir_logged(server, {"-u", "-b", bitrate, "-l", "1400", "-P", std::to_string(streams)});
    const auto logged = logged_udp_bidir_of(server.log());
    INFO(server.log() << "\nclient: " << end.dump());
    const auto& upload = end["sum_received"];
    CHECK(upload["packets"].get<std::uint64_t>() == logged.packets);
    CHECK(upload["lost_packets"].get<std::uint64_t>() == logged.lost);
    CHECK(end["sum_sent_bidir_reverse"]["packets"].get<std::uint64_t>() == logged.sent_packets);
    CHECK(upload["bytes"].get<std::uint64_t>() > 0);
    CHECK(upload["bytes"].get<std::uint64_t>() <= end["sum_sent"]["bytes"].get<std::uint64_t>());
    // The download at the pace asked for (iperf3's -b is per stream): 2 s at 50 Mbit/s in all is 12.5 MB; the
    // pacer's first burst and the moment between the client's timer and the server's add a few datagrams per
    // stream, a sender ignoring -b would send GBs.
    const std::uint64_t download_sent = end["sum_sent_bidir_reverse"]["bytes"].get<std::uint64_t>();
    CHECK(download_sent <= 12'600'000 + 5'000 * static_cast<std::uint64_t>(streams));
    CHECK(download_sent >= 12'000'000);
    CHECK(end["sum_received_bidir_reverse"]["bytes"].get<std::uint64_t>() > 0);
    // Each stream's role and the other end's figure: the client's sending streams first, then its receiving
    // ones.
    const auto& listed = end["streams"];
    REQUIRE(listed.size() == 2 * static_cast<std::size_t>(streams));
    for (std::size_t i = 0; i < listed.size(); ++i) {
        CHECK(listed[i]["udp"]["sender"].get<bool>() == (i < static_cast<std::size_t>(streams)));
        CHECK(listed[i]["udp"]["bytes"].get<std::uint64_t>() > 0);
    }
    const std::string plural = streams == 1 ? " stream" : " streams";
    CHECK(server.log().find("udp upload " + std::to_string(streams) + plural + ": received") !=
          std::string::npos);
    CHECK(server.log().find("udp download " + std::to_string(streams) + plural + ": sent") !=
          std::string::npos);
}

}  // namespace

TEST_CASE("an iperf3 UDP --bidir client runs both directions at once with speedsrv's figures for each",
          "[integration][iperf3][udp][iperf3-binary]") {
    if (!have_iperf3() || !skip_unless_iperf3_at_least(kReceiverSums, kNoReceiverSums)) {
        return;
    }
    SECTION("one stream each way") {
        check_udp_bidir("50M", 1);
    }
    SECTION("-P 2") {
        check_udp_bidir("25M", 2);
    }
}

TEST_CASE("speedcli --iperf3 --bidir --udp against speedsrv: each direction's figures are speedsrv's own",
          "[integration][iperf3][udp][bidir]") {
    server_process server;
    const auto run = run_client({"127.0.0.1", "-p", std::to_string(server.port()), "--iperf3", "--bidir",
                                 "--udp", "-P", "2", "-t", "2", "-b", "20M", "-J"});
    INFO(run.process.out << run.process.err);
    REQUIRE(run.process.exit_code == 0);
    const auto bytes = logged_bidir_bytes(server);
    const auto logged = logged_udp_bidir_of(server.log());
    const nlohmann::json& upload = run.json["upload"];
    const nlohmann::json& download = run.json["download"];
    // The upload's receiver figures and the download's sender figures are what speedsrv logged.
    CHECK(upload["bytes"].get<std::uint64_t>() == bytes.received);
    CHECK(upload["packets_sent"].get<std::uint64_t>() == logged.packets);
    CHECK(upload["lost_packets"].get<std::uint64_t>() == logged.lost);
    CHECK(download["sender"]["bytes"].get<std::uint64_t>() == bytes.sent);
    CHECK(download["sender"]["packets"].get<std::uint64_t>() == logged.sent_packets);
    // speedcli's own download window: datagrams received, never more than speedsrv sent.
    CHECK(download["packets_received"].get<std::uint64_t>() > 0);
    CHECK(download["packets_received"].get<std::uint64_t>() <= logged.sent_packets);
}

TEST_CASE("two iperf3 UDP clients from one address at once each get their own streams and figures",
          "[integration][iperf3][udp][iperf3-binary]") {
    if (!have_iperf3() || !skip_unless_iperf3_at_least(kReceiverSums, kNoReceiverSums)) {
        return;
    }
    server_process server;
    const std::uint16_t port = server.port();
    // Their connects carry nothing but the address (the robustness test "iperf3 UDP connects get a reply only
    // for a waiting iperf3 session's own address and streams" shows the order the server keeps between them).
    std::array<process_result, 2> runs;
    std::array<std::thread, 2> clients;
    for (std::size_t i = 0; i < clients.size(); ++i) {
        clients[i] = std::thread([&runs, i, port] {
            runs[i] = run_process({iperf3_binary(), "-c", "127.0.0.1", "-p", std::to_string(port), "-J", "-t",
                                   "2", "-u", "-b", "20M"},
                                  30s);
        });
    }
    for (auto& client : clients) {
        client.join();
    }
    const auto logged = logged_udp_uploads(log_with_sessions(server, 2));
    INFO(runs[0].out << runs[1].out << server.log());
    REQUIRE(logged.size() == 2);
    for (const auto& run : runs) {
        CHECK(run.exit_code == 0);
        const auto document = nlohmann::json::parse(run.out, nullptr, false);
        REQUIRE(document.is_object());
        REQUIRE_FALSE(document.contains("error"));
        const auto received = document["end"]["sum_received"]["bytes"].get<std::uint64_t>();
        CHECK((received == logged[0].bytes || received == logged[1].bytes));
        // Each one's own: 2 s at 20 Mbit/s is 5 MB, not two clients' 10 MB nor none.
        CHECK(received > 4'000'000);
        CHECK(received <= document["end"]["sum_sent"]["bytes"].get<std::uint64_t>());
    }
}

// ---- Options of newer iperf3 clients (parameters speedsrv ignores, as iperf3 ignores unknown ones) ----

TEST_CASE("iperf3 --json-stream (3.17 and later): its end event carries speedsrv's receiver figure",
          "[integration][iperf3][iperf3-binary]") {
    if (!have_iperf3() || !skip_unless_iperf3_at_least({3, 17, 0}, "--json-stream came with 3.17")) {
        return;
    }
    server_process server;
    const auto run = run_process(
        {iperf3_binary(), "-c", "127.0.0.1", "-p", std::to_string(server.port()), "--json-stream", "-t", "2"},
        30s);
    INFO(run.out << run.err);
    REQUIRE(run.exit_code == 0);
    // One JSON object a line; the last, event "end", carries what -J prints as its "end".
    nlohmann::json end;
    std::size_t from = 0;
    for (std::size_t to = run.out.find('\n'); to != std::string::npos;
         from = to + 1, to = run.out.find('\n', from)) {
        const auto line = nlohmann::json::parse(run.out.substr(from, to - from), nullptr, false);
        REQUIRE(line.is_object());
        if (line["event"] == "end") {
            end = line["data"];
        }
    }
    REQUIRE(end.is_object());
    const auto logged = logged_result_bytes(log_with_sessions(server, 1));
    REQUIRE(logged.size() == 1);
    CHECK(end["sum_received"]["bytes"].get<std::uint64_t>() == logged[0]);
    CHECK(logged[0] > 0);
}

TEST_CASE("iperf3 --skip-rx-copy (3.19 and later): an upload's receiver figure is speedsrv's, as without it",
          "[integration][iperf3][iperf3-binary]") {
    if (!have_iperf3() || !skip_unless_iperf3_at_least({3, 19, 0}, "--skip-rx-copy came with 3.19")) {
        return;
    }
    server_process server;
    const auto figures = figures_of(server, run_iperf3(server.port(), {"--skip-rx-copy"}));
    CHECK(figures.received == figures.logged);
    CHECK(figures.received > 0);
}

TEST_CASE("iperf3 -u --gsro (3.21 and later): datagrams the client sends by GSO are counted one by one",
          "[integration][iperf3][udp][iperf3-binary]") {
    if (!have_iperf3() || !skip_unless_iperf3_at_least({3, 21, 0}, "--gsro came with 3.21")) {
        return;
    }
    // -l 1400: GSO then hands the kernel buffers of many datagrams, which it cuts at 1400 bytes.
    const auto upload = udp_upload_matching_log({"-u", "-b", "50M", "-l", "1400", "--gsro"});
    // 2 s at 50 Mbit/s in 1400-byte datagrams: about 8900 of them, each counted (not one per GSO buffer).
    CHECK(upload.received["packets"].get<std::uint64_t>() > 8000);
}
