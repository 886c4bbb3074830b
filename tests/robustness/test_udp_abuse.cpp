// UDP abuse against the real speedsrv: junk, wrong tokens, a live test's token sent from other addresses, and
// HELLOs spoofed (raw IP packets) from a third host. speedsrv sends UDP only to the control connection's
// address after it echoed the test's token (docs/protocol.md), so every address here that never proved that
// must receive at most 3x the bytes it sent (RFC 9000's limit) - in fact nothing - while a legitimate UDP
// test passes and the server's descriptors and memory return to their baseline.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/ip.h>
#include <netinet/udp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <cctype>
#include <cstring>
#include <random>
#include <thread>

#include "common/udp_wire.hpp"
#include "tests/integration/client_json.hpp"
#include "tests/robustness/abuse.hpp"

using namespace speed;
using namespace speed::testing;

namespace {

sockaddr_in ipv4(const std::string& address, std::uint16_t port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    REQUIRE(::inet_pton(AF_INET, address.c_str(), &a.sin_addr) == 1);
    return a;
}

// A UDP socket bound to `address` that counts what it sends and receives.
class udp_endpoint {
  public:
    explicit udp_endpoint(const std::string& address, std::uint16_t port = 0)
        : fd_(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
        REQUIRE(fd_ >= 0);
        const sockaddr_in local = ipv4(address, port);
        REQUIRE(::bind(fd_, reinterpret_cast<const sockaddr*>(&local), sizeof local) == 0);
    }
    ~udp_endpoint() { ::close(fd_); }
    udp_endpoint(const udp_endpoint&) = delete;
    udp_endpoint& operator=(const udp_endpoint&) = delete;

    void send_to(const sockaddr_in& to, const std::vector<std::uint8_t>& datagram) {
        if (::sendto(fd_, datagram.data(), datagram.size(), 0, reinterpret_cast<const sockaddr*>(&to),
                     sizeof to) == static_cast<ssize_t>(datagram.size())) {
            bytes_sent_ += datagram.size();
        }
    }
    // Reads whatever arrives until `limit` passes; returns the bytes received so far in total.
    std::uint64_t receive_for(std::chrono::milliseconds limit) {
        const auto until = steady_clock::now() + limit;
        std::vector<std::uint8_t> buffer(65536);
        for (auto now = steady_clock::now(); now < until; now = steady_clock::now()) {
            pollfd p{fd_, POLLIN, 0};
            const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(until - now).count();
            if (::poll(&p, 1, static_cast<int>(left) + 1) > 0) {
                const ssize_t n = ::recv(fd_, buffer.data(), buffer.size(), MSG_DONTWAIT);
                if (n > 0) {
                    bytes_received_ += static_cast<std::uint64_t>(n);
                }
            }
        }
        return bytes_received_;
    }
    std::uint64_t bytes_sent() const { return bytes_sent_; }

