// UDP return paths against the real speedsrv (docs/protocol.md, "UDP datagrams"): the server sends nothing
// beyond 1:1 to an address:port until that exact address:port echoed the cookie of its HELLO_ACK; a download
// keeps going only on FEEDBACK that echoes the nonce its DATA carries; a receiver whose data stops ends the
// test within the stall timeout; a UDP download stays within --max-bytes and a bounded grace without STOP;
// and a junk flood to the UDP port does not make a legitimate test miss its deadlines.
//
// The datagrams are built here byte by byte from docs/protocol.md (not with the project's encoders beyond the
// common header), so a change of layout on either end shows up as a failure here.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <random>
#include <thread>

#include "common/udp_wire.hpp"
#include "tests/integration/client_json.hpp"
#include "tests/robustness/abuse.hpp"

using namespace speed;
using namespace speed::testing;

namespace {

// HELLO and HELLO_ACK: the common header and a 64-bit cookie (0 in a first HELLO).
constexpr std::size_t kCookieOffset = udp::kHeaderSize;
constexpr std::size_t kHelloBytes = udp::kHeaderSize + 8;
// DATA carries the sender's nonce right after the header; FEEDBACK echoes it in its last 8 bytes.
constexpr std::size_t kDataNonceOffset = udp::kHeaderSize;
constexpr std::size_t kFeedbackNonceOffset = 72;
constexpr std::size_t kFeedbackBytes = kFeedbackNonceOffset + 8;

void put64(std::uint8_t* out, std::uint64_t value) {
    for (int i = 0; i < 8; ++i) {
        out[i] = static_cast<std::uint8_t>(value >> (56 - 8 * i));
    }
}

std::uint64_t get64(const std::uint8_t* in) {
    std::uint64_t value = 0;
    for (int i = 0; i < 8; ++i) {
        value = (value << 8) | in[i];
    }
    return value;
}

sockaddr_in loopback(std::uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
}

// A UDP socket on its own port of 127.0.0.1 that counts what it sends and receives.
class udp_port {
  public:
    udp_port() : fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
        REQUIRE(fd_ >= 0);
        const sockaddr_in local = loopback(0);
        REQUIRE(::bind(fd_, reinterpret_cast<const sockaddr*>(&local), sizeof local) == 0);
    }
    ~udp_port() { ::close(fd_); }
    udp_port(const udp_port&) = delete;
    udp_port& operator=(const udp_port&) = delete;

    void send_to(std::uint16_t port, const std::vector<std::uint8_t>& datagram) {
        const sockaddr_in to = loopback(port);
        if (::sendto(fd_, datagram.data(), datagram.size(), 0, reinterpret_cast<const sockaddr*>(&to),
                     sizeof to) == static_cast<ssize_t>(datagram.size())) {
            bytes_sent += datagram.size();
        }
    }
    // The next datagram within `limit`, or an empty one.
    std::vector<std::uint8_t> receive(std::chrono::milliseconds limit) {
        pollfd p{fd_, POLLIN, 0};
        if (::poll(&p, 1, static_cast<int>(limit.count())) <= 0) {
            return {};
        }
        std::vector<std::uint8_t> buffer(65536);
        const ssize_t n = ::recv(fd_, buffer.data(), buffer.size(), MSG_DONTWAIT);
        if (n <= 0) {
            return {};
        }
        buffer.resize(static_cast<std::size_t>(n));
        bytes_received += buffer.size();
        const auto h = udp::read_header(buffer);
        if (h && h->type == udp::datagram_type::data) {
            ++data_received;
            data_bytes_received += buffer.size();
        }
        return buffer;
    }

    std::uint64_t bytes_sent = 0;
    std::uint64_t bytes_received = 0;
    std::uint64_t data_received = 0;
    std::uint64_t data_bytes_received = 0;

  private:
    int fd_;
};

std::vector<std::uint8_t> hello(std::uint64_t token, std::uint64_t cookie, std::uint64_t sequence) {
    std::vector<std::uint8_t> datagram(kHelloBytes);
    udp::write_header(datagram, {udp::datagram_type::hello, 0, token, sequence, 1});
    put64(datagram.data() + kCookieOffset, cookie);
    return datagram;
}

