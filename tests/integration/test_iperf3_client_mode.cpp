// speedcli --iperf3 against a real iperf3 server (`iperf3 -s`; which iperf3: tests/support/iperf3.hpp): the
// download measured by speedcli's own receiver, the upload figure the iperf3 server's own receiver count
// (ground truth: its -J report), busy and silent servers. Skipped, with the reason, without iperf3.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <nlohmann/json.hpp>
#include <thread>

#include "common/iperf3_protocol.hpp"
#include "tests/integration/client_json.hpp"
#include "tests/integration/iperf3_server.hpp"

using namespace speed::testing;
using namespace std::chrono_literals;
using nlohmann::json;

namespace {

// What `iperf3 -s -1 -J` printed about the one test it ran, once it exited.
json one_test_report(iperf3_server& server) {
    REQUIRE(server.process.wait(20s) == 0);
    return json::parse(server.process.out());
}

// speedcli with `args` (after HOST -p PORT --iperf3) against `iperf3 -s -1 -J`, which must exit 0; the
// server's report of its one test in `server`.
struct one_test_run {
    client_run run;
    json server;
};

// iperf3 3.11 added the server's -J members these tests compare speedcli's figures with: a UDP test's
// end.sum_sent and sum_received (before, end.sum) and --bidir's end.sum_*_bidir_reverse and each interval's
// sum_bidir_reverse.
bool have_iperf3_with_receiver_sums() {
    return have_iperf3() &&
           skip_unless_iperf3_at_least({3, 11, 0},
                                       "before 3.11 its -J has no sums of a UDP test's two ends "
                                       "(end.sum_sent, sum_received) nor of --bidir's reverse direction");
}

one_test_run run_one_test(const std::vector<std::string>& args) {
    iperf3_server iperf3({"-1", "-J"});
    std::vector<std::string> argv{"127.0.0.1", "-p", std::to_string(iperf3.port), "--iperf3"};
    argv.insert(argv.end(), args.begin(), args.end());
    one_test_run out{run_client(argv), nullptr};
    INFO(out.run.process.out << out.run.process.err);
    REQUIRE(out.run.process.exit_code == 0);
    out.server = one_test_report(iperf3);
    return out;
}

// An iperf3 --bidir test ran both ways at once. By the server's own clock: each of its whole intervals saw
// bytes in both directions. The server ends with a stub interval of a few ms after TEST_END (seen: 2.8 ms, in
// which its paced sender wrote nothing while the upload's last bytes arrived): only intervals of at least
// half a second count. And by speedcli's: the two windows overlap for most of their length (75 %, the bound
// of the speedsrv --bidir test; loopback runs read 2.000 of 2 s). One test starts both: no start skew.
void check_both_at_once(const json& server, const json& client) {
    REQUIRE(server["intervals"].size() >= 2);
    for (const auto& interval : server["intervals"]) {
        if (interval["sum"]["seconds"].get<double>() < 0.5) {
            continue;
        }
        CHECK(interval["sum"]["bytes"].get<std::uint64_t>() > 0);
        CHECK(interval["sum_bidir_reverse"]["bytes"].get<std::uint64_t>() > 0);
    }
    const json& both = client["bidirectional"];
    REQUIRE(both.is_object());
    CHECK(both["start_skew_seconds"].is_null());
    CHECK(both["overlap_seconds"].get<double>() > 0.75 * client["download"]["seconds"].get<double>());
}

// An iperf3 server by hand on a loopback port, TCP and UDP, that takes a UDP test up to CREATE_STREAMS and
// then does only what the test asks: the UDP port silent (no reply to the connect), or the connect answered
// and the test started without a datagram ever sent.
class scripted_iperf3_server {
  public:
    enum class udp_behaviour { silent, replies_then_no_data };