  private:
    int fd_;
    std::uint64_t bytes_sent_ = 0;
    std::uint64_t bytes_received_ = 0;
};

std::vector<std::uint8_t> header_only(udp::datagram_type type, std::uint64_t token, std::uint64_t sequence,
                                      std::size_t length = udp::kHeaderSize) {
    std::vector<std::uint8_t> datagram(length);
    udp::write_header(datagram, {type, 0, token, sequence, 1});
    return datagram;
}

// A control session that asked for a one-stream UDP download and holds its UDP_SETUP: a live token, which
// the server waits 5 s to see in a HELLO from the control connection's address.
struct udp_download_session {
    udp_download_session(const std::string& source, const std::string& server, std::uint16_t port)
        : control(source, port, server) {
        REQUIRE(control.connected());
        open_session(control);
        proto::test_request request;
        request.dir = proto::direction::download;
        request.proto = proto::transport::udp;
        request.duration_ms = 1000;
        request.bitrate = 10'000'000;
        request.udp_payload_bytes = 1000;
        REQUIRE(control.send(request));
        auto accept = control.read_frame();
        REQUIRE(accept.status == proto::decode_status::ok);
        REQUIRE(std::holds_alternative<proto::test_accept>(accept.msg));
        auto setup_frame = control.read_frame();
        REQUIRE(setup_frame.status == proto::decode_status::ok);
        REQUIRE(std::holds_alternative<proto::udp_setup>(setup_frame.msg));
        setup = std::get<proto::udp_setup>(setup_frame.msg);
    }
    raw_connection control;
    proto::udp_setup setup;
};

// The number in the server's end-of-session line "N UDP handshakes from a wrong address dropped", once the
// session that held the token has ended (the server gives up on its handshake after 5 s).
std::uint64_t wrong_address_hellos_logged(server_process& server) {
    const std::string counted = " UDP handshakes from a wrong address dropped";
    const auto deadline = steady_clock::now() + 10s;
    while (steady_clock::now() < deadline) {
        const std::string log = server.log();
        const auto at = log.find(counted);
        if (at != std::string::npos) {
            auto digits = at;
            while (digits > 0 && std::isdigit(static_cast<unsigned char>(log[digits - 1])) != 0) {
                --digits;
            }
            REQUIRE(digits < at);
            return std::stoull(log.substr(digits, at - digits));
        }
        std::this_thread::sleep_for(50ms);
    }
    FAIL("no session end line with a count of dropped UDP handshakes; log:\n" << server.log());
    return 0;
}

bool legitimate_udp_test_passes(std::uint16_t port, const std::string& host) {
    const auto run = run_client(
        {host, "-p", std::to_string(port), "--udp", "-b", "20M", "-t", "1", "--pings", "3", "-J"}, 30s);
    INFO(run.process.err);
    if (run.process.exit_code != 0 || !run.json.is_object()) {
        return false;
    }
    for (const char* direction : {"download", "upload"}) {
        const auto& d = run.json[direction];
        if (!d["bits_per_second"].is_number() || d["bits_per_second"].get<double>() <= 0 ||
            d["packets_received"].get<std::uint64_t>() + d["lost_packets"].get<std::uint64_t>() !=
                d["packets_sent"].get<std::uint64_t>()) {
            return false;
        }
    }
    return true;
}

// One IPv4/UDP packet with a source address and port of our choosing, for a raw socket (IP_HDRINCL: the
// kernel fills in the IP checksum and total length; a UDP checksum of 0 means none, allowed over IPv4).
std::vector<std::uint8_t> spoofed_packet(const sockaddr_in& from, const sockaddr_in& to,
                                         const std::vector<std::uint8_t>& payload) {
    std::vector<std::uint8_t> packet(sizeof(iphdr) + sizeof(udphdr) + payload.size());
    iphdr ip{};
    ip.version = 4;
    ip.ihl = 5;
    ip.ttl = 64;
    ip.protocol = IPPROTO_UDP;
    ip.saddr = from.sin_addr.s_addr;
    ip.daddr = to.sin_addr.s_addr;
    udphdr header{};
    header.source = from.sin_port;
    header.dest = to.sin_port;
    header.len = htons(static_cast<std::uint16_t>(sizeof(udphdr) + payload.size()));
    std::memcpy(packet.data(), &ip, sizeof ip);
    std::memcpy(packet.data() + sizeof ip, &header, sizeof header);
    std::copy(payload.begin(), payload.end(), packet.begin() + sizeof ip + sizeof header);
    return packet;
}

}  // namespace