// A FEEDBACK for stream 0 with plausible counters, echoing `nonce`.
std::vector<std::uint8_t> feedback(std::uint64_t token, std::uint64_t sequence, std::uint64_t packets,
                                   std::uint64_t bytes, std::uint64_t nonce) {
    std::vector<std::uint8_t> datagram(kFeedbackBytes);
    udp::feedback body;
    body.packets_received = packets;
    body.expected = packets;
    body.bytes_received = bytes;
    udp::write_feedback(datagram, {udp::datagram_type::feedback, 0, token, sequence, 1}, body);
    put64(datagram.data() + kFeedbackNonceOffset, nonce);
    return datagram;
}

// A control session that asked for a one-stream UDP test and holds its UDP_SETUP.
struct udp_session {
    udp_session(std::uint16_t port, proto::direction dir, std::uint32_t duration_ms, std::uint64_t bitrate)
        : control("127.0.0.1", port) {
        REQUIRE(control.connected());
        open_session(control);
        setup = request_udp_test(control, dir, duration_ms, bitrate);
    }

    // The cookie of the HELLO_ACK that answers a HELLO from `from` (0 when the answer carries none).
    std::uint64_t cookie_for(udp_port& from) {
        for (std::uint64_t attempt = 0; attempt < 5; ++attempt) {
            from.send_to(setup.port, hello(setup.token, 0, attempt));
            for (;;) {
                const auto reply = from.receive(500ms);
                if (reply.empty()) {
                    break;
                }
                const auto h = udp::read_header(reply);
                if (h && h->type == udp::datagram_type::hello_ack) {
                    return reply.size() >= kHelloBytes ? get64(reply.data() + kCookieOffset) : 0;
                }
            }
        }
        FAIL("no HELLO_ACK");
        return 0;
    }

    // The whole handshake from `from`, then STREAMS_READY on the control connection.
    void handshake(udp_port& from) {
        const std::uint64_t cookie = cookie_for(from);
        from.send_to(setup.port, hello(setup.token, cookie, 100));
        const auto ready = control.read_frame(7s);
        REQUIRE(ready.status == proto::decode_status::ok);
        REQUIRE(std::holds_alternative<proto::streams_ready>(ready.msg));
    }

    raw_connection control;
    proto::udp_setup setup;
};

using fractional_seconds = std::chrono::duration<double>;

}  // namespace

TEST_CASE(
    "A cookie echoed from another port than the one that got HELLO_ACK validates nothing: that port "
    "gets no DATA",
    "[robustness][concurrent][udp][paths]") {
    server_process server;
    udp_session session(server.port(), proto::direction::download, 1000, 10'000'000);
    udp_port victim;    // the address:port the HELLO claims to come from (a spoofed source)
    udp_port attacker;  // a port of the same address that echoes the cookie
    const std::uint64_t cookie = session.cookie_for(victim);
    // The attacker echoes the cookie from its own port and keeps the victim's "download" fed with FEEDBACK
    // that seems to come from the victim, for longer than the server waits for the handshake.
    const auto until = steady_clock::now() + 6s;
    for (std::uint64_t i = 0; steady_clock::now() < until; ++i) {
        if (i % 50 == 0) {
            attacker.send_to(session.setup.port, hello(session.setup.token, cookie, 200 + i));
        }
        victim.send_to(session.setup.port, feedback(session.setup.token, i, 0, 0, 0));
        while (!victim.receive(10ms).empty()) {
        }
    }
    INFO("the victim sent " << victim.bytes_sent << " bytes and received " << victim.bytes_received << " in "
                            << victim.data_received << " DATA datagrams");
    CHECK(victim.data_received == 0);
    CHECK(victim.bytes_received <= victim.bytes_sent);
    // The server gave up on the handshake instead of starting the test.
    const auto reply = session.control.read_frame(3s);
    REQUIRE(reply.status == proto::decode_status::ok);
    CHECK(std::holds_alternative<proto::error>(reply.msg));
}

