// netem-tun's pure parts: the delay line's order and bounds, the seeded loss, the --path syntax, the packet
// classifier behind its per-protocol and per-UDP-length counters.
#include <catch2/catch.hpp>

#include <cstring>
#include <string>
#include <vector>

#include "tools/netem-tun/delay_line.hpp"
#include "tools/netem-tun/packet_tally.hpp"
#include "tools/netem-tun/path_spec.hpp"
#include "tools/netem-tun/seeded_loss.hpp"

using namespace speed::netem;

namespace {

// Queues a packet whose bytes spell `text`.
void push(delay_line& line, const std::string& text, std::int64_t release_ns) {
    auto buffer = line.tail_buffer();
    REQUIRE(buffer.size() >= text.size());
    std::memcpy(buffer.data(), text.data(), text.size());
    line.commit(text.size(), release_ns);
}

std::vector<std::byte> bytes(std::initializer_list<int> values) {
    std::vector<std::byte> out;
    for (const int v : values) {
        out.push_back(static_cast<std::byte>(v));
    }
    return out;
}

std::string pop(delay_line& line) {
    const auto bytes = line.front();
    std::string text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    line.pop();
    return text;
}

}  // namespace

TEST_CASE("a delay line releases packets in arrival order at their release times", "[unit][netem]") {
    delay_line line(4, 16);
    CHECK(line.empty());
    CHECK_FALSE(line.next_release_ns());
    push(line, "first", 1'000);
    push(line, "second", 2'000);
    push(line, "third-longer", 3'000);
    CHECK(line.size() == 3);
    CHECK(line.next_release_ns() == 1'000);
    CHECK(pop(line) == "first");
    CHECK(line.next_release_ns() == 2'000);
    CHECK(pop(line) == "second");
    CHECK(pop(line) == "third-longer");
    CHECK(line.empty());
}

TEST_CASE("a delay line never lets a packet overtake the one before it", "[unit][netem]") {
    delay_line line(4, 8);
    push(line, "a", 5'000);
    push(line, "b", 4'000);  // an earlier release time is raised to the previous packet's
    CHECK(pop(line) == "a");
    CHECK(line.next_release_ns() == 5'000);
    CHECK(pop(line) == "b");
    // Once empty, the next packet's own time counts again.
    push(line, "c", 10);
    CHECK(line.next_release_ns() == 10);
}

TEST_CASE("a delay line holds at most its capacity and reuses its slots around the ring", "[unit][netem]") {
    delay_line line(3, 8);
    // Five rounds of three packets each: the ring wraps around four times.
    for (int round = 0; round < 5; ++round) {
        const std::int64_t base = round * 100;
        for (int k = 0; k < 3; ++k) {
            push(line, std::to_string(base + k), base + k);
        }
        CHECK(line.full());
        CHECK_THROWS_AS(line.commit(1, base + 4), std::logic_error);
        for (int k = 0; k < 3; ++k) {
            CHECK(pop(line) == std::to_string(base + k));
        }
    }
    CHECK_THROWS_AS(line.pop(), std::logic_error);
    CHECK_THROWS_AS(line.commit(9, 0), std::logic_error);  // longer than a slot
    CHECK_THROWS_AS(delay_line(0, 8), std::invalid_argument);
}

TEST_CASE("seeded loss drops the configured share of many packets", "[unit][netem]") {
    constexpr int kPackets = 1'000'000;
    for (const double probability : {0.001, 0.01, 0.05, 0.5}) {
        seeded_loss loss(probability, 42);
        int dropped = 0;
        for (int i = 0; i < kPackets; ++i) {
            dropped += loss.drop() ? 1 : 0;
        }
        // Binomial standard deviation sqrt(n p (1-p)); five of them is a bound a correct generator keeps.
        const double expected = probability * kPackets;
        const double sigma = std::sqrt(expected * (1.0 - probability));
        INFO("p = " << probability << ": dropped " << dropped);
        CHECK(std::abs(dropped - expected) < 5.0 * sigma);
    }
}

TEST_CASE("seeded loss is reproducible, differs between seeds, and honours 0 and 100 %", "[unit][netem]") {
    const auto pattern = [](double probability, std::uint64_t seed) {
        seeded_loss loss(probability, seed);
        std::string bits;
        for (int i = 0; i < 2'000; ++i) {
            bits += loss.drop() ? '1' : '0';
        }
        return bits;
    };
    CHECK(pattern(0.1, 7) == pattern(0.1, 7));
    CHECK(pattern(0.1, 7) != pattern(0.1, 8));
    CHECK(pattern(0.0, 7) == std::string(2'000, '0'));
    CHECK(pattern(1.0, 7) == std::string(2'000, '1'));
    CHECK(direction_seed(7, 0) != direction_seed(7, 1));
    // Golden values: SplitMix64's first outputs for seed 0 (from its reference implementation) decide the
    // first drops of a 50 % loss: 0xe220a8397b1dcdaf >= 2^63 passes, 0x6e789e6aa1b965f4 < 2^63 drops.
    seeded_loss half(0.5, 0);
    CHECK_FALSE(half.drop());
    CHECK(half.drop());
}

TEST_CASE("netem-tun's --path option parses DEVICE:DELAY_MS[:LOSS_PERCENT]", "[unit][netem]") {
    std::string error;
    auto spec = parse_path_spec("tun-up:20", &error);
    REQUIRE(spec);
    CHECK(spec->device == "tun-up");
    CHECK(spec->delay_ns == 20'000'000);
    CHECK(spec->loss_probability == 0.0);

    spec = parse_path_spec("t0:0.25:1.5", &error);
    REQUIRE(spec);
    CHECK(spec->delay_ns == 250'000);
    CHECK(spec->loss_probability == Approx(0.015));

    for (const char* bad : {"", "tun0", "tun0:", ":5", "tun0:x", "tun0:-1", "tun0:20001", "tun0:5:101",
                            "tun0:5:-1", "tun0:5:1:2", "a-name-longer-than-15:5"}) {
        INFO(bad);
        error.clear();
        CHECK_FALSE(parse_path_spec(bad, &error));
        CHECK_FALSE(error.empty());
    }
}

TEST_CASE("netem-tun classifies packets by protocol and UDP payload length", "[unit][netem]") {
    // IPv4 10.201.1.2 -> 10.201.2.2, UDP 40000 -> 5201, UDP length 0x0024 = 36: 28 payload bytes (the
    // packet is cut after the UDP header; only the headers are read).
    const auto udp4 = bytes({0x45, 0x00, 0x00, 0x38, 0x12, 0x34, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00,  //
                             10,   201,  1,    2,    10,   201,  2,    2,                             //
                             0x9c, 0x40, 0x14, 0x51, 0x00, 0x24, 0x00, 0x00});
    auto kind = classify_packet(udp4);
    CHECK(kind.protocol == ip_protocol::udp);
    CHECK(kind.udp_payload_bytes == 28u);

    // The same with IP options (IHL 6): the UDP header moves 4 bytes on; length 0x04b8 = 1208 -> 1200.
    const auto udp4_options =
        bytes({0x46, 0x00, 0x04, 0xcc, 0x00, 0x00, 0x00, 0x00, 0x40, 0x11, 0x00, 0x00,  //
               10,   201,  1,    2,    10,   201,  2,    2,    0x01, 0x01, 0x01, 0x00,  //
               0x9c, 0x40, 0x14, 0x51, 0x04, 0xb8, 0x00, 0x00});
    CHECK(classify_packet(udp4_options).udp_payload_bytes == 1200u);

    // A later fragment (offset 185 x 8 bytes) of a UDP datagram carries no UDP header.
    auto fragment = udp4;
    fragment[6] = std::byte{0x00};
    fragment[7] = std::byte{0xb9};
    kind = classify_packet(fragment);
    CHECK(kind.protocol == ip_protocol::udp);
    CHECK_FALSE(kind.udp_payload_bytes);

    auto tcp4 = udp4;
    tcp4[9] = std::byte{6};
    kind = classify_packet(tcp4);
    CHECK(kind.protocol == ip_protocol::tcp);
    CHECK_FALSE(kind.udp_payload_bytes);
    auto icmp4 = udp4;
    icmp4[9] = std::byte{1};
    CHECK(classify_packet(icmp4).protocol == ip_protocol::icmp);

    // IPv6 (40-byte header, next header 17) with a UDP header of length 0x05c8 = 1480 -> 1472.
    std::vector<std::byte> udp6(48, std::byte{0});
    udp6[0] = std::byte{0x60};
    udp6[6] = std::byte{17};
    udp6[44] = std::byte{0x05};
    udp6[45] = std::byte{0xc8};
    kind = classify_packet(udp6);
    CHECK(kind.protocol == ip_protocol::udp);
    CHECK(kind.udp_payload_bytes == 1472u);
    udp6[6] = std::byte{58};
    CHECK(classify_packet(udp6).protocol == ip_protocol::icmp);

    // Too short, a UDP header cut off, a UDP length below its own header, an unknown version: no length.
    CHECK(classify_packet({}).protocol == ip_protocol::other);
    CHECK(classify_packet(std::span(udp4).first(19)).protocol == ip_protocol::other);
    CHECK_FALSE(classify_packet(std::span(udp4).first(27)).udp_payload_bytes);
    auto short_udp = udp4;
    short_udp[25] = std::byte{0x07};
    CHECK_FALSE(classify_packet(short_udp).udp_payload_bytes);
    auto version5 = udp4;
    version5[0] = std::byte{0x55};
    CHECK(classify_packet(version5).protocol == ip_protocol::other);
}

TEST_CASE("netem-tun's tally counts per protocol and per UDP length, with a bounded number of lengths",
          "[unit][netem]") {
    packet_tally tally;
    const packet_kind tcp{ip_protocol::tcp, std::nullopt};
    const packet_kind data{ip_protocol::udp, 1200};
    const packet_kind hello{ip_protocol::udp, 28};
    tally.count(tcp, false);
    tally.count(tcp, true);
    tally.count(data, true);
    tally.count(data, false);
    tally.count(data, false);
    tally.count(hello, true);
    CHECK(tally.protocol(ip_protocol::tcp) == packet_counts{2, 1});
    CHECK(tally.protocol(ip_protocol::udp) == packet_counts{4, 2});
    CHECK(tally.protocol(ip_protocol::icmp) == packet_counts{0, 0});
    REQUIRE(tally.udp_by_payload_bytes().size() == 2);
    CHECK(tally.udp_by_payload_bytes().at(1200) == packet_counts{3, 1});
    CHECK(tally.udp_by_payload_bytes().at(28) == packet_counts{1, 1});

    for (std::uint32_t length = 100; length < 100 + packet_tally::kMaxUdpLengths; ++length) {
        tally.count({ip_protocol::udp, length}, false);
    }
    CHECK(tally.udp_by_payload_bytes().size() == packet_tally::kMaxUdpLengths);
    CHECK(tally.udp_untracked_lengths().received == 2);  // the last two new lengths found no room
    tally.count(data, true);  // a length already tracked still counts in its own entry
    CHECK(tally.udp_by_payload_bytes().at(1200) == packet_counts{4, 2});
}