TEST_CASE("UDP junk, wrong tokens and a live token from strangers get nothing back; a UDP test still passes",
          "[robustness][udp]") {
    watched_server server({});
    udp_download_session live("127.0.0.1", "127.0.0.1", server.port());
    const sockaddr_in udp_port = ipv4("127.0.0.1", live.setup.port);

    constexpr unsigned kAttackers = 8;
    constexpr unsigned kRounds = 150;
    std::vector<std::unique_ptr<udp_endpoint>> attackers;
    for (unsigned i = 0; i < kAttackers; ++i) {
        attackers.push_back(std::make_unique<udp_endpoint>(attacker_address(400 + i)));
    }
    std::uint64_t live_token_hellos = 0;
    std::atomic<bool> legitimate_passed{false};
    // A legitimate client runs a UDP test while the attack goes on.
    std::thread legitimate(
        [&] { legitimate_passed = legitimate_udp_test_passes(server.port(), "127.0.0.1"); });
    std::mt19937_64 random(7);
    for (unsigned round = 0; round < kRounds; ++round) {
        for (auto& attacker : attackers) {
            std::vector<std::uint8_t> junk(1 + random() % 1472);
            for (auto& byte : junk) {
                byte = static_cast<std::uint8_t>(random());
            }
            attacker->send_to(udp_port, junk);
            attacker->send_to(udp_port, header_only(udp::datagram_type::hello, random() | 1, round));
            attacker->send_to(udp_port, header_only(udp::datagram_type::hello, live.setup.token, round));
            attacker->send_to(udp_port, header_only(udp::datagram_type::ping, live.setup.token, round));
            attacker->send_to(udp_port, header_only(udp::datagram_type::data, live.setup.token, round, 1400));
            ++live_token_hellos;
        }
        std::this_thread::sleep_for(5ms);  // spread over the legitimate test
    }
    legitimate.join();
    CHECK(legitimate_passed);

    std::uint64_t sent = 0;
    for (auto& attacker : attackers) {
        const std::uint64_t received = attacker->receive_for(50ms);
        INFO("an attacker sent " << attacker->bytes_sent() << " bytes and received " << received);
        CHECK(attacker->bytes_sent() > 0);
        CHECK(received <= 3 * attacker->bytes_sent());
        CHECK(received == 0);  // stricter than the 3x rule: an unverified address gets nothing
        sent += attacker->bytes_sent();
    }
    INFO("attackers sent " << sent << " bytes in all");
    // Every HELLO with the live token from a stranger reached the server and was dropped (loopback loses
    // nothing at this rate), so the checks above are not vacuous.
    CHECK(wrong_address_hellos_logged(server.process()) == live_token_hellos);
    server.check_recovered();
}

TEST_CASE("HELLOs spoofed from a third host are dropped: the victim receives nothing",
          "[robustness][udp][netns]") {
    if (!can_run_network_tests()) {
        return;
    }
    const std::string server_address = "10.7.0.1";
    const std::string client_address = "10.7.0.2";
    const std::string victim_address = "10.7.0.66";
    private_network network({server_address, client_address, victim_address});
    server_process server(server_launch{{}, server_address, {}});
    udp_download_session live(client_address, server_address, server.port());

    udp_endpoint victim(victim_address, 9999);
    const int raw = ::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_RAW);
    REQUIRE(raw >= 0);
    const sockaddr_in from = ipv4(victim_address, 9999);
    const sockaddr_in to = ipv4(server_address, live.setup.port);
    constexpr unsigned kSpoofed = 300;
    std::uint64_t spoofed_bytes = 0;
    for (unsigned i = 0; i < kSpoofed; ++i) {
        const auto packet =
            spoofed_packet(from, to, header_only(udp::datagram_type::hello, live.setup.token, i));
        REQUIRE(::sendto(raw, packet.data(), packet.size(), 0, reinterpret_cast<const sockaddr*>(&to),
                         sizeof to) == static_cast<ssize_t>(packet.size()));
        spoofed_bytes += packet.size();
        if (i % 32 == 31) {
            std::this_thread::sleep_for(2ms);  // within the server socket's receive buffer: none is lost
        }
    }
    ::close(raw);
    const std::uint64_t victim_received = victim.receive_for(500ms);
    INFO("spoofed " << spoofed_bytes << " bytes as " << victim_address << "; it received "
                    << victim_received);
    CHECK(victim_received <= 3 * spoofed_bytes);
    CHECK(victim_received == 0);
    // The server saw every spoofed HELLO and dropped it for its address.
    CHECK(wrong_address_hellos_logged(server) == kSpoofed);
    REQUIRE(server.running());
    CHECK(legitimate_udp_test_passes(server.port(), server_address));
}