TEST_CASE("FEEDBACK without the DATA's nonce does not keep a UDP download going",
          "[robustness][concurrent][udp][paths]") {
    server_process server;
    udp_session session(server.port(), proto::direction::download, 3000, 10'000'000);
    udp_port client;
    session.handshake(client);
    // Counters that look right, but no nonce from the DATA: what someone who does not receive the data
    // could send.
    std::optional<steady_clock::time_point> first_data;
    steady_clock::time_point last_data{};
    std::uint64_t packets = 0;
    const auto until = steady_clock::now() + 2500ms;
    for (std::uint64_t i = 0; steady_clock::now() < until; ++i) {
        client.send_to(session.setup.port, feedback(session.setup.token, i, packets, packets * 1000, 0));
        for (auto datagram = client.receive(10ms); !datagram.empty(); datagram = client.receive(0ms)) {
            const auto h = udp::read_header(datagram);
            if (h && h->type == udp::datagram_type::data) {
                ++packets;
                last_data = steady_clock::now();
                first_data = first_data.value_or(last_data);
            }
        }
    }
    REQUIRE(first_data);
    const double sent_for = fractional_seconds(last_data - *first_data).count();
    INFO("DATA arrived for " << sent_for << " s (" << packets << " datagrams)");
    // The sender stops 500 ms after it started without valid FEEDBACK; it checks at least every 20 ms, and
    // on this shared 2-core machine wake-ups were measured up to ~100 ms late: 250 ms of slack.
    CHECK(sent_for <= 0.5 + 0.25);
    const auto reply = session.control.read_frame(3s);
    REQUIRE(reply.status == proto::decode_status::ok);
    CHECK(std::holds_alternative<proto::error>(reply.msg));
}

