// UDP against ground truth: through netem-tun's seeded random loss, speedcli's lost_packets must be exactly
// the DATA datagrams netem-tun dropped, and its loss within 0.5 percentage points of the configured
// probability; and the UDP set-up must start every time on a lossy path whose first handshake datagrams are
// dropped.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "tests/netlab/lab_counters.hpp"
#include "tests/netlab/reference_tools.hpp"

using namespace speed::netlab;

namespace {

std::uint64_t u64(const nlohmann::json& value) {
    return value.get<std::uint64_t>();
}

// netem-tun's counters of UDP datagrams with `payload_bytes` of payload on one path (zero when none crossed).
struct udp_counts {
    std::uint64_t received = 0;
    std::uint64_t lost = 0;
};

udp_counts udp_datagrams(const nlohmann::json& statistics, const char* device, std::uint32_t payload_bytes) {
    const auto& lengths = netem_path(statistics, device)["udp_payload_bytes"];
    const std::string key = std::to_string(payload_bytes);
    if (!lengths.contains(key)) {
        return {};
    }
    return {u64(lengths[key]["received"]), u64(lengths[key]["lost"])};
}

// What crossed netem-tun between two snapshots.
udp_counts udp_datagrams_between(const nlohmann::json& before, const nlohmann::json& after,
                                 const char* device, std::uint32_t payload_bytes) {
    const udp_counts first = udp_datagrams(before, device, payload_bytes);
    const udp_counts last = udp_datagrams(after, device, payload_bytes);
    return {last.received - first.received, last.lost - first.lost};
}

std::uint64_t tcp_lost_between(const nlohmann::json& before, const nlohmann::json& after,
                               const char* device) {
    return u64(netem_path(after, device)["protocols"]["tcp"]["lost"]) -
           u64(netem_path(before, device)["protocols"]["tcp"]["lost"]);
}

// A lab whose link drops `percent` of the packets each way, drawn from `seed`.
lab_config random_loss(double percent, std::uint64_t seed) {
    lab_config config;
    config.upload.loss_percent = percent;
    config.download.loss_percent = percent;
    config.seed = seed;
    return config;
}

// packets_received + lost_packets == packets_sent, per direction and per stream, and the streams add up.
void check_accounting_identity(const nlohmann::json& direction) {
    INFO(direction.dump(2));
    CHECK(u64(direction["packets_received"]) + u64(direction["lost_packets"]) ==
          u64(direction["packets_sent"]));
    std::uint64_t sent = 0;
    std::uint64_t lost = 0;
    for (const auto& stream : direction["streams"]) {
        CHECK(u64(stream["packets_received"]) + u64(stream["lost_packets"]) == u64(stream["packets_sent"]));
        sent += u64(stream["packets_sent"]);
        lost += u64(stream["lost_packets"]);
    }
    CHECK(sent == u64(direction["packets_sent"]));
    CHECK(lost == u64(direction["lost_packets"]));
}

// DATA datagrams get a payload length nothing else on the path has: HELLO and HELLO_ACK are 36 bytes, PING
// and PONG 28 (the header alone), FEEDBACK 80, and TCP is counted apart. So netem-tun's counters for this
// length, per direction, are exactly the test's DATA datagrams.
constexpr std::uint32_t kDataBytes = 1200;

// `bidir`: both directions at once (speedcli --bidir), each in its own session: each direction's loss must
// still be exactly its own path's drops.
void check_loss_is_the_links(double loss_percent, bool bidir = false) {
    // How many datagrams 0.5 pp needs: the share netem-tun drops of n datagrams is binomial, with a standard
    // deviation of sqrt(p (1 - p) / n). At p = 5 % and n = 22,500 that is 0.145 pp, so 0.5 pp is 3.4 standard
    // deviations (a chance of 6 in 10,000 that the configured probability is missed by the draw alone);
    // at 1 % it is 0.066 pp, 7.5 deviations. 48 Mbit/s of 1200-byte datagrams is 5,000 a second: 4.5 s per
    // direction gives 22,500. Exact agreement with netem-tun's own drop count needs no such margin.
    constexpr double kBitsPerSecond = 48e6;
    constexpr double kSeconds = 4.0;
    constexpr double kOmitSeconds = 0.5;
    constexpr double kTolerancePoints = 0.5;
    lab link(random_loss(loss_percent, 11));
    auto& server = link.start_speedsrv();

    // The counter window is the whole speedcli run: the snapshot before it precedes the first datagram and
    // the one after it follows the last (speedcli has exited, its receiver has drained). Probes are off
    // (--pings 0, --loaded-ping-interval 0) so only the test's own traffic crosses the path.
    std::vector<std::string> args{"--udp",
                                  "--bitrate",
                                  "48M",
                                  "--length",
                                  std::to_string(kDataBytes),
                                  "--duration",
                                  std::to_string(kSeconds),
                                  "--omit",
                                  std::to_string(kOmitSeconds),
                                  "--interval",
                                  "0",
                                  "--pings",
                                  "0",
                                  "--loaded-ping-interval",
                                  "0"};
    if (bidir) {
        args.push_back("--bidir");
    }
    const auto before = link.netem_statistics();
    const auto speedcli = run_speedcli(link, server.port(), args);
    const auto after = link.netem_statistics();
    INFO(speedcli.process.out << speedcli.process.err << "\nspeedsrv's log:\n"
                              << server.log() << "\nnetem-tun: " << after.dump(2));
    REQUIRE(speedcli.process.exit_code == 0);
    if (bidir) {
        // Both directions ran at once (the last interval report of each placed its window).
        CHECK(speedcli.json["bidirectional"]["overlap_seconds"].get<double>() >= kSeconds - 0.1);
    }
    for (const auto& path : after["paths"]) {
        CHECK(path["overflowed"] == 0);  // netem-tun's only drops are the seeded ones
        CHECK(path["write_errors"] == 0);
    }

    for (const auto& [name, device] :
         {std::pair{"download", kDownloadTun}, std::pair{"upload", kUploadTun}}) {
        const auto& d = speedcli.json[name];
        check_accounting_identity(d);
        const udp_counts path = udp_datagrams_between(before, after, device, kDataBytes);
        const std::uint64_t sent = u64(d["packets_sent"]);
        const std::uint64_t lost = u64(d["lost_packets"]);
        const double reported_percent = d["lost_percent"].get<double>();
        const double applied_percent =
            100.0 * static_cast<double>(path.lost) / static_cast<double>(path.received);
        std::printf(
            "netlab: UDP%s %s, %.0f %% loss configured: speedcli sent %llu, lost %llu (%.3f %%); netem-tun "
            "saw "
            "%llu DATA datagrams and dropped %llu (%.3f %%) (and %llu TCP segments); goodput %.2f Mbit/s\n",
            bidir ? " --bidir" : "", name, loss_percent, static_cast<unsigned long long>(sent),
            static_cast<unsigned long long>(lost), reported_percent,
            static_cast<unsigned long long>(path.received), static_cast<unsigned long long>(path.lost),
            applied_percent, static_cast<unsigned long long>(tcp_lost_between(before, after, device)),
            d["bits_per_second"].get<double>() / 1e6);
        CHECK(sent >= 20'000);  // the precision above rests on it
        // Every DATA datagram the sender's kernel took reached netem-tun, and the receiver missed exactly
        // those netem-tun dropped: the loss speedcli reports is the link's, to the datagram.
        CHECK(path.received == sent);
        CHECK(lost == path.lost);
        // So no receiving socket dropped any (speedcli's own count for the download, speedsrv's for the
        // upload).
        CHECK(d["receive_buffer_overflows"] == 0);
        CHECK(reported_percent == Approx(loss_percent).margin(kTolerancePoints));
        CHECK(reported_percent == Approx(applied_percent).margin(1e-9));
        CHECK(u64(d["duplicates"]) == 0);
        // The goodput is what the link delivered of the requested rate.
        CHECK(d["bits_per_second"].get<double>() ==
              Approx(kBitsPerSecond * (1.0 - loss_percent / 100.0)).epsilon(0.03));
    }
}

}  // namespace

TEST_CASE("UDP loss through 1 % random loss is exactly the datagrams the link dropped",
          "[netlab][accuracy]") {
    check_loss_is_the_links(1.0);
}

TEST_CASE("UDP loss through 5 % random loss is exactly the datagrams the link dropped",
          "[netlab][accuracy]") {
    check_loss_is_the_links(5.0);
}

TEST_CASE("UDP loss with --bidir through 1 % random loss both ways is each path's drops exactly",
          "[netlab][accuracy][bidir]") {
    check_loss_is_the_links(1.0, true);
}

TEST_CASE("speedcli --iperf3 --udp: loss through 1 % random loss is the datagrams the link dropped",
          "[netlab][accuracy][iperf3]") {
    skip_unless_installed("iperf3", "iperf3");
    // An iperf3 server (Debian's 3.12) in the lab; speedcli tests it both ways over UDP at 48 Mbit/s in
    // 1200-byte datagrams, 20,000 a direction (the binomial precision of check_loss_is_the_links()), no
    // warm-up so that iperf3's counts cover the whole test.
    constexpr double kLossPercent = 1.0;
    constexpr double kTolerancePoints = 0.5;
    lab link(random_loss(kLossPercent, 13));
    link.start_in_server({"iperf3", "-s", "--forceflush", "-B", kServerAddress, "-p", kIperf3Port},
                         "Server listening");
    const lab_counter_window counters(link);
    const auto before = link.netem_statistics();
    const auto speedcli = run_speedcli(link, 5201,
                                       {"--iperf3", "--udp", "--bitrate", "48M", "--length",
                                        std::to_string(kDataBytes), "--duration", "4", "--interval", "0"});
    const auto after = link.netem_statistics();
    INFO(speedcli.process.out << speedcli.process.err << "\nnetem-tun: " << after.dump(2));
    REQUIRE(speedcli.process.exit_code == 0);
    // The receiving host's own drops (a full socket buffer) are losses too: iperf3 3.12's single-threaded
    // receiver keeps its socket's default buffer (208 KiB, 35 ms at this rate), which a busy machine can
    // overflow (speedcli's receiver asks for a larger one).
    const lab_counters during = counters.during();
    for (const auto& [name, device, host_drops] :
         {std::tuple{"download", kDownloadTun, during.client_udp_buffer_drops},
          std::tuple{"upload", kUploadTun, during.server_udp_buffer_drops}}) {
        const auto& d = speedcli.json[name];
        INFO(name << ": " << d.dump(2));
        check_accounting_identity(d);
        const udp_counts path = udp_datagrams_between(before, after, device, kDataBytes);
        const std::uint64_t spanned =
            u64(d["packets_sent"]);  // the sequence numbers the receiver's count spans
        const std::uint64_t lost = u64(d["lost_packets"]);
        const std::uint64_t dropped = path.lost + host_drops;
        std::printf(
            "netlab: iperf3 UDP %s, %.0f %% loss configured: the receiver's count spans %llu datagrams, "
            "lost %llu (%.3f %%); netem-tun saw %llu and dropped %llu, the receiving host's sockets %llu\n",
            name, kLossPercent, static_cast<unsigned long long>(spanned),
            static_cast<unsigned long long>(lost), d["lost_percent"].get<double>(),
            static_cast<unsigned long long>(path.received), static_cast<unsigned long long>(path.lost),
            static_cast<unsigned long long>(host_drops));
        // 48 Mbit/s of 1200-byte datagrams for 4 s is 20,000; the receiver's count ends a few before the
        // last.
        CHECK(spanned >= 19'900);
        // Every datagram the sender counted crossed netem-tun.
        CHECK(u64(d["sender"]["packets"]) == path.received);
        // iperf3's receiver counts the gaps below the highest sequence number it read: the download's until
        // speedcli's window closed, the upload's until the server read TEST_END. Every loss it counts is a
        // datagram netem-tun or the receiving host dropped, and their others are among the datagrams after
        // that number.
        REQUIRE(lost <= dropped);
        CHECK(dropped - lost <= path.received - spanned);
        // speedcli's own sockets' drops (the download's) are among the namespace's (RcvbufErrors counts
        // drops after the last datagram read too, which SO_RXQ_OVFL cannot report).
        if (d["measured_by"] == "client") {
            CHECK(u64(d["receive_buffer_overflows"]) <= host_drops);
        }
        // The share is of the datagrams the count spans, as iperf3's; with no drops on the receiving host it
        // is the link's probability (a busy machine overflowed the iperf3 server's socket in some runs: 458
        // datagrams once, counted as lost and matched by RcvbufErrors to the datagram).
        CHECK(d["lost_percent"].get<double>() ==
              Approx(100.0 * static_cast<double>(lost) / static_cast<double>(spanned)).epsilon(1e-9));
        if (host_drops == 0) {
            CHECK(d["lost_percent"].get<double>() == Approx(kLossPercent).margin(kTolerancePoints));
        }
    }
}

namespace {

// nftables in the router: of the UDP datagrams with a 36-byte payload (UDP length 44: HELLO and HELLO_ACK)
// that arrive from each side, the first two are dropped. Loaded again before every run, which resets the
// quotas, so that every run starts with its first handshake datagrams lost both ways. A quota counts bytes:
// two datagrams of 64 bytes (20 IPv4 + 8 UDP + 36).
std::string handshake_dropper() {
    std::string rules =
        "table inet speedlab_handshake\n"
        "delete table inet speedlab_handshake\n"
        "table inet speedlab_handshake {\n"
        "  chain forward {\n"
        "    type filter hook forward priority 0; policy accept;\n";
    for (const char* side : {kRouterToClient, kRouterToServer}) {
        rules +=
            std::string("    iifname \"") + side + "\" udp length 44 quota until 128 bytes counter drop\n";
    }
    return rules + "  }\n}\n";
}

// The datagrams each of handshake_dropper()'s rules dropped, in rule order.
std::vector<std::uint64_t> handshake_drops(const lab& link) {
    const auto listing = link.run_in_router({"nft", "-j", "list", "table", "inet", "speedlab_handshake"},
                                            std::chrono::seconds(10));
    INFO(listing.out << listing.err);
    REQUIRE(listing.exit_code == 0);
    const auto ruleset = nlohmann::json::parse(listing.out);  // named: the loop must not outlive it
    std::vector<std::uint64_t> drops;
    for (const auto& object : ruleset["nftables"]) {
        if (!object.contains("rule")) {
            continue;
        }
        for (const auto& expression : object["rule"]["expr"]) {
            if (expression.contains("counter")) {
                drops.push_back(u64(expression["counter"]["packets"]));
            }
        }
    }
    return drops;
}

}  // namespace

TEST_CASE("UDP starts every time through 2 % loss when its first handshake datagrams are lost",
          "[netlab][accuracy]") {
    skip_unless_installed("nft", "nftables");
    lab_config config;
    config.upload.loss_percent = 2.0;
    config.download.loss_percent = 2.0;
    config.upload.delay_ms = 5.0;
    config.download.delay_ms = 5.0;
    config.seed = 3;
    lab link(config);
    auto& server = link.start_speedsrv();

    // The dropped datagrams hit a different handshake in turn: the UDP echo's (idle probes), the download
    // flows', the upload flows'. Each run then also faces netem-tun's random 2 % on everything, the TCP
    // control connection included.
    struct variant {
        const char* handshake;  // the one whose first datagrams the rules drop
        std::vector<std::string> args;
    };
    const std::vector<variant> variants{
        {"the UDP echo's", {"--pings", "10", "--ping-interval", "0.01"}},
        {"the download flows'", {"--pings", "0"}},
        {"the upload flows'", {"--pings", "0", "--no-download"}},
    };
    constexpr int kRuns = 6;
    constexpr std::uint32_t kDatagramBytes = 1472;  // the default --length over IPv4
    for (int run = 0; run < kRuns; ++run) {
        const auto& [handshake, variant_args] = variants[static_cast<std::size_t>(run) % variants.size()];
        link.load_router_nftables(handshake_dropper());
        std::vector<std::string> args{"--udp",      "--bitrate", "20M",        "--streams", "2",
                                      "--duration", "1",         "--interval", "0"};
        args.insert(args.end(), variant_args.begin(), variant_args.end());
        const auto before = link.netem_statistics();
        const auto speedcli = run_speedcli(link, server.port(), args);
        const auto after = link.netem_statistics();
        const auto drops = handshake_drops(link);
        INFO("run " << run << ": " << speedcli.process.out << speedcli.process.err << "\nspeedsrv's log:\n"
                    << server.log());
        REQUIRE(speedcli.process.exit_code == 0);
        // The first two handshake datagrams each way were really lost, so every run needed retransmissions.
        CHECK(drops == std::vector<std::uint64_t>{2, 2});

        const auto& json = speedcli.json;
        std::string figures;
        for (const auto& [name, device] :
             {std::pair{"download", kDownloadTun}, std::pair{"upload", kUploadTun}}) {
            if (json[name].is_null()) {
                continue;
            }
            const auto& d = json[name];
            check_accounting_identity(d);
            const udp_counts path = udp_datagrams_between(before, after, device, kDatagramBytes);
            CHECK(path.received == u64(d["packets_sent"]));
            CHECK(path.lost == u64(d["lost_packets"]));
            figures += std::string(" ") + name + " lost " + std::to_string(u64(d["lost_packets"])) + " of " +
                       std::to_string(u64(d["packets_sent"])) + " (netem-tun dropped " +
                       std::to_string(path.lost) + ");";
        }
        if (const auto& idle = json["latency"]["idle"]; !idle.is_null()) {
            CHECK(u64(idle["sent"]) == 10);
            CHECK(u64(idle["samples"]) + u64(idle["lost"]) == 10);
            figures += " probes answered " + std::to_string(u64(idle["samples"])) + " of 10;";
        }
        std::printf(
            "netlab: UDP set-up run %d: %s handshake started after %llu + %llu dropped datagrams;%s\n", run,
            handshake, static_cast<unsigned long long>(drops.at(0)),
            static_cast<unsigned long long>(drops.at(1)), figures.c_str());
    }
}

TEST_CASE("speedcli --iperf3 --udp on a 100 Mbit/s link: both directions within 5 % of iperf3's own client",
          "[netlab][accuracy][iperf3]") {
    skip_unless_installed("iperf3", "iperf3");
    // 90 Mbit/s of 1200-byte datagrams is 93.2 Mbit/s of Ethernet frames (42 bytes of headers each), below
    // the link's 100: neither tool loses anything to tbf, and each receiver's figure is the paced rate.
    constexpr std::uint64_t kLinkBitsPerSecond = 100'000'000;
    const std::vector<std::string> rate{"-b", "90M", "-l", std::to_string(kDataBytes)};
    lab_config config;
    config.upload.rate_bits_per_second = kLinkBitsPerSecond;
    config.download.rate_bits_per_second = kLinkBitsPerSecond;
    lab link(config);
    // iperf3's own client first (download, then upload), each repeated once when it falls below 95 % of the
    // paced rate: the reference must show that the link carried the rate before it can judge speedcli.
    constexpr double kPacedBitsPerSecond = 90e6;
    constexpr double kTolerance = 0.05;  // the issue's bound; measured apart by 0.001-0.2 % (docs/netlab.md)
    std::vector<std::string> iperf3_args{"-u"};
    iperf3_args.insert(iperf3_args.end(), rate.begin(), rate.end());
    const auto reference = [&](transfer direction, const char* what) {
        return measure_repeating_once(
            link, what, [&] { return run_iperf3(link, direction, 4, 0, 1, iperf3_args); },
            [](const iperf3_result& run, const lab_counters&) {
                return run.receiver_bits_per_second < (1.0 - kTolerance) * kPacedBitsPerSecond
                           ? "read " + std::to_string(run.receiver_bits_per_second / 1e6) + " Mbit/s"
                           : std::string();
            });
    };
    const auto iperf3_download = reference(transfer::download, "iperf3 -u -R");
    const auto iperf3_upload = reference(transfer::upload, "iperf3 -u");
    const double reference_download = iperf3_download.result.receiver_bits_per_second;
    const double reference_upload = iperf3_upload.result.receiver_bits_per_second;

    // Then speedcli against a server of its own (port 5202: run_iperf3's one-off servers take 5201), repeated
    // once when a direction is more than 5 % from the reference for a reason outside speedcli. The run's
    // counters say where a shortfall's datagrams went: the download's (an iperf3 server's datagrams) to the
    // queue towards the client when that sender fell behind and burst, or to speedcli's socket when its
    // receiver fell behind (once, under a host stealing 4-8 % of the CPU, speedcli read 85.27 against 89.99
    // Mbit/s, 1,645 datagrams lost, and nothing said where).
    std::vector<std::string> args{"--iperf3", "--udp", "--duration", "4", "--interval", "0"};
    args.insert(args.end(), rate.begin(), rate.end());
    const auto speedcli_run = measure_repeating_once(
        link, "speedcli --iperf3 --udp",
        [&] {
            auto& server = link.start_in_server(
                {"iperf3", "-s", "--forceflush", "-B", kServerAddress, "-p", "5202"}, "Server listening");
            auto run = run_speedcli(link, 5202, args);
            server.stop();
            return run;
        },
        [&](const speed::testing::client_run& run, const lab_counters& during) {
            std::string shortfall;
            // speedcli's socket is the client namespace's only UDP receiver: drops there are speedcli's own
            // receiver falling behind, which the test must not repeat away.
            if (run.process.exit_code != 0 || during.client_udp_buffer_drops > 0) {
                return shortfall;
            }
            for (const auto& [name, figure] :
                 {std::pair{"download", reference_download}, std::pair{"upload", reference_upload}}) {
                const double goodput = run.json[name]["bits_per_second"].get<double>();
                if (std::abs(goodput - figure) > kTolerance * figure) {
                    shortfall += std::string(name) + " " + std::to_string(goodput / 1e6) + " Mbit/s, " +
                                 std::to_string(run.json[name]["lost_packets"].get<std::uint64_t>()) +
                                 " datagrams lost; ";
                }
            }
            return shortfall;
        });
    const auto& speedcli = speedcli_run.result;
    INFO(speedcli.process.out << speedcli.process.err);
    REQUIRE(speedcli.process.exit_code == 0);
    const double download = speedcli.json["download"]["bits_per_second"].get<double>();
    const double upload = speedcli.json["upload"]["bits_per_second"].get<double>();
    std::printf(
        "netlab: iperf3 UDP at 90 Mbit/s on a 100 Mbit/s link: download speedcli %.3f iperf3 %.3f; upload "
        "speedcli %.3f iperf3 %.3f Mbit/s; speedcli's download lost %llu datagrams, the client's receive "
        "buffers dropped %llu in it and %llu in iperf3's\n",
        download / 1e6, reference_download / 1e6, upload / 1e6, reference_upload / 1e6,
        static_cast<unsigned long long>(speedcli.json["download"]["lost_packets"].get<std::uint64_t>()),
        static_cast<unsigned long long>(speedcli_run.during.client_udp_buffer_drops),
        static_cast<unsigned long long>(iperf3_download.during.client_udp_buffer_drops));
    CHECK(download == Approx(reference_download).epsilon(kTolerance));
    CHECK(upload == Approx(reference_upload).epsilon(kTolerance));
    // What speedcli reports its sockets dropped is among what the namespace's counter saw.
    CHECK(speedcli.json["download"]["receive_buffer_overflows"].get<std::uint64_t>() <=
          speedcli_run.during.client_udp_buffer_drops);
}
