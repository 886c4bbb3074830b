// netem-tun's pure parts: the delay line's order and bounds, the seeded loss and jitter, the --path syntax,
// the packet classifier behind its per-protocol and per-UDP-length counters, the count of overtaken packets.
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
void push(delay_line& line, const std::string& text, std::int64_t release_ns, std::uint64_t index = 0) {
    auto buffer = line.free_buffer();
    REQUIRE(buffer.size() >= text.size());
    std::memcpy(buffer.data(), text.data(), text.size());
    line.commit(text.size(), release_ns, index);
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

TEST_CASE("a delay line releases by release time, ties in arrival order", "[unit][netem]") {
    delay_line line(8, 8);
    push(line, "a", 5'000, 1);
    push(line, "b", 4'000, 2);  // jitter: b overtakes a
    push(line, "c", 5'000, 3);  // the same time as a: after a
    push(line, "d", 4'500, 4);
    push(line, "e", 5'000, 5);
    CHECK(line.next_release_ns() == 4'000);
    CHECK(line.front_arrival_index() == 2);
    CHECK(pop(line) == "b");
    CHECK(pop(line) == "d");
    CHECK(line.front_arrival_index() == 1);
    CHECK(pop(line) == "a");
    CHECK(pop(line) == "c");
    CHECK(pop(line) == "e");
    CHECK(line.empty());
}

TEST_CASE("a delay line holds at most its capacity and reuses its slots", "[unit][netem]") {
    delay_line line(3, 8);
    // Five rounds of three packets each: every slot is reused four times.
    for (int round = 0; round < 5; ++round) {
        const std::int64_t base = round * 100;
        for (int k = 0; k < 3; ++k) {
            push(line, std::to_string(base + k), base + k);
        }
        CHECK(line.full());
        CHECK_THROWS_AS(line.commit(1, base + 4, 0), std::logic_error);
        CHECK_THROWS_AS(line.free_buffer(), std::logic_error);
        for (int k = 0; k < 3; ++k) {
            CHECK(pop(line) == std::to_string(base + k));
        }
    }
    CHECK_THROWS_AS(line.pop(), std::logic_error);
    CHECK_THROWS_AS(line.commit(9, 0, 0), std::logic_error);  // longer than a slot
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

TEST_CASE("seeded jitter is uniform on [0, D], reproducible, and nothing without jitter", "[unit][netem]") {
    const std::int64_t jitter_ns = 4'000'000;
    seeded_jitter a(jitter_ns, 3);
    seeded_jitter b(jitter_ns, 3);
    const int draws = 200'000;
    double sum = 0.0;
    std::int64_t low = jitter_ns;
    std::int64_t high = 0;
    int below_quarter = 0;
    for (int i = 0; i < draws; ++i) {
        const std::int64_t x = a.next_ns();
        REQUIRE(x == b.next_ns());
        sum += static_cast<double>(x);
        low = std::min(low, x);
        high = std::max(high, x);
        below_quarter += x < jitter_ns / 4 ? 1 : 0;
    }
    CHECK(low >= 0);
    CHECK(high <= jitter_ns);
    // Mean D/2 and P(x < D/4) = 1/4 within about 5 standard errors of 200,000 draws.
    CHECK(sum / draws == Approx(2e6).epsilon(0.01));
    CHECK(below_quarter / static_cast<double>(draws) == Approx(0.25).margin(0.005));
    CHECK(low < 1'000);  // reaches both ends
    CHECK(high > jitter_ns - 1'000);
    seeded_jitter none(0, 3);
    CHECK(none.next_ns() == 0);
    // Golden value: SplitMix64's first output for seed 0 is 0xe220a8397b1dcdaf; mod 4,000,001.
    seeded_jitter golden(jitter_ns, 0);
    CHECK(golden.next_ns() == static_cast<std::int64_t>(0xe220a8397b1dcdafULL % 4'000'001ULL));
}

TEST_CASE("netem-tun's --path option parses DEVICE:DELAY_MS[:LOSS_PERCENT[:JITTER_MS]]", "[unit][netem]") {
    std::string error;
    auto spec = parse_path_spec("tun-up:20", &error);
    REQUIRE(spec);
    CHECK(spec->device == "tun-up");
    CHECK(spec->delay_ns == 20'000'000);
    CHECK(spec->loss_probability == 0.0);
    CHECK_FALSE(spec->jitter_ns);

    spec = parse_path_spec("t0:0.25:1.5", &error);
    REQUIRE(spec);
    CHECK(spec->delay_ns == 250'000);
    CHECK(spec->loss_probability == Approx(0.015));

    spec = parse_path_spec("t0:5:0:4.5", &error);
    REQUIRE(spec);
    CHECK(spec->delay_ns == 5'000'000);
    CHECK(spec->jitter_ns == 4'500'000);
    CHECK(parse_milliseconds("0.001") == 1'000);
    CHECK_FALSE(parse_milliseconds("nan"));

    for (const char* bad :
         {"", "tun0", "tun0:", ":5", "tun0:x", "tun0:-1", "tun0:20001", "tun0:5:101", "tun0:5:-1",
          "tun0:5:1:-2", "tun0:5:1:x", "tun0:5:1:10001", "tun0:5:1:2:3", "a-name-longer-than-15:5"}) {
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

TEST_CASE("netem-tun counts a packet as overtaken when one of its kind that arrived later left before it",
          "[unit][netem]") {
    packet_tally tally;
    const packet_kind data{ip_protocol::udp, 1200};
    const packet_kind probe{ip_protocol::udp, 28};
    const packet_kind tcp{ip_protocol::tcp, std::nullopt};
    // Arrival order (direction-wide index): 1 data, 2 data, 3 probe, 4 data, 5 tcp, 6 data.
    for (const auto* kind : {&data, &data, &probe, &data, &tcp, &data}) {
        tally.count(*kind, false);
    }
    // Release order 2, 3, 1, 6, 5, 4: data 1 and 4 each left after a later data packet (2 and 6): for this
    // flow's receiver, sequences 2, 1, 6, 4 are two out-of-order arrivals. The probe (3) overtook data 1 but
    // is a kind of its own; the TCP packet (5) left after the later UDP 6 but is the only TCP packet.
    tally.released(data, 2);
    tally.released(probe, 3);
    tally.released(data, 1);
    tally.released(data, 6);
    tally.released(tcp, 5);
    tally.released(data, 4);
    CHECK(tally.udp_by_payload_bytes().at(1200) == packet_counts{4, 0, 2});
    CHECK(tally.udp_by_payload_bytes().at(28) == packet_counts{1, 0, 0});
    CHECK(tally.protocol(ip_protocol::udp) == packet_counts{5, 0, 2});  // 1 (after 2, 3) and 4 (after 6)
    CHECK(tally.protocol(ip_protocol::tcp) == packet_counts{1, 0, 0});
}

TEST_CASE("netem-tun counts a TCP super-packet as the segments it becomes", "[unit][netem]") {
    // IPv4 (IHL 5) + TCP with a 32-byte header (data offset 8): 52 bytes of headers, then 4000 payload bytes.
    std::vector<std::byte> packet(52 + 4000, std::byte{0});
    packet[0] = std::byte{0x45};
    packet[9] = std::byte{6};
    packet[20 + 12] = std::byte{0x80};
    CHECK(gso_segment_count(packet, 1448) == 3);  // 1448 + 1448 + 1104
    CHECK(gso_segment_count(packet, 1000) == 4);  // exactly four
    CHECK(gso_segment_count(packet, 0) == 1);     // not a super-packet
    packet[9] = std::byte{17};
    CHECK(gso_segment_count(packet, 1448) == 1);  // UDP is never offloaded to netem-tun
    packet_tally tally;
    tally.count({ip_protocol::tcp, std::nullopt}, true, 3);
    CHECK(tally.protocol(ip_protocol::tcp) == packet_counts{3, 3, 0});
}