TEST_CASE("A UDP upload whose data stops ends with a stall error within the stall timeout",
          "[robustness][concurrent][udp][paths]") {
    server_process server({"--stall-timeout", "1"});
    udp_session session(server.port(), proto::direction::upload, 10'000, 1'000'000);
    udp_port client;
    session.handshake(client);
    std::vector<std::uint8_t> data(1000);
    for (std::uint64_t sequence = 0; sequence < 20; ++sequence) {
        udp::write_header(data, {udp::datagram_type::data, 0, session.setup.token, sequence, 1});
        client.send_to(session.setup.port, data);
        std::this_thread::sleep_for(5ms);
    }
    const auto data_stopped = steady_clock::now();
    // The server's interval reports, then its ERROR; FEEDBACK is read (and timed) meanwhile.
    std::optional<proto::error> error;
    steady_clock::time_point error_at{};
    steady_clock::time_point last_feedback = data_stopped;
    const auto until = data_stopped + 4s;
    while (!error && steady_clock::now() < until) {
        for (auto datagram = client.receive(0ms); !datagram.empty(); datagram = client.receive(0ms)) {
            const auto h = udp::read_header(datagram);
            if (h && h->type == udp::datagram_type::feedback) {
                last_feedback = steady_clock::now();
            }
        }
        const auto frame = session.control.read_frame(20ms);
        if (frame.status == proto::decode_status::ok) {
            if (const auto* e = std::get_if<proto::error>(&frame.msg)) {
                error = *e;
                error_at = steady_clock::now();
            }
        }
    }
    REQUIRE(error);
    INFO(error->message);
    CHECK(error->code == proto::error_code::timeout);
    const double error_after = fractional_seconds(error_at - data_stopped).count();
    const double feedback_after = fractional_seconds(last_feedback - data_stopped).count();
    INFO("ERROR " << error_after << " s and the last FEEDBACK " << feedback_after
                  << " s after the data stopped");
    // 1 s of stall timeout; the server checks every 10 ms (its FEEDBACK interval) and, loaded by five other
    // builds, answered up to ~200 ms late here: 500 ms of slack.
    CHECK(error_after <= 1.0 + 0.5);
    CHECK(feedback_after <= 1.0 + 0.5);
}

TEST_CASE("A UDP download under --max-bytes moves at most 1.25x the cap to a client that never sends STOP",
          "[robustness][concurrent][udp][paths]") {
    constexpr std::uint64_t kMaxBytes = 1'000'000;
    server_process server({"--max-bytes", std::to_string(kMaxBytes)});
    const std::uint32_t duration_ms = GENERATE(100U, 2000U);
    // As fast as the cap allows: the whole budget in the test's time.
    const std::uint64_t bitrate = kMaxBytes * 8 * 1000 / duration_ms;
    udp_session session(server.port(), proto::direction::download, duration_ms, bitrate);
    udp_port client;
    session.handshake(client);
    // A client that receives everything and says so (echoing the nonce), but never sends STOP.
    const auto started = steady_clock::now();
    auto last_data = started;
    std::uint64_t nonce = 0;
    std::uint64_t packets = 0;
    std::optional<steady_clock::duration> error_after;
    const auto until = started + std::chrono::milliseconds(duration_ms) + 12s;
    for (std::uint64_t i = 0; steady_clock::now() < until && !error_after; ++i) {
        client.send_to(session.setup.port,
                       feedback(session.setup.token, i, packets, client.data_bytes_received, nonce));
        for (auto datagram = client.receive(10ms); !datagram.empty(); datagram = client.receive(0ms)) {
            const auto h = udp::read_header(datagram);
            if (h && h->type == udp::datagram_type::data) {
                ++packets;
                last_data = steady_clock::now();
                if (datagram.size() >= kDataNonceOffset + 8) {
                    nonce = get64(datagram.data() + kDataNonceOffset);
                }
            }
        }
        const auto frame = session.control.read_frame(0ms);
        if (frame.status == proto::decode_status::ok && std::holds_alternative<proto::error>(frame.msg)) {
            error_after = steady_clock::now() - started;
        }
    }
    INFO(duration_ms << " ms test: received " << client.data_bytes_received << " bytes in " << packets
                     << " DATA datagrams, the last " << fractional_seconds(last_data - started).count()
                     << " s after STREAMS_READY");
    CHECK(client.data_bytes_received <= kMaxBytes * 5 / 4);
    // Without STOP the server gives up after the test's time plus a grace of max(1 s, its time); 1 s more
    // for the STOP's own read deadline and this loaded machine.
    REQUIRE(error_after);
    const double grace = std::max(1.0, duration_ms / 1000.0);
    CHECK(fractional_seconds(*error_after).count() <= duration_ms / 1000.0 + grace + 1.0);
}

TEST_CASE("A junk flood to the UDP port does not make a legitimate UDP test miss its deadlines",
          "[robustness][udp][paths][flood]") {
    server_process server;
    std::atomic<bool> done{false};
    std::atomic<std::uint64_t> flooded{0};
    // Bounded: four loopback senders, at most 10 s and 2 million datagrams each. Under AddressSanitizer the
    // server parses several times slower while the senders do not, so the same four are a far stronger attack
    // on a 2-core machine (the handshake once missed its 5 s there with 157 MB of junk); two keep the attack
    // about as strong relative to the server.
#if defined(SPEED_SANITIZED_BUILD)
    constexpr unsigned kSenders = 2;
#else
    constexpr unsigned kSenders = 4;
#endif
    constexpr std::uint64_t kMaxPerSender = 2'000'000;
    std::vector<std::thread> flooders;
    for (unsigned f = 0; f < kSenders; ++f) {
        flooders.emplace_back([&, f] {
            udp_port junk;
            std::mt19937_64 random(f);
            std::vector<std::uint8_t> datagram(64);
            const auto until = steady_clock::now() + 10s;
            for (std::uint64_t i = 0; i < kMaxPerSender && !done && steady_clock::now() < until; ++i) {
                // Every other one looks like a HELLO with a random token: the listener has to parse it.
                if (i % 2 == 0) {
                    udp::write_header(datagram, {udp::datagram_type::hello, 0, random(), i, 1});
                } else {
                    datagram[0] = static_cast<std::uint8_t>(random());
                }
                junk.send_to(server.port(), datagram);
            }
            flooded += junk.bytes_sent;
        });
    }
    std::this_thread::sleep_for(200ms);  // the flood is on before the test starts
    const auto run = run_client({"127.0.0.1", "-p", std::to_string(server.port()), "--udp", "-b", "20M", "-t",
                                 "2", "--pings", "5", "-J"},
                                40s);
    done = true;
    for (auto& t : flooders) {
        t.join();
    }
    INFO(run.process.err);
    INFO("flooded " << flooded.load() << " bytes");
    CHECK(flooded.load() > 0);
    REQUIRE(run.process.exit_code == 0);
    REQUIRE(run.json.is_object());
    for (const char* direction : {"download", "upload"}) {
        INFO(direction);
        CHECK(run.json[direction]["bits_per_second"].get<double>() > 0);
    }
    CHECK(server.running());
}

// "The control thread is not the choke point": the UDP listener reads junk on its own thread and the echoes
// answer on the probe thread, so a flood at the UDP port must not change the latency another user is shown.
// The figure compared is the one speedcli prints, the kernel-corrected idle RTT (docs/methodology.md).
// Tolerance from measured spread (2-core VM, two fuzzers and two compilers beside it, 5 runs): quiet medians
// alone moved between 0.017 and 0.041 ms from run to run (where the scheduler put client and server), flooded
// ones read 0.022-0.032 ms. So the baseline is the slower of a quiet run before and one after the flood, and
// never below 0.05 ms: twice that is what "within 2x of an unflooded run" can mean at these sizes.
TEST_CASE(
    "A junk and PING flood at the UDP port leaves another user's idle RTT within 2x of an unflooded run",
    "[robustness][udp][paths][flood]") {
    server_process server;
    const auto idle_rtt_median_ms = [&] {
        const auto run = run_client({"127.0.0.1", "-p", std::to_string(server.port()), "--no-download",
                                     "--no-upload", "--pings", "50", "--ping-interval", "0.01", "-J"},
                                    30s);
        INFO(run.process.err);
        REQUIRE(run.process.exit_code == 0);
        return run.json["latency"]["idle"]["rtt_ms"]["median"].get<double>();
    };
    const double quiet = idle_rtt_median_ms();

    std::atomic<bool> done{false};
    std::atomic<std::uint64_t> flooded{0};
    // As fast as one sender per core goes, bounded: at most 10 s and 2 million datagrams each.
    constexpr unsigned kSenders = 2;
    constexpr std::uint64_t kMaxPerSender = 2'000'000;
    std::vector<std::thread> flooders;
    for (unsigned f = 0; f < kSenders; ++f) {
        flooders.emplace_back([&, f] {
            udp_port junk;
            std::mt19937_64 random(100 + f);
            std::vector<std::uint8_t> datagram(kHelloBytes);
            const auto until = steady_clock::now() + 10s;
            for (std::uint64_t i = 0; i < kMaxPerSender && !done && steady_clock::now() < until; ++i) {
                // HELLOs and PINGs with tokens nobody holds, and bytes that are no datagram at all.
                switch (i % 4) {
                    case 0:
                    case 1:
                        udp::write_header(datagram, {udp::datagram_type::hello, 0, random(), i, 1});
                        break;
                    case 2:
                        udp::write_header(datagram, {udp::datagram_type::ping, 0, random(), i, 1});
                        break;
                    default:
                        datagram[0] = static_cast<std::uint8_t>(random());
                        break;
                }
                junk.send_to(server.port(), datagram);
            }
            flooded += junk.bytes_sent;
        });
    }
    std::this_thread::sleep_for(200ms);  // the flood is on before the probes start
    const double under_flood = idle_rtt_median_ms();
    done = true;
    for (auto& t : flooders) {
        t.join();
    }
    const double quiet_after = idle_rtt_median_ms();
    INFO("idle RTT median " << quiet << " and " << quiet_after << " ms quiet, " << under_flood
                            << " ms under a flood of " << flooded.load() << " bytes");
    CHECK(flooded.load() > 0);
    CHECK(under_flood <= 2 * std::max({quiet, quiet_after, 0.05}));
    CHECK(server.running());
}
