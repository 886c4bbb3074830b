// iperf3's UDP data path (common/iperf3_udp.hpp): the connect datagram, the data header's bytes, and the
// receiver's accounting with the figures iperf3's own receiver (src/iperf_udp.c, iperf_udp_recv) computes.
#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <limits>
#include <vector>

#include "common/iperf3_udp.hpp"

using namespace speed::iperf3;

namespace {

constexpr std::int64_t kMs = 1'000'000;

// A datagram of `bytes` bytes whose header carries `count` and a send time of `sent_ns`.
std::vector<std::uint8_t> datagram(std::uint64_t count, std::int64_t sent_ns, bool counters_64bit = false,
                                   std::size_t bytes = 100) {
    std::vector<std::uint8_t> out(bytes);
    REQUIRE(write_udp_header(out, udp_header_at(sent_ns, count), counters_64bit));
    return out;
}

void receive(udp_receiver& receiver, std::uint64_t count, std::int64_t sent_ns, std::int64_t arrival_ns,
             bool counters_64bit = false) {
    const auto bytes = datagram(count, sent_ns, counters_64bit);
    receiver.on_datagram(bytes.size(), read_udp_header(bytes, counters_64bit), arrival_ns);
}

}  // namespace

TEST_CASE("iperf3 UDP connect: the current and legacy greetings, and their 4-byte replies", "[iperf3][udp]") {
    const std::array<std::uint8_t, 4> current{0x39, 0x38, 0x37,
                                              0x36};  // "9876" as a little-endian host writes 0x36373839
    const std::array<std::uint8_t, 4> legacy{0x15, 0xcd, 0x5b, 0x07};  // 123456789
    CHECK(classify_udp_connect(current) == udp_connect::current);
    CHECK(classify_udp_connect(legacy) == udp_connect::legacy);
    CHECK(udp_connect_reply(udp_connect::current) == std::array<std::uint8_t, 4>{0x36, 0x37, 0x38, 0x39});
    CHECK(udp_connect_reply(udp_connect::legacy) == std::array<std::uint8_t, 4>{0xb1, 0x68, 0xde, 0x3a});

    const std::array<std::uint8_t, 5> longer{0x39, 0x38, 0x37, 0x36, 0x00};
    const std::array<std::uint8_t, 3> shorter{0x39, 0x38, 0x37};
    const std::array<std::uint8_t, 4> other{0x39, 0x38, 0x37, 0x37};
    CHECK(classify_udp_connect(longer) == udp_connect::none);
    CHECK(classify_udp_connect(shorter) == udp_connect::none);
    CHECK(classify_udp_connect(other) == udp_connect::none);
    CHECK(classify_udp_connect({}) == udp_connect::none);
}

TEST_CASE("iperf3 UDP header: big-endian seconds, microseconds and a 32- or 64-bit count", "[iperf3][udp]") {
    const udp_header h{0x01020304, 0x000a0b0c, 0x0000000100000002};
    std::array<std::uint8_t, 16> out{};
    REQUIRE(write_udp_header(out, h, false));
    CHECK(out == std::array<std::uint8_t, 16>{0x01, 0x02, 0x03, 0x04, 0x00, 0x0a, 0x0b, 0x0c, 0x00, 0x00,
                                              0x00, 0x02, 0, 0, 0, 0});
    CHECK(read_udp_header(out, false) == udp_header{0x01020304, 0x000a0b0c, 2});  // the low 32 bits

    REQUIRE(write_udp_header(out, h, true));
    CHECK(out == std::array<std::uint8_t, 16>{0x01, 0x02, 0x03, 0x04, 0x00, 0x0a, 0x0b, 0x0c, 0x00, 0x00,
                                              0x00, 0x01, 0x00, 0x00, 0x00, 0x02});
    CHECK(read_udp_header(out, true) == h);

    std::array<std::uint8_t, 15> short_for_64{};
    std::array<std::uint8_t, 11> short_for_32{};
    CHECK_FALSE(write_udp_header(short_for_64, h, true));
    CHECK_FALSE(write_udp_header(short_for_32, h, false));
    CHECK_FALSE(read_udp_header(short_for_64, true));
    CHECK_FALSE(read_udp_header(short_for_32, false));
    CHECK(read_udp_header(short_for_64, false));
    CHECK(udp_header_size(false) == 12);
    CHECK(udp_header_size(true) == 16);
}

TEST_CASE("iperf3 UDP header time: whole seconds and microseconds of a clock", "[iperf3][udp]") {
    CHECK(udp_header_at(1'234'567'891'999, 7) == udp_header{1234, 567891, 7});
    CHECK(udp_header_at(-5, 1) == udp_header{0, 0, 1});
}