    explicit scripted_iperf3_server(udp_behaviour behaviour) : behaviour_(behaviour) {
        sockaddr_in address{};
        address.sin_family = AF_INET;
        address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        listener_ = ::socket(AF_INET, SOCK_STREAM, 0);
        REQUIRE(listener_ >= 0);
        REQUIRE(::bind(listener_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
        REQUIRE(::listen(listener_, 4) == 0);
        socklen_t length = sizeof address;
        REQUIRE(::getsockname(listener_, reinterpret_cast<sockaddr*>(&address), &length) == 0);
        port = ntohs(address.sin_port);
        udp_ = ::socket(AF_INET, SOCK_DGRAM, 0);
        REQUIRE(udp_ >= 0);
        REQUIRE(::bind(udp_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
        const timeval wait{0, 200'000};  // the thread looks at `done_` this often
        ::setsockopt(udp_, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
        ::setsockopt(listener_, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
        thread_ = std::thread([this] { serve(); });
    }
    ~scripted_iperf3_server() {
        done_ = true;
        thread_.join();
        ::close(listener_);
        ::close(udp_);
    }
    scripted_iperf3_server(const scripted_iperf3_server&) = delete;
    scripted_iperf3_server& operator=(const scripted_iperf3_server&) = delete;

    std::uint16_t port = 0;

  private:
    bool read_exactly(int fd, std::uint8_t* out, std::size_t size) {
        for (std::size_t got = 0; got < size && !done_;) {
            const ssize_t n = ::recv(fd, out + got, size - got, 0);
            if (n == 0) {
                return false;
            }
            got += n > 0 ? static_cast<std::size_t>(n) : 0;
        }
        return !done_;
    }
    static void send_state(int fd, speed::iperf3::state state) {
        const std::uint8_t byte = speed::iperf3::byte_of(state);
        ::send(fd, &byte, 1, MSG_NOSIGNAL);
    }

    void serve() {
        int control = -1;
        while (control < 0 && !done_) {
            control = ::accept(listener_, nullptr, nullptr);
        }
        if (control < 0) {
            return;
        }
        const timeval wait{0, 200'000};
        ::setsockopt(control, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
        std::array<std::uint8_t, 4096> buffer{};
        // The cookie, then the parameters (a 4-byte length, then JSON), then CREATE_STREAMS.
        if (read_exactly(control, buffer.data(), speed::iperf3::kCookieSize)) {
            send_state(control, speed::iperf3::state::param_exchange);
            std::array<std::uint8_t, 4> length{};
            if (read_exactly(control, length.data(), length.size())) {
                const std::size_t size = std::min<std::size_t>(
                    buffer.size(), (std::size_t{length[2]} << 8) | std::size_t{length[3]});
                if (read_exactly(control, buffer.data(), size)) {
                    send_state(control, speed::iperf3::state::create_streams);
                    serve_udp(control);
                }
            }
        }
        while (!done_ && ::recv(control, buffer.data(), buffer.size(), 0) != 0) {
        }
        ::close(control);
    }

    void serve_udp(int control) {
        sockaddr_in from{};
        socklen_t from_length = sizeof from;
        std::array<std::uint8_t, 64> datagram{};
        ssize_t n = -1;
        while (n < 0 && !done_) {
            n = ::recvfrom(udp_, datagram.data(), datagram.size(), 0, reinterpret_cast<sockaddr*>(&from),
                           &from_length);
        }
        if (n < 0 || behaviour_ == udp_behaviour::silent) {
            return;
        }
        ::sendto(udp_, speed::iperf3::kUdpConnectReply.data(), speed::iperf3::kUdpConnectReply.size(), 0,
                 reinterpret_cast<sockaddr*>(&from), from_length);
        send_state(control, speed::iperf3::state::test_start);
        send_state(control, speed::iperf3::state::test_running);
    }

    udp_behaviour behaviour_;
    int listener_ = -1;
    int udp_ = -1;
    std::atomic<bool> done_{false};
    std::thread thread_;
};

}  // namespace

TEST_CASE("speedcli --iperf3: download and upload against an iperf3 server",
          "[integration][iperf3][iperf3-binary]") {
    if (!have_iperf3()) {
        return;
    }
    iperf3_server iperf3;
    const auto run = run_client(
        {"127.0.0.1", "-p", std::to_string(iperf3.port), "--iperf3", "-t", "2", "-b", "200M", "-J"});
    INFO(run.process.out << run.process.err);
    REQUIRE(run.process.exit_code == 0);
    const json& j = run.json;
    CHECK(j["server"]["software"] == "iperf3");
    CHECK(j["error"].is_null());
    // No echo on an iperf3 server: no idle latency, and the reason instead of a figure.
    CHECK(j["latency"]["idle"].is_null());
    CHECK(j["latency"]["idle_not_measured"] == "iperf3 servers have no echo");
    CHECK(j["download"]["measured_by"] == "client");
    CHECK(j["upload"]["measured_by"] == "server");
    for (const char* direction : {"download", "upload"}) {
        INFO(direction);
        CHECK(j[direction]["bytes"].get<std::uint64_t>() > 0);
        CHECK(j[direction]["seconds"].get<double>() > 0.0);
    }
    // The download's window is speedcli's own, binned per -i like a speedsrv test: two 1-s intervals.
    CHECK(j["download"]["intervals"].size() == 2);
    // The upload's loaded latency: the kernel's RTT of its data connections.
    CHECK(j["upload"]["latency"]["in_band"]["samples"].get<int>() > 0);
}

TEST_CASE("speedcli --iperf3: the upload's bytes are the iperf3 server's own received bytes",
          "[integration][iperf3][iperf3-binary]") {
    if (!have_iperf3()) {
        return;
    }
    const auto [run, server] = run_one_test({"--no-download", "-P", "2", "-t", "2", "-b", "200M", "-J"});
    INFO(run.process.out << run.process.err << server.dump());
    const json& received = server["end"]["sum_received"];
    const json& upload = run.json["upload"];
    CHECK(upload["bytes"].get<std::uint64_t>() == received["bytes"].get<std::uint64_t>());
    REQUIRE(upload["streams"].size() == 2);
    CHECK(upload["streams"][0]["bytes"].get<std::uint64_t>() +
              upload["streams"][1]["bytes"].get<std::uint64_t>() ==
          received["bytes"].get<std::uint64_t>());
    // The same span as the server's, from its results' end_time - start_time: both come from one timeval, so
    // only the rounding of the JSON numbers differs (1 us in the runs seen; a millisecond is far above it).
    CHECK(upload["seconds"].get<double>() == Approx(received["seconds"].get<double>()).margin(0.001));
}

TEST_CASE("speedcli --iperf3 -P 2: the download's streams, and the server's own sent bytes",
          "[integration][iperf3][iperf3-binary]") {
    if (!have_iperf3()) {
        return;
    }
    const auto [run, server] = run_one_test({"--no-upload", "-P", "2", "-t", "2", "-b", "200M", "-J"});
    INFO(run.process.out << run.process.err << server.dump());
    const json& download = run.json["download"];
    REQUIRE(download["streams"].size() == 2);
    for (const auto& stream : download["streams"]) {
        CHECK(stream["bytes"].get<std::uint64_t>() > 0);
    }
    // The sender's figure is the server's own count, as its report gives it.
    CHECK(download["sender"]["bytes"].get<std::uint64_t>() ==
          server["end"]["sum_sent"]["bytes"].get<std::uint64_t>());
    // speedcli's window ends before the server stops sending: it cannot have received more than was sent.
    CHECK(download["bytes"].get<std::uint64_t>() <= download["sender"]["bytes"].get<std::uint64_t>());
}

TEST_CASE(
    "speedcli --iperf3 --bidir -P 2: one iperf3 test both ways, each direction measured by its receiver",
    "[integration][iperf3][bidir][iperf3-binary]") {
    if (!have_iperf3_with_receiver_sums()) {
        return;
    }
    const auto [run, server] = run_one_test({"--bidir", "-P", "2", "-t", "2", "-b", "200M", "-J"});
    INFO(run.process.out << run.process.err << server.dump());
    const json& download = run.json["download"];
    const json& upload = run.json["upload"];
    CHECK(run.json["parameters"]["bidirectional"] == true);
    REQUIRE(download["streams"].size() == 2);
    REQUIRE(upload["streams"].size() == 2);
    // The server's streams in the order they connected: its two receiving ones (speedcli's upload), then its
    // two sending ones (speedcli's download), as for iperf3's own --bidir client.
    const json& streams = server["end"]["streams"];
    REQUIRE(streams.size() == 4);
    for (std::size_t i = 0; i < 2; ++i) {
        INFO("stream " << i);
        CHECK(streams[i]["receiver"]["sender"] == false);
        CHECK(streams[i + 2]["sender"]["sender"] == true);
        CHECK(upload["streams"][i]["bytes"].get<std::uint64_t>() ==
              streams[i]["receiver"]["bytes"].get<std::uint64_t>());
        CHECK(download["streams"][i]["bytes"].get<std::uint64_t>() > 0);
    }
    // The upload's figure is the server's own receiver count; the download's speedcli's, never above what the
    // server says it sent (speedcli's window closes before TEST_END stops the server's sending).
    const std::uint64_t server_received = server["end"]["sum_received"]["bytes"].get<std::uint64_t>();
    const std::uint64_t server_sent = server["end"]["sum_sent_bidir_reverse"]["bytes"].get<std::uint64_t>();
    CHECK(upload["bytes"].get<std::uint64_t>() == server_received);
    CHECK(download["sender"]["bytes"].get<std::uint64_t>() == server_sent);
    CHECK(download["bytes"].get<std::uint64_t>() > 0);
    CHECK(download["bytes"].get<std::uint64_t>() <= server_sent);
    check_both_at_once(server, run.json);
    const json& both = run.json["bidirectional"];
    // The latency under both loads: the upload's connections' kernel RTT (their ACKs cross the download).
    CHECK(upload["latency"]["in_band"]["samples"].get<int>() > 0);
    CHECK(both["latency"]["in_band"]["samples"] == upload["latency"]["in_band"]["samples"]);
}

TEST_CASE("speedcli --iperf3 meets a busy iperf3 server: exit 4 with 'busy'",
          "[integration][iperf3][iperf3-binary]") {
    if (!have_iperf3()) {
        return;
    }
    iperf3_server iperf3;
    const busy_iperf3_client busy(iperf3);
    const auto run =
        run_client({"127.0.0.1", "-p", std::to_string(iperf3.port), "--iperf3", "-t", "1", "-J"});
    INFO(run.process.out << run.process.err);
    CHECK(run.process.exit_code == 4);
    CHECK_THAT(run.json["error"].get<std::string>(), Catch::Contains("busy"));
}

TEST_CASE("speedcli --iperf3 against a port that accepts and never answers: exit 3",
          "[integration][iperf3]") {
    // A listening socket nobody accepts from: the kernel completes the handshake, nothing is ever sent.
    const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
    REQUIRE(listener >= 0);
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(listener, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(::listen(listener, 4) == 0);
    socklen_t length = sizeof address;
    REQUIRE(::getsockname(listener, reinterpret_cast<sockaddr*>(&address), &length) == 0);
    const auto run = run_client({"127.0.0.1", "-p", std::to_string(ntohs(address.sin_port)), "--iperf3", "-t",
                                 "1", "--connect-timeout", "1", "-J"},
                                30s);
    ::close(listener);
    INFO(run.process.out << run.process.err);
    CHECK(run.process.exit_code == 3);
    CHECK_THAT(run.json["error"].get<std::string>(),
               Catch::Contains("no iperf3 server answered") && Catch::Contains("within 1 s"));
}

// ---- UDP (--iperf3 --udp): iperf3's own datagrams, client/iperf3_udp_streams.hpp ----

TEST_CASE("speedcli --iperf3 --udp: the download measured by speedcli, never more than the server sent",
          "[integration][iperf3][udp][iperf3-binary]") {
    if (!have_iperf3_with_receiver_sums()) {
        return;
    }
    const auto [run, server] = run_one_test({"--udp", "--no-upload", "-t", "2", "-b", "50M", "-J"});
    INFO(run.process.out << run.process.err << server.dump());
    const json& download = run.json["download"];
    CHECK(run.json["protocol"] == "udp");
    CHECK(download["measured_by"] == "client");
    CHECK(download["datagram_bytes"] == 1472);
    CHECK(download["bytes"].get<std::uint64_t>() > 0);
    // Loopback at 50 Mbit/s drops nothing: every sequence number in the window arrived, and speedcli's
    // socket (counted: not null) dropped none.
    CHECK(download["lost_packets"] == 0);
    CHECK(download["receive_buffer_overflows"] == 0);
    CHECK(download["packets_received"] == download["packets_sent"]);
    CHECK(download["packets_sent"].get<std::uint64_t>() > 0);
    // Each datagram is 1472 bytes: the window's bytes are its datagrams'.
    CHECK(download["bytes"].get<std::uint64_t>() == download["packets_received"].get<std::uint64_t>() * 1472);
    // iperf3 has no IPDV: null, not 0.
    CHECK(download["ipdv_ms"]["p50"].is_null());
    // speedcli's window ends before the server stops sending: it cannot have received more than was sent;
    // the sender's figure is the server's own count, as its report gives it.
    const std::uint64_t server_sent = server["end"]["sum_sent"]["bytes"].get<std::uint64_t>();
    CHECK(download["sender"]["bytes"].get<std::uint64_t>() == server_sent);
    CHECK(download["bytes"].get<std::uint64_t>() <= server_sent);
    // Binned per -i like a speedsrv UDP download: two 1-s intervals with their datagrams.
    REQUIRE(download["intervals"].size() == 2);
    std::uint64_t interval_packets = 0;
    for (const auto& interval : download["intervals"]) {
        CHECK(interval["packets"].get<std::uint64_t>() > 0);
        interval_packets += interval["packets"].get<std::uint64_t>();
    }
    CHECK(interval_packets == download["packets_received"].get<std::uint64_t>());
}

TEST_CASE("speedcli --iperf3 --udp: the upload's bytes, datagrams and loss are the iperf3 server's own",
          "[integration][iperf3][udp][iperf3-binary]") {
    if (!have_iperf3_with_receiver_sums()) {
        return;
    }
    const auto [run, server] =
        run_one_test({"--udp", "--no-download", "-P", "2", "-t", "2", "-b", "50M", "-J"});
    INFO(run.process.out << run.process.err << server.dump());
    // iperf3 3.12 puts a UDP receiver's figures in end.sum_received (its end.sum has no bytes for it).
    const json& received = server["end"]["sum_received"];
    const json& upload = run.json["upload"];
    CHECK(upload["measured_by"] == "server");
    CHECK(upload["receive_buffer_overflows"].is_null());  // iperf3's results do not say
    CHECK(upload["bytes"].get<std::uint64_t>() > 0);
    CHECK(upload["bytes"].get<std::uint64_t>() == received["bytes"].get<std::uint64_t>());
    CHECK(upload["packets_sent"].get<std::uint64_t>() == received["packets"].get<std::uint64_t>());
    CHECK(upload["lost_packets"].get<std::uint64_t>() == received["lost_packets"].get<std::uint64_t>());
    REQUIRE(upload["streams"].size() == 2);
    // speedcli's sender paced at -b: the server saw the rate asked for (the pacer is exact over the run; 2 %
    // is far above the spread seen on loopback, 0.1 %).
    CHECK(upload["bits_per_second"].get<double>() == Approx(50e6).epsilon(0.02));
}

TEST_CASE(
    "speedcli --iperf3 --bidir --udp -P 1 and -P 2: one iperf3 UDP test both ways, each direction "
    "measured by its receiver",
    "[integration][iperf3][udp][bidir][iperf3-binary]") {
    if (!have_iperf3_with_receiver_sums()) {
        return;
    }
    for (const char* streams : {"1", "2"}) {
        INFO("-P " << streams);
        const auto [run, server] =
            run_one_test({"--bidir", "--udp", "-P", streams, "-t", "2", "-b", "20M", "-J"});
        INFO(run.process.out << run.process.err << server.dump());
        const std::size_t count = std::stoul(streams);
        const json& download = run.json["download"];
        const json& upload = run.json["upload"];
        CHECK(run.json["protocol"] == "udp");
        CHECK(run.json["parameters"]["bidirectional"] == true);
        CHECK(download["measured_by"] == "client");
        CHECK(upload["measured_by"] == "server");
        REQUIRE(download["streams"].size() == count);
        REQUIRE(upload["streams"].size() == count);
        // The server's streams in the order they connected: its receiving ones (speedcli's upload), then its
        // sending ones (speedcli's download), as for iperf3's own -u --bidir client.
        const json& streams_seen = server["end"]["streams"];
        REQUIRE(streams_seen.size() == 2 * count);
        for (std::size_t i = 0; i < count; ++i) {
            INFO("stream " << i);
            CHECK(streams_seen[i]["udp"]["sender"] == false);
            CHECK(streams_seen[i + count]["udp"]["sender"] == true);
            // iperf3 3.12 prints 0 "bytes" for a UDP receiving stream (its sum_received has them): the
            // datagrams and loss per stream are its own.
            CHECK(upload["streams"][i]["packets_sent"] == streams_seen[i]["udp"]["packets"]);
            CHECK(upload["streams"][i]["lost_packets"] == streams_seen[i]["udp"]["lost_packets"]);
            CHECK(download["streams"][i]["bytes"].get<std::uint64_t>() > 0);
        }
        // The upload's bytes, datagrams and loss are what the server's receiver counted (iperf3 3.12 puts
        // them in end.sum_received).
        const json& received = server["end"]["sum_received"];
        CHECK(upload["bytes"].get<std::uint64_t>() > 0);
        CHECK(upload["bytes"].get<std::uint64_t>() == received["bytes"].get<std::uint64_t>());
        CHECK(upload["packets_sent"].get<std::uint64_t>() == received["packets"].get<std::uint64_t>());
        CHECK(upload["lost_packets"].get<std::uint64_t>() == received["lost_packets"].get<std::uint64_t>());
        // The download is speedcli's own count, never above what the server sent (speedcli's window closes
        // before TEST_END stops the server's sending); the sender figures are the server's.
        const json& sent = server["end"]["sum_sent_bidir_reverse"];
        CHECK(download["sender"]["bytes"].get<std::uint64_t>() == sent["bytes"].get<std::uint64_t>());
        CHECK(download["bytes"].get<std::uint64_t>() > 0);
        CHECK(download["bytes"].get<std::uint64_t>() <= sent["bytes"].get<std::uint64_t>());
        CHECK(download["packets_received"].get<std::uint64_t>() > 0);
        CHECK(download["packets_received"].get<std::uint64_t>() <= sent["packets"].get<std::uint64_t>());
        CHECK(download["bytes"].get<std::uint64_t>() ==
              download["packets_received"].get<std::uint64_t>() * 1472);
        // Loopback at 20 Mbit/s drops nothing into speedcli's receiver (its sockets' large buffers), and the
        // download is paced by the iperf3 server, which catches up after a stall: speedcli's receiver reads
        // -b within 10 % (19.90-20.00 Mbit/s in 13 runs at load 6.5-9.6).
        CHECK(download["lost_packets"] == 0);
        CHECK(download["bits_per_second"].get<double>() == Approx(20e6).epsilon(0.10));
        // The upload's rate and loss depend on the host's load, not on speedcli's accounting (which is the
        // server's own, checked exactly above): on this 2-core host at load 7-10 speedcli's paced sender
        // reached 25-100 % of -b, by -P 2 bidirectional and one-way uploads alike (its 2 ms token bucket
        // loses credit whenever a wake-up comes late), and the single-threaded iperf3 server's 208 KiB
        // socket overflowed when it was descheduled (0-10 % lost). What the server still held at TEST_END is
        // not counted (0-5 % seen). So: every datagram the server counted (received or lost) speedcli sent,
        // and at least 80 % of them were counted.
        const auto sent_packets = upload["sender"]["packets"].get<std::uint64_t>();
        const auto counted_packets = upload["packets_sent"].get<std::uint64_t>();
        CHECK(counted_packets <= sent_packets);
        CHECK(static_cast<double>(counted_packets) >= 0.8 * static_cast<double>(sent_packets));
        check_both_at_once(server, run.json);
    }
}

TEST_CASE("speedcli --iperf3 --udp without --bitrate is a usage error naming the flag",
          "[integration][iperf3]") {
    for (const auto* bitrate : {"", "0"}) {
        std::vector<std::string> args{"127.0.0.1", "--iperf3", "--udp", "-J"};
        if (*bitrate != 0) {
            args.insert(args.end(), {"--bitrate", bitrate});
        }
        const auto run = run_client(args);
        INFO(run.process.out << run.process.err);
        CHECK(run.process.exit_code == 2);
        CHECK_THAT(run.json["error"].get<std::string>(), Catch::Contains("--bitrate"));
    }
}

TEST_CASE("speedcli --iperf3 --udp ends with an error when the iperf3 server's UDP stays silent",
          "[integration][iperf3][udp]") {
    SECTION("no reply to the connect datagram: the test ends at --connect-timeout") {
        scripted_iperf3_server server(scripted_iperf3_server::udp_behaviour::silent);
        const auto run = run_client({"127.0.0.1", "-p", std::to_string(server.port), "--iperf3", "--udp",
                                     "-b", "10M", "-t", "1", "--connect-timeout", "1", "-J"},
                                    30s);
        INFO(run.process.out << run.process.err);
        CHECK_FALSE(run.process.timed_out);
        CHECK(run.process.exit_code == 1);
        CHECK_THAT(run.json["error"].get<std::string>(),
                   Catch::Contains("no reply to iperf3's UDP connect datagram"));
    }
    SECTION(
        "connected and started, but no datagram ever comes: the download ends at its first-byte deadline") {
        scripted_iperf3_server server(scripted_iperf3_server::udp_behaviour::replies_then_no_data);
        const auto run = run_client({"127.0.0.1", "-p", std::to_string(server.port), "--iperf3", "--udp",
                                     "-b", "10M", "-t", "1", "--no-upload", "-J"},
                                    30s);
        INFO(run.process.out << run.process.err);
        CHECK_FALSE(run.process.timed_out);
        CHECK(run.process.exit_code == 1);
        CHECK_THAT(run.json["error"].get<std::string>(),
                   Catch::Contains("no UDP datagram from the iperf3 server"));
    }
}