TEST_CASE("iperf3 UDP transit: the absolute difference at microsecond resolution", "[iperf3][udp]") {
    const udp_header sent{10, 500'000, 1};
    CHECK(udp_transit_seconds(sent, 12'750'000'999) == 2.25);  // 12.750000 - 10.5
    CHECK(udp_transit_seconds(sent, 9'500'000'000) == 1.0);    // before the sender's time: |difference|
    CHECK(udp_transit_seconds(sent, 10'500'000'000) == 0.0);
}

TEST_CASE("iperf3 UDP receiver: a gap counts as lost until the late datagrams fill it", "[iperf3][udp]") {
    udp_receiver receiver;
    for (const std::uint64_t count : {1U, 2U, 5U, 3U, 4U, 4U}) {
        receive(receiver, count, 0, 10 * kMs);
    }
    const auto& f = receiver.figures();
    CHECK(f.packets == 5);
    CHECK(f.errors == 0);        // 5 opened a gap of 2; 3 and 4 filled it; the duplicate 4 found none to fill
    CHECK(f.out_of_order == 3);  // 3, 4 and the duplicate 4
    CHECK(f.bytes == 600);
    CHECK(f.datagrams == 6);

    udp_receiver lossy;
    for (const std::uint64_t count : {1U, 4U, 10U}) {
        receive(lossy, count, 0, 10 * kMs);
    }
    CHECK(lossy.figures().packets == 10);
    CHECK(lossy.figures().errors == 7);
    CHECK(lossy.figures().out_of_order == 0);
}

TEST_CASE("iperf3 UDP receiver: jitter is RFC 1889's, smoothed by 1/16 from the first transit",
          "[iperf3][udp]") {
    udp_receiver receiver;
    receive(receiver, 1, 0, 10 * kMs);  // transit 10 ms: the first sets the reference
    CHECK(receiver.figures().jitter_seconds == 0.0);
    receive(receiver, 2, 1 * kMs, 13 * kMs);  // transit 12 ms: D = 2 ms
    const double after_second = 0.002 / 16.0;
    CHECK(receiver.figures().jitter_seconds == Approx(after_second).epsilon(1e-12));
    receive(receiver, 3, 2 * kMs, 13 * kMs);  // transit 11 ms: D = 1 ms
    CHECK(receiver.figures().jitter_seconds ==
          Approx(after_second + (0.001 - after_second) / 16.0).epsilon(1e-12));
}

TEST_CASE("iperf3 UDP receiver: the warm-up's figures are set apart and the jitter starts afresh",
          "[iperf3][udp]") {
    udp_receiver receiver;
    receive(receiver, 1, 0, 10 * kMs);
    receive(receiver, 3, 1 * kMs, 15 * kMs);
    receiver.end_warm_up();
    auto f = receiver.figures();
    CHECK(f.bytes == 0);
    CHECK(f.omitted_bytes == 200);
    CHECK(f.omitted_packets == 3);
    CHECK(f.omitted_errors == 1);
    CHECK(f.omitted_out_of_order == 0);
    CHECK(f.jitter_seconds == 0.0);
    receive(receiver, 4, 2 * kMs, 30 * kMs);  // transit 28 ms: a new reference, not D = 14 ms
    receive(receiver, 2, 2 * kMs, 30 * kMs);  // late: fills the warm-up's gap
    f = receiver.figures();
    CHECK(f.bytes == 200);
    CHECK(f.packets == 4);
    CHECK(f.errors == 0);
    CHECK(f.out_of_order == 1);
    CHECK(f.jitter_seconds == 0.0);
    CHECK(f.datagrams == 4);
}

TEST_CASE("iperf3 UDP receiver: the peer's largest sequence numbers neither wrap a count nor loop",
          "[iperf3][udp]") {
    constexpr std::uint64_t kMost = std::numeric_limits<std::uint64_t>::max();
    udp_receiver wide;
    receive(wide, kMost, 0, kMs, true);
    CHECK(wide.figures().packets == kMost);
    CHECK(wide.figures().errors == kMost - 1);
    receive(wide, kMost, 0, kMs, true);  // nothing is above it: out of order
    receive(wide, 0, 0, kMs, true);
    CHECK(wide.figures().packets == kMost);
    CHECK(wide.figures().errors == kMost - 3);
    CHECK(wide.figures().out_of_order == 2);

    udp_receiver narrow;
    receive(narrow, 0xffffffff, 0, kMs);
    CHECK(narrow.figures().packets == 0xffffffff);
    CHECK(narrow.figures().errors == 0xfffffffe);
}

TEST_CASE("iperf3 UDP receiver: a datagram too short for the header counts as bytes only", "[iperf3][udp]") {
    udp_receiver receiver;
    const std::array<std::uint8_t, 4> tiny{1, 2, 3, 4};
    receiver.on_datagram(tiny.size(), read_udp_header(tiny, false), kMs);
    CHECK(receiver.figures().bytes == 4);
    CHECK(receiver.figures().packets == 0);
    CHECK(receiver.figures().out_of_order == 0);
}
