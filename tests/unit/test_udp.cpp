// UDP mode's pure parts: the datagram and control-message codecs (golden bytes), the pacer (fake clock), the
// receiver's accounting (exact loss / reorder / duplicate / late / jitter / IPDV vectors), the adaptive rate
// controller (a simulated bottleneck) and the server's UDP limits.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <future>
#include <limits>
#include <random>
#include <thread>

#include "common/limits.hpp"
#include "common/protocol.hpp"
#include "common/receive_poll.hpp"
#include "common/udp_accounting.hpp"
#include "common/udp_pacer.hpp"
#include "common/udp_rate_control.hpp"
#include "common/udp_wire.hpp"
#include "tests/unit/hex.hpp"

using namespace speed;
using namespace speed::udp;
using speed::testing::from_hex;

namespace {

template <class T>
void check_round_trip(const T& msg, const std::vector<std::uint8_t>& golden) {
    CHECK(proto::encode(msg) == golden);
    const proto::decode_result decoded = proto::decode_frame(golden);
    REQUIRE(decoded.status == proto::decode_status::ok);
    CHECK(decoded.consumed == golden.size());
    REQUIRE(std::holds_alternative<T>(decoded.msg));
    CHECK(std::get<T>(decoded.msg) == msg);
}

}  // namespace

// ---- datagrams ----

TEST_CASE("UDP datagram header golden bytes", "[udp][wire]") {
    header h;
    h.type = datagram_type::data;
    h.stream = 0x0102;
    h.token = 0x1122334455667788ULL;
    h.sequence = 5;
    h.timestamp_ns = 0x0102030405060708ULL;
    const auto golden = from_hex("01 02 0102 1122334455667788 0000000000000005 0102030405060708");
    std::vector<std::uint8_t> out(kHeaderSize + 4, 0xee);
    write_header(out, h);
    CHECK(std::vector<std::uint8_t>(out.begin(), out.begin() + kHeaderSize) == golden);
    CHECK(out[kHeaderSize] == 0xee);  // writes nothing past the header
    REQUIRE(read_header(golden));
    CHECK(*read_header(golden) == h);
    CHECK(read_header(out) == h);  // a DATA datagram's filler after the header is ignored
}

TEST_CASE("UDP datagram headers that are short, of another version or an unknown type are refused",
          "[udp][wire]") {
    const auto good = from_hex("06 02 0000 1122334455667788 0000000000000001 0000000000000002");
    CHECK(read_header(good)->type == datagram_type::pong);
    CHECK_FALSE(read_header(std::span(good).first(kHeaderSize - 1)));
    auto other_version = good;
    other_version[1] = 1;  // before path cookies and DATA nonces
    CHECK_FALSE(read_header(other_version));
    auto unknown_type = good;
    unknown_type[0] = 7;
    CHECK_FALSE(read_header(unknown_type));
    unknown_type[0] = 0;
    CHECK_FALSE(read_header(unknown_type));
}

TEST_CASE("HELLO and HELLO_ACK golden bytes: the header and the path cookie, the same size", "[udp][wire]") {
    const header h{datagram_type::hello_ack, 2, 0x1122334455667788ULL, 3, 0x0102030405060708ULL};
    const auto golden =
        from_hex("03 02 0002 1122334455667788 0000000000000003 0102030405060708 c1c2c3c4c5c6c7c8");
    std::vector<std::uint8_t> out(kHandshakeSize + 2, 0xee);
    write_handshake(out, h, 0xc1c2c3c4c5c6c7c8ULL);
    CHECK(std::vector<std::uint8_t>(out.begin(), out.begin() + kHandshakeSize) == golden);
    CHECK(out[kHandshakeSize] == 0xee);
    CHECK(*read_header(golden) == h);
    CHECK(read_cookie(golden) == 0xc1c2c3c4c5c6c7c8ULL);
    CHECK_FALSE(read_cookie(std::span(golden).first(kHandshakeSize - 1)));
    // A first HELLO carries cookie 0, and is as large as the HELLO_ACK that answers it.
    const auto first_hello =
        from_hex("02 02 0000 1122334455667788 0000000000000000 0000000000000001 0000000000000000");
    std::vector<std::uint8_t> hello(kHandshakeSize);
    write_handshake(hello, {datagram_type::hello, 0, 0x1122334455667788ULL, 0, 1}, 0);
    CHECK(hello == first_hello);
    CHECK(read_cookie(hello) == 0U);
    CHECK(hello.size() == golden.size());
}

TEST_CASE("DATA golden bytes: the header, then the sender's nonce", "[udp][wire]") {
    const header h{datagram_type::data, 1, 0x1122334455667788ULL, 7, 0x0102030405060708ULL};
    const auto golden =
        from_hex("01 02 0001 1122334455667788 0000000000000007 0102030405060708 d1d2d3d4d5d6d7d8");
    std::vector<std::uint8_t> out(kDataPrefixSize + 4, 0xee);
    write_data_prefix(out, h, 0xd1d2d3d4d5d6d7d8ULL);
    CHECK(std::vector<std::uint8_t>(out.begin(), out.begin() + kDataPrefixSize) == golden);
    CHECK(out[kDataPrefixSize] == 0xee);  // the filler is the sender's
    CHECK(read_nonce(out) == 0xd1d2d3d4d5d6d7d8ULL);
    CHECK_FALSE(read_nonce(std::span(golden).first(kDataPrefixSize - 1)));
    CHECK(kMinDatagramBytes == kDataPrefixSize);
}

TEST_CASE("FEEDBACK datagram golden bytes", "[udp][wire]") {
    header h{datagram_type::feedback, 3, 0xa1a2a3a4a5a6a7a8ULL, 9, 1000};
    feedback body;
    body.packets_received = 100;
    body.expected = 102;
    body.bytes_received = 140000;
    body.socket_drops = 2;
    body.queue_delay_us = 500;
    body.echo_timestamp_ns = 0x0102030405060708ULL;
    body.echo_delay_us = 16;
    body.echo_nonce = 0xd1d2d3d4d5d6d7d8ULL;
    const auto golden = from_hex(
        "04 02 0003 a1a2a3a4a5a6a7a8 0000000000000009 00000000000003e8"
        "0000000000000064 0000000000000066 00000000000222e0 00000002 000001f4 0102030405060708 00000010"
        "d1d2d3d4d5d6d7d8");
    std::vector<std::uint8_t> out(kFeedbackSize);
    write_feedback(out, h, body);
    CHECK(out == golden);
    CHECK(*read_header(golden) == h);
    REQUIRE(read_feedback(golden));
    CHECK(*read_feedback(golden) == body);
    CHECK_FALSE(read_feedback(std::span(golden).first(kFeedbackSize - 1)));
}

// ---- control messages ----

TEST_CASE("UDP control messages golden bytes", "[udp][protocol]") {
    check_round_trip(proto::udp_setup{0x1122334455667788ULL, 5201, 1'000'000'000},
                     from_hex("30 00000012 1122334455667788 1451 000000003b9aca00"));
    check_round_trip(proto::udp_echo_request{}, from_hex("31 00000000"));

    proto::udp_sender_report sent;
    sent.streams = {{3, 4200}};
    check_round_trip(sent, from_hex("32 00000012 0001 0000000000000003 0000000000001068"));

    proto::udp_interval_report interval;
    interval.index = 1;
    interval.start_ns = 0;
    interval.end_ns = 1'000'000'000;
    interval.omitted = false;
    interval.streams = {{16, 2, 1, 100}};
    check_round_trip(interval,
                     from_hex("34 00000037 00000001 0000000000000000 000000003b9aca00 00 0001"
                              "0000000000000010 0000000000000002 0000000000000001 0000000000000064"));

    proto::udp_receiver_report received;
    received.window_ns = 1'000'000'000;
    received.ipdv_p50_ns = 1;
    received.ipdv_p90_ns = 2;
    received.ipdv_p99_ns = 3;
    received.ipdv_pairs = 17;
    received.ipdv_pairs_excluded = 18;
    received.streams = {{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}};
    check_round_trip(received, from_hex("33 00000092 000000003b9aca00 0000000000000000 0000000000000000"
                                        "0000000000000001 0000000000000002 0000000000000003"
                                        "0000000000000011 0000000000000012 0001"
                                        "0000000000000001 0000000000000002 0000000000000003 0000000000000004"
                                        "0000000000000005 0000000000000006 0000000000000007 0000000000000008"
                                        "0000000000000009 000000000000000a"));
}

TEST_CASE("malformed UDP control messages are refused", "[udp][protocol]") {
    // A zero token or port cannot be a real setup.
    CHECK(proto::decode_frame(from_hex("30 00000012 0000000000000000 1451 0000000000000000")).status ==
          proto::decode_status::bad);
    CHECK(proto::decode_frame(from_hex("30 00000012 0000000000000001 0000 0000000000000000")).status ==
          proto::decode_status::bad);
    // A stream count larger than the bytes that follow must not allocate.
    CHECK(proto::decode_frame(from_hex("32 00000012 0080 0000000000000003 0000000000001068")).status ==
          proto::decode_status::bad);
    // Trailing bytes.
    CHECK(proto::decode_frame(from_hex("31 00000001 00")).status == proto::decode_status::bad);
    // An interval that ends before it starts, and an omitted flag that is not 0 or 1.
    CHECK(proto::decode_frame(from_hex("34 00000017 00000001 0000000000000002 0000000000000001 00 0000"))
              .status == proto::decode_status::bad);
    CHECK(proto::decode_frame(from_hex("34 00000017 00000001 0000000000000001 0000000000000002 02 0000"))
              .status == proto::decode_status::bad);
}

// ---- pacer ----

TEST_CASE("the pacer's token bucket, step by step", "[udp][pacer]") {
    // 8 Gbit/s = 1 byte per ns; the bucket holds 1000 ns worth (1000 bytes) and starts with 100 bytes.
    pacer p(8e9, 1000, 100, 0);
    CHECK(p.depth_bytes() == 1000);
    CHECK(p.allowed(0, 50) == 2);
    p.consume(100);
    CHECK(p.allowed(0, 50) == 0);
    CHECK(p.wait_ns(0, 50) == 50);
    CHECK(p.allowed(50, 50) == 1);
    // A sender that shows up late gets one bucket, not the whole backlog: the rest is owed.
    CHECK(p.allowed(10'000, 50) == 20);
    CHECK(p.debt_bytes() == 9000);
    // Debt comes back at a quarter of the rate on top of it: 100 ns later, 100 + 25 bytes more.
    p.consume(1000);
    CHECK(p.allowed(10'100, 1) == 125);
    CHECK(p.debt_bytes() == 8975);
    // Halving the rate halves the bucket; the credit above it and the debt are dropped.
    p.set_rate(4e9, 10'100);
    CHECK(p.depth_bytes() == 500);
    CHECK(p.allowed(10'100, 50) == 2);
    CHECK(p.debt_bytes() == 0);
    // A time that goes backwards earns nothing.
    p.consume(100);
    CHECK(p.allowed(9'000, 50) == 0);
    // The bucket never holds less than the minimum, however low the rate.
    pacer slow(1000, 1'000'000, 2944, 0);
    CHECK(slow.depth_bytes() == 2944);
}

TEST_CASE("a paced sender on a busy fake clock hits the rate within 1 % and never bursts past the bucket",
          "[udp][pacer]") {
    constexpr double kRate = 100e6;  // bits/s
    constexpr std::uint32_t kDatagram = 1400;
    constexpr std::int64_t kBurstNs = 1'000'000;
    constexpr std::int64_t kStallNs = 5'000'000;  // a descheduled thread: 5 ms, more than the bucket holds
    std::mt19937 random(7);
    std::uniform_int_distribution<std::int64_t> oversleep_ns(0, 80'000);  // timer wake-ups are late
    std::uniform_int_distribution<int> stall(0, 199);                     // and now and then very late
    pacer p(kRate, kBurstNs, 2 * kDatagram, 0);
    std::int64_t now = 0;
    std::uint64_t sent_bytes = 0;
    std::uint64_t deepest_bucket = 0;
    constexpr std::int64_t kTestNs = 2'000'000'000;
    while (now < kTestNs) {
        const std::uint64_t n = p.allowed(now, kDatagram);
        CHECK(n * kDatagram <= p.depth_bytes());
        p.consume(n * kDatagram);
        sent_bytes += n * kDatagram;
        deepest_bucket = std::max(deepest_bucket, p.depth_bytes());
        now += std::max<std::int64_t>(p.wait_ns(now, kDatagram), 1) + oversleep_ns(random);
        if (stall(random) == 0) {
            now += kStallNs;
        }
    }
    const double achieved = static_cast<double>(sent_bytes) * 8e9 / static_cast<double>(now);
    CHECK(achieved == Approx(kRate).epsilon(0.01));
    // Stalls one wake-up in 200 (one every ~30 ms) move the time-weighted gap only a little: the bucket
    // stays below 3 ms (30,079 bytes at most here), far from the 1.25 stalls' worth (78,125 bytes) it would
    // take after stalls every time.
    CHECK(deepest_bucket < 37'500);
    // 200 ms of punctual wake-ups later the bucket is back to 1 ms at 100 Mbit/s: no 100 ms bursts.
    for (const std::int64_t end = now + 200'000'000; now < end;) {
        p.consume(p.allowed(now, kDatagram) * kDatagram);
        now += std::max<std::int64_t>(p.wait_ns(now, kDatagram), 1);
    }
    CHECK(p.depth_bytes() == 12'500);
}

// A host whose CPUs are all busy wakes the sender milliseconds after its timer, every time. With the bucket
// fixed at 2 ms a real sender beside six busy loops on two cores sent 34-43 of 50 Mbit/s on loopback
// (docs/methodology.md, "Pacing"); the bucket that follows the wake gap sends it all.
TEST_CASE("a sender that wakes up 3 ms late every time still gets the rate: its bucket grows to the gap",
          "[udp][pacer]") {
    constexpr double kRate = 50e6;  // 6,250 bytes per ms
    constexpr std::uint32_t kDatagram = 1400;
    constexpr std::int64_t kLateNs = 3'000'000;
    pacer p(kRate, kSenderBurstNs, 2 * kDatagram, 0);
    std::int64_t now = 0;
    std::uint64_t sent_bytes = 0;
    std::uint64_t largest_burst = 0;
    while (now < 2'000'000'000) {
        const std::uint64_t n = p.allowed(now, kDatagram);
        p.consume(n * kDatagram);
        sent_bytes += n * kDatagram;
        largest_burst = std::max(largest_burst, n * kDatagram);
        now += std::max<std::int64_t>(p.wait_ns(now, kDatagram), 1) + kLateNs;
    }
    const double achieved = static_cast<double>(sent_bytes) * 8e9 / static_cast<double>(now);
    CHECK(achieved == Approx(kRate).epsilon(0.01));
    // The gap is 3 ms plus the wait for the next datagram (at most 224 us): the bucket holds 1.25 of it,
    // 23,437 to 25,187 bytes instead of the 12,500 of 2 ms.
    CHECK(p.wake_gap_ns() >= 3'000'000);
    CHECK(p.wake_gap_ns() <= 3'224'000);
    CHECK(p.depth_bytes() >= 23'437);
    CHECK(p.depth_bytes() <= 25'187);
    CHECK(largest_burst <= 25'187);
}

TEST_CASE("a sender that wakes up 50 ms late every time gets a 20 ms bucket and falls short, as it must",
          "[udp][pacer]") {
    constexpr double kRate = 50e6;
    constexpr std::uint32_t kDatagram = 1400;
    pacer p(kRate, kSenderBurstNs, 2 * kDatagram, 0);
    std::int64_t now = 0;
    std::uint64_t sent_bytes = 0;
    while (now < 2'000'000'000) {
        const std::uint64_t n = p.allowed(now, kDatagram);
        CHECK(n * kDatagram <= 125'000);  // 20 ms at 50 Mbit/s
        p.consume(n * kDatagram);
        sent_bytes += n * kDatagram;
        now += std::max<std::int64_t>(p.wait_ns(now, kDatagram), 1) + 50'000'000;
    }
    CHECK(p.depth_bytes() == 125'000);
    // 20 ms of every 50 (plus the debt repaid inside the bucket): no burst of a whole gap's worth.
    const double achieved = static_cast<double>(sent_bytes) * 8e9 / static_cast<double>(now);
    CHECK(achieved < 0.5 * kRate);
    CHECK(achieved > 0.35 * kRate);
}

// ---- accounting ----

TEST_CASE("receiver accounting: loss by gaps, reordering, duplicates and the exact identity",
          "[udp][accounting]") {
    receiver_accounting acct(64);
    const auto on = [&acct](std::uint64_t sequence) { return acct.on_datagram(sequence, 100, 0, 1000); };
    CHECK(on(0) == arrival::in_order);
    CHECK(on(1) == arrival::in_order);
    CHECK(on(2) == arrival::in_order);
    CHECK(on(4) == arrival::in_order);  // 3 is missing for now
    CHECK(acct.counters().gaps() == 1);
    CHECK(on(3) == arrival::out_of_order);
    CHECK(acct.counters().gaps() == 0);
    CHECK(on(3) == arrival::duplicate);
    const receiver_counters at_window_end = acct.counters();
    CHECK(on(5) == arrival::in_order);
    CHECK(on(9) == arrival::in_order);
    CHECK(on(7) == arrival::out_of_order);

    const receiver_counters& c = acct.counters();
    CHECK(c.packets_received == 8);
    CHECK(c.bytes_received == 800);
    CHECK(c.expected == 10);
    CHECK(c.gaps() == 2);  // 6 and 8
    CHECK(c.out_of_order == 2);
    CHECK(c.duplicates == 1);
    CHECK(c.first_arrival_ns == 1000);

    // The sender sent 12 (10 and 11 vanished at the tail, where gaps cannot see them).
    const auto result = finalize_stream(at_window_end, c, 12);
    REQUIRE(result.totals);
    const stream_totals& t = *result.totals;
    CHECK(t.packets_sent == 12);
    CHECK(t.packets_received == 8);
    CHECK(t.lost_packets == 4);
    CHECK(t.packets_received + t.lost_packets == t.packets_sent);
    CHECK(t.late_packets == 3);  // 5, 9 and 7 arrived after the window closed: counted, not lost
    CHECK(t.out_of_order == 2);
    CHECK(t.duplicates == 1);
    CHECK(lost_percent(t.lost_packets, t.packets_sent) == Approx(100.0 / 3.0));
    CHECK(lost_percent(0, 0) == 0.0);

    // A sender that claims fewer datagrams than arrived is caught.
    const auto lie = finalize_stream(at_window_end, c, 9);
    CHECK_FALSE(lie.totals);
    CHECK_THAT(lie.error, Catch::Contains("sequence 9"));
}

TEST_CASE("receiver accounting: the sequence window wraps and reordering beyond it counts as duplicate",
          "[udp][accounting]") {
    receiver_accounting acct(64);
    for (std::uint64_t s = 0; s < 64; ++s) {
        acct.on_datagram(s, 1, 0, 0);
    }
    CHECK(acct.on_datagram(64, 1, 0, 0) == arrival::in_order);  // reuses the slot of 0
    CHECK(acct.on_datagram(0, 1, 0, 0) == arrival::duplicate);  // 65 behind: too old to tell
    CHECK(acct.on_datagram(1, 1, 0, 0) == arrival::duplicate);  // 64 behind: a real duplicate
    CHECK(acct.counters().packets_received == 65);

    receiver_accounting jump(64);
    jump.on_datagram(0, 1, 0, 0);
    jump.on_datagram(100, 1, 0, 0);                                 // clears the whole ring
    CHECK(jump.on_datagram(10, 1, 0, 0) == arrival::duplicate);     // 91 behind
    CHECK(jump.on_datagram(50, 1, 0, 0) == arrival::out_of_order);  // 51 behind, never seen
    CHECK(jump.on_datagram(50, 1, 0, 0) == arrival::duplicate);
    CHECK(jump.on_datagram(36, 1, 0, 0) == arrival::duplicate);     // 65 behind
    CHECK(jump.on_datagram(37, 1, 0, 0) == arrival::out_of_order);  // 64 behind
    CHECK(jump.counters().packets_received == 4);
    CHECK(jump.counters().duplicates == 3);
    CHECK(jump.counters().gaps() == 97);
}

namespace {

constexpr std::uint64_t kLastSequence = std::numeric_limits<std::uint64_t>::max();
constexpr std::int64_t kMaxNs = std::numeric_limits<std::int64_t>::max();
constexpr std::int64_t kMinNs = std::numeric_limits<std::int64_t>::min();

// Runs `work` on a thread of its own and says whether it returned within 10 s. The wedge this guards against
// spins forever; the work itself takes microseconds, so 10 s is no speed requirement, only "it returned".
// A thread still spinning then is left behind (the test has failed; the process ends with it).
bool returns(std::function<void()> work) {
    std::packaged_task<void()> task(std::move(work));
    auto done = task.get_future();
    std::thread runner(std::move(task));
    if (done.wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
        runner.detach();
        return false;
    }
    runner.join();
    return true;
}

}  // namespace

TEST_CASE("receiver accounting: 2^64-1 as the first sequence number returns at once and is dropped",
          "[udp][accounting]") {
    auto acct = std::make_shared<receiver_accounting>(64);
    arrival kind = arrival::in_order;
    REQUIRE(returns([acct, &kind] { kind = acct->on_datagram(kLastSequence, 100, 0, 1000); }));
    CHECK(kind == arrival::dropped);
    CHECK(acct->counters().drops.implausible_sequence == 1);
    CHECK(acct->counters().drops.total() == 1);
    CHECK(acct->counters().expected == 0);
    CHECK(acct->counters().packets_received == 0);
    // The legitimate stream that follows is counted exactly.
    for (std::uint64_t s = 0; s < 10; ++s) {
        CHECK(acct->on_datagram(s, 100, 0, 1000) == arrival::in_order);
    }
    const auto result = finalize_stream(acct->counters(), acct->counters(), 12);
    REQUIRE(result.totals);
    CHECK(result.totals->packets_received == 10);
    CHECK(result.totals->lost_packets == 2);
    CHECK(result.totals->packets_received + result.totals->lost_packets == 12);
    CHECK(result.totals->duplicates == 0);
}

TEST_CASE("receiver accounting: 0 then 2^64-1 returns at once, is dropped, and cannot wrap expected to 0",
          "[udp][accounting]") {
    auto acct = std::make_shared<receiver_accounting>(64);
    CHECK(acct->on_datagram(0, 100, 0, 1000) == arrival::in_order);
    REQUIRE(returns([acct] {
        acct->on_datagram(kLastSequence, 100, 0, 1000);
        acct->on_datagram(kLastSequence, 100, 0, 1000);
        acct->on_datagram(0, 100, 0, 1000);
    }));
    CHECK(acct->counters().drops.implausible_sequence == 2);
    CHECK(acct->counters().expected == 1);
    CHECK(acct->counters().packets_received == 1);
    CHECK(acct->counters().duplicates == 1);
    CHECK(acct->on_datagram(1, 100, 0, 1000) == arrival::in_order);
    CHECK(acct->counters().gaps() == 0);
}

TEST_CASE("receiver accounting: the largest usable sequence numbers clear the ring without looping",
          "[udp][accounting]") {
    // Without a rate bound only 2^64-1 is refused: 2^64-2 is the last number expected can follow.
    auto acct = std::make_shared<receiver_accounting>(64);
    REQUIRE(returns([acct] {
        acct->on_datagram(std::uint64_t{1} << 63, 1, 0, 0);
        acct->on_datagram(kLastSequence - 1, 1, 0, 0);
        acct->on_datagram(kLastSequence - 70, 1, 0, 0);  // 69 behind: older than the window
        acct->on_datagram(kLastSequence - 2, 1, 0, 0);   // 1 behind, never seen
    }));
    const receiver_counters& c = acct->counters();
    CHECK(c.expected == kLastSequence);
    CHECK(c.packets_received == 3);
    CHECK(c.duplicates == 1);
    CHECK(c.out_of_order == 1);
    CHECK(c.drops.total() == 0);
}

TEST_CASE("receiver accounting: DATA before ready, of a wrong length or beyond the sender's rate is dropped",
          "[udp][accounting]") {
    receiver_accounting acct(64, data_limits{1000, true});
    CHECK(acct.on_datagram(0, 1000, 0, 500) == arrival::dropped);  // before ready
    // From 1,000 ns at 8 Mbit/s with 1,000-byte datagrams: 1,000 datagrams a second; twice that plus the
    // 64-number window is plausible.
    acct.ready(1000, 8e6);
    CHECK(acct.max_plausible_sequence(1000) == 64);
    CHECK(acct.max_plausible_sequence(1'000'001'000) == 2064);
    CHECK(acct.max_plausible_sequence(kMinNs) == 64);                // a time before ready: the window only
    CHECK(acct.on_datagram(0, 999, 0, 2000) == arrival::dropped);    // wrong length
    CHECK(acct.on_datagram(0, 1001, 0, 2000) == arrival::dropped);   // wrong length
    CHECK(acct.on_datagram(65, 1000, 0, 2000) == arrival::dropped);  // implausible this early
    CHECK(acct.on_datagram(0, 1000, 0, 2000) == arrival::in_order);
    CHECK(acct.on_datagram(64, 1000, 0, 2000) == arrival::in_order);
    CHECK(acct.on_datagram(2065, 1000, 0, 1'000'001'000) == arrival::dropped);
    CHECK(acct.on_datagram(2064, 1000, 0, 1'000'001'000) == arrival::in_order);
    const receiver_counters& c = acct.counters();
    CHECK(c.drops == drop_counters{1, 2, 2});
    CHECK(c.packets_received == 3);
    CHECK(c.bytes_received == 3000);
    CHECK(c.expected == 2065);
}

TEST_CASE("receiver accounting: timestamps at the ends of the int64 range saturate", "[udp][accounting]") {
    receiver_accounting acct(64);
    acct.on_datagram(0, 100, kMinNs, 0);       // transit 0 - INT64_MIN saturates to INT64_MAX
    acct.on_datagram(1, 100, kMaxNs, 0);       // transit -INT64_MAX
    acct.on_datagram(2, 100, kMaxNs, kMinNs);  // transit saturates to INT64_MIN
    CHECK(std::isfinite(acct.counters().jitter_ns));
    CHECK(acct.ipdv().count() == 2);
    const std::size_t last = ipdv_histogram::kBucketCount - 1;
    CHECK(acct.ipdv().percentile(1.0) ==
          ipdv_histogram::bucket_start(last) + ipdv_histogram::bucket_width(last) / 2);
    // The recent minimum is the overall one: no queueing, and no overflow in the difference.
    CHECK(acct.take_queue_delay_ns() == 0);
    CHECK(acct.counters().packets_received == 3);
}

TEST_CASE("finalize_stream: final counters behind the window's (a stream that never drained) are an error",
          "[udp][accounting]") {
    receiver_counters at_window_end;
    at_window_end.packets_received = 5;
    at_window_end.expected = 5;
    const receiver_counters never_published;  // what a flow that did not close leaves
    const auto result = finalize_stream(at_window_end, never_published, 5);
    CHECK_FALSE(result.totals);
    CHECK_THAT(result.error, Catch::Contains("did not drain"));
}

TEST_CASE("receiver accounting: RFC 3550 jitter and IPDV of consecutive sequence numbers",
          "[udp][accounting]") {
    receiver_accounting acct;
    acct.on_datagram(0, 100, 0, 1000);    // transit 1000
    acct.on_datagram(1, 100, 100, 1116);  // transit 1016: D = 16, J = 1, IPDV 16
    CHECK(acct.counters().jitter_ns == 1.0);
    acct.on_datagram(2, 100, 200, 1200);  // transit 1000: D = 16, J = 1 + 15/16, IPDV 16
    CHECK(acct.counters().jitter_ns == 1.0 + 15.0 / 16.0);
    acct.on_datagram(4, 100, 400,
                     1450);  // transit 1050: D = 50, J += (50 - J) / 16; 3 is missing: no IPDV
    const double j = (1.0 + 15.0 / 16.0) + (50.0 - (1.0 + 15.0 / 16.0)) / 16.0;
    CHECK(acct.counters().jitter_ns == j);
    acct.on_datagram(4, 100, 400, 9999);  // a duplicate changes nothing
    CHECK(acct.counters().jitter_ns == j);
    acct.on_datagram(5, 100, 500, 1530);  // transit 1030: IPDV 20
    CHECK(acct.ipdv().count() == 3);
    CHECK(acct.counters().ipdv_pairs == 3);
    CHECK(acct.ipdv().percentile(0.5) == 16);
    CHECK(acct.ipdv().percentile(0.99) == 20);

    // Queue delay: the smallest transit since the last look minus the smallest ever.
    CHECK(acct.take_queue_delay_ns() == 0);  // min 1000 both
    acct.on_datagram(6, 100, 600, 1700);     // transit 1100
    acct.on_datagram(7, 100, 700, 1780);     // transit 1080
    CHECK(acct.take_queue_delay_ns() == 80);
    CHECK(acct.take_queue_delay_ns() == 0);  // nothing since
}

TEST_CASE("IPDV histogram buckets and percentiles", "[udp][accounting]") {
    CHECK(ipdv_histogram::bucket_of(0) == 0);
    CHECK(ipdv_histogram::bucket_of(127) == 127);
    CHECK(ipdv_histogram::bucket_of(128) == 128);
    CHECK(ipdv_histogram::bucket_of(129) == 128);
    CHECK(ipdv_histogram::bucket_of(130) == 129);
    CHECK(ipdv_histogram::bucket_of(255) == 191);
    CHECK(ipdv_histogram::bucket_of(256) == 192);
    CHECK(ipdv_histogram::bucket_start(192) == 256);
    CHECK(ipdv_histogram::bucket_width(192) == 4);
    CHECK(ipdv_histogram::bucket_of(~std::uint64_t{0}) == ipdv_histogram::kBucketCount - 1);
    // Every value lies in its bucket, and buckets are at most 1/64 of their start wide.
    for (std::uint64_t v : {128ULL, 1000ULL, 65'535ULL, 1'000'000ULL, 123'456'789ULL, 1ULL << 41}) {
        const auto b = ipdv_histogram::bucket_of(v);
        CHECK(ipdv_histogram::bucket_start(b) <= v);
        CHECK(v < ipdv_histogram::bucket_start(b) + ipdv_histogram::bucket_width(b));
        CHECK(ipdv_histogram::bucket_width(b) * 64 <= ipdv_histogram::bucket_start(b));
    }

    ipdv_histogram h;
    CHECK(h.percentile(0.5) == 0);
    for (std::uint64_t v = 1; v <= 100; ++v) {
        h.add(v);
    }
    CHECK(h.percentile(0.5) == 50);
    CHECK(h.percentile(0.9) == 90);
    CHECK(h.percentile(0.99) == 99);
    CHECK(h.percentile(1.0) == 100);
    ipdv_histogram other;
    other.add(1000);  // bucket [1000, 1008)
    h.merge(other);
    CHECK(h.count() == 101);
    CHECK(h.percentile(1.0) == 1004);
}

// ---- adaptive rate ----

namespace {

// A bottleneck of `capacity` bits/s in front of the receiver: what is sent above it overflows the
// receiver's socket; `random_loss` of everything vanishes on the way regardless.
struct simulated_path {
    double capacity = 1e9;
    double random_loss = 0.0;
    double queue_delay_ns_when_full = 0.0;
    // From this time on (seconds; 0 = never) the bottleneck is `later_capacity`.
    double change_after_seconds = 0.0;
    double later_capacity = 0.0;
};

// Runs the controller against the path for `seconds`, feedback every 10 ms, and returns the rates it chose.
std::vector<double> simulate(rate_controller& controller, const simulated_path& path, double seconds) {
    constexpr std::int64_t kPeriodNs = 10'000'000;
    constexpr double kDatagramBits = 1400 * 8;
    feedback fb;
    std::vector<double> rates;
    double expected = 0;
    double received = 0;
    for (std::int64_t now = kPeriodNs; now <= static_cast<std::int64_t>(seconds * 1e9); now += kPeriodNs) {
        const double rate = controller.bits_per_second();
        rates.push_back(rate);
        const bool changed =
            path.change_after_seconds > 0 && static_cast<double>(now) >= path.change_after_seconds * 1e9;
        const double capacity = changed ? path.later_capacity : path.capacity;
        const double arriving = rate * (1.0 - path.random_loss);
        const double delivered = std::min(arriving, capacity);
        expected += rate * 0.01 / kDatagramBits;
        received += delivered * 0.01 / kDatagramBits;
        fb.expected = static_cast<std::uint64_t>(expected);
        fb.packets_received = static_cast<std::uint64_t>(received);
        fb.bytes_received = fb.packets_received * 1400;
        if (arriving > capacity) {
            ++fb.socket_drops;
        }
        fb.queue_delay_us =
            arriving > capacity * 0.99 ? static_cast<std::uint32_t>(path.queue_delay_ns_when_full / 1000) : 0;
        fb.echo_timestamp_ns = static_cast<std::uint64_t>(now - 1'000'000);  // 1 ms round trip
        fb.echo_delay_us = 0;
        controller.on_feedback(fb, now, now);
    }
    return rates;
}

double mean_of_last(const std::vector<double>& values, std::size_t count) {
    double sum = 0;
    for (std::size_t i = values.size() - count; i < values.size(); ++i) {
        sum += values[i];
    }
    return sum / static_cast<double>(count);
}

}  // namespace

TEST_CASE("adaptive rate: starts low, finds the bottleneck and stays just under it", "[udp][rate]") {
    rate_controller controller(rate_limits{10e6, 1e6, 0});
    CHECK(controller.bits_per_second() == 10e6);
    const auto rates = simulate(controller, simulated_path{2e9, 0.0, 0.0}, 4.0);
    CHECK_FALSE(controller.in_startup());
    // Startup doubles per round trip (10 ms here): 10 Mbit/s to 2 Gbit/s in well under a second.
    const auto first_above =
        std::find_if(rates.begin(), rates.end(), [](double r) { return r >= 1e9; }) - rates.begin();
    CHECK(first_above < 20);
    const double settled = mean_of_last(rates, 200);
    CHECK(settled > 0.85 * 2e9);
    CHECK(settled < 1.0 * 2e9);
    // Over the last two seconds the rate sits above the bottleneck only briefly.
    const auto over = std::count_if(rates.end() - 200, rates.end(), [](double r) { return r > 2e9; });
    CHECK(over < 200 / 8);
    CHECK(controller.round_trip_ns() == 1'000'000);
}

TEST_CASE("adaptive rate: random loss below 5 % without queueing does not throttle", "[udp][rate]") {
    rate_controller controller(rate_limits{10e6, 1e6, 500e6});
    simulate(controller, simulated_path{1e12, 0.02, 0.0}, 2.0);
    CHECK(controller.bits_per_second() == 500e6);  // reached the cap
}

TEST_CASE("adaptive rate: a growing queue is congestion even before anything is lost", "[udp][rate]") {
    rate_controller controller(rate_limits{10e6, 1e6, 0});
    // The bottleneck queues (10 ms when full) and never drops: only the delay signal can stop the growth.
    simulated_path path{1e9, 0.0, 10e6};
    feedback fb;
    std::int64_t now = 0;
    for (int i = 0; i < 400; ++i) {
        now += 10'000'000;
        const double rate = controller.bits_per_second();
        fb.packets_received += static_cast<std::uint64_t>(std::min(rate, path.capacity) * 0.01 / 11200);
        fb.expected = fb.packets_received;
        fb.bytes_received = fb.packets_received * 1400;
        fb.queue_delay_us = rate > path.capacity ? 10'000 : 0;
        controller.on_feedback(fb, now, now);
    }
    CHECK_FALSE(controller.in_startup());
    CHECK(controller.bits_per_second() < 1.05e9);
}

// What made speedcli's unpaced loopback rate swing between rounds: on a busy two-core host the receiver is
// descheduled for a few milliseconds, its queue delay jumps and it reads only part of a period's datagrams.
// The rate is cut either way; the question is how far and for how long.
TEST_CASE("adaptive rate: a receiver descheduled for most of one period costs a cut, not the path's rate",
          "[udp][rate]") {
    constexpr double kCapacity = 2e9;
    constexpr std::int64_t kPeriodNs = 10'000'000;
    rate_controller controller(rate_limits{10e6, 1e6, 0});
    feedback fb;
    std::int64_t now = 0;
    auto period = [&](double delivered_share, std::uint32_t queue_delay_us) {
        now += kPeriodNs;
        const double delivered = std::min(controller.bits_per_second(), kCapacity) * delivered_share;
        fb.packets_received += static_cast<std::uint64_t>(delivered * 0.01 / 11200);
        fb.expected = fb.packets_received;
        fb.bytes_received = fb.packets_received * 1400;
        fb.queue_delay_us = queue_delay_us;
        if (controller.bits_per_second() > kCapacity) {
            ++fb.socket_drops;
        }
        controller.on_feedback(fb, now, now);
    };
    for (int i = 0; i < 300; ++i) {
        period(1.0, 0);
    }
    // What the path carried in the periods before (the rate sits just under the bottleneck, or at it).
    const double carried = std::min(controller.bits_per_second(), kCapacity);
    REQUIRE(carried > 0.8 * kCapacity);
    // 7 ms of the 10 ms period without reading: 30 % delivered, 8 ms of queueing.
    period(0.3, 8'000);
    // The cut is to 85 % of what the path carried in the last 200 ms, not of the stalled period's 30 %.
    CHECK(controller.bits_per_second() >= 0.85 * 0.99 * carried);
    CHECK(controller.bits_per_second() <= 0.85 * kCapacity);
    // The receiver catches up with its backlog in the next period, then all is as before.
    period(1.7, 0);
    for (int i = 0; i < 10; ++i) {
        period(1.0, 0);
    }
    // A round trip's hold, then +10 % per round trip back to 95 % of the rate before the cut.
    CHECK(controller.bits_per_second() >= 0.95 * 0.99 * carried);
}

TEST_CASE("adaptive rate: a path that really slowed down is followed once the memory of its rate expires",
          "[udp][rate]") {
    rate_controller controller(rate_limits{10e6, 1e6, 0});
    // 2 Gbit/s for 2 s, then a bottleneck of 500 Mbit/s (another flow took the rest).
    const auto rates = simulate(controller, simulated_path{2e9, 0.0, 0.0, 2.0, 5e8}, 2.5);
    CHECK(rates[199] > 1.7e9);
    // Half a second later the rate sits at the new bottleneck, above it only briefly.
    CHECK(mean_of_last(rates, 20) < 5.1e8);
    CHECK(mean_of_last(rates, 20) > 0.85 * 0.95 * 5e8);
    const auto over = std::count_if(rates.end() - 20, rates.end(), [](double r) { return r > 5e8; });
    CHECK(over < 20 / 4);
}

TEST_CASE("adaptive rate: a receiver that goes silent halves the rate per silent period", "[udp][rate]") {
    rate_controller controller(rate_limits{800e6, 1e6, 0});
    CHECK_FALSE(controller.on_silence(0, 29'999'999));  // 30 ms is the shortest silence that counts
    CHECK(controller.on_silence(0, 30'000'000) == 400e6);
    CHECK_FALSE(controller.on_silence(0, 59'999'999));  // once per silent period
    CHECK(controller.on_silence(0, 60'000'000) == 200e6);
    CHECK(controller.in_startup());  // recovers as fast as at the start
    // Feedback at 100 ms restarts the clock.
    CHECK_FALSE(controller.on_silence(100'000'000, 120'000'000));
    CHECK(controller.on_silence(100'000'000, 130'000'000) == 100e6);
}

// ---- limits ----

TEST_CASE("adaptive rate: timestamps at the ends of the int64 range saturate", "[udp][rate]") {
    rate_controller controller({10e6, 1e6, 0});
    // A silence from the far past to the far future is a silence: the rate halves.
    REQUIRE(controller.on_silence(kMinNs, kMaxNs));
    CHECK(controller.bits_per_second() == 5e6);
    feedback fb;
    fb.echo_timestamp_ns = std::numeric_limits<std::uint64_t>::max();  // -1 as a time: a round trip of 2^63
    fb.echo_delay_us = std::numeric_limits<std::uint32_t>::max();
    controller.on_feedback(fb, kMinNs, kMaxNs);
    CHECK(controller.round_trip_ns() == 0);  // an impossible round trip is no sample
    fb.packets_received = 1;
    controller.on_feedback(fb, kMaxNs, kMaxNs);  // a feedback period of (nearly) 2^64 ns
    CHECK(std::isfinite(controller.bits_per_second()));
}

TEST_CASE("adaptive rate: a receiver claiming any delivered rate cannot drive the rate past the ceiling",
          "[udp][rate]") {
    rate_controller controller({10e6, 1e6, 0});
    feedback fb;
    std::int64_t now = 0;
    for (int i = 0; i < 5000; ++i) {
        now += 10'000'000;
        fb.bytes_received += std::uint64_t{1} << 50;
        fb.packets_received += 1;
        fb.expected = fb.packets_received;
        controller.on_feedback(fb, now, now);
    }
    CHECK(controller.bits_per_second() <= 1e13);
    // The pacer takes that rate without undefined conversions.
    pacer p(controller.bits_per_second(), 2'000'000, 2000, 0);
    CHECK(p.depth_bytes() > 0);
    CHECK(p.wait_ns(0, std::numeric_limits<std::uint64_t>::max() / 2) > 0);
}

TEST_CASE("UDP requests: length bounds, the UDP bitrate cap and --no-udp", "[udp][limits]") {
    server_limits limits;
    proto::test_request request;
    request.proto = proto::transport::udp;
    request.udp_payload_bytes = 1472;
    CHECK_FALSE(validate_request(request, limits));
    request.bitrate = 1'000'000'001;  // above the default UDP cap of 1 Gbit/s
    CHECK(validate_request(request, limits)->code == proto::error_code::limit_exceeded);
    limits.max_udp_bitrate = 0;
    CHECK_FALSE(validate_request(request, limits));

    request.udp_payload_bytes = kMinDatagramBytes - 1;
    CHECK(validate_request(request, limits)->code == proto::error_code::protocol_error);
    request.udp_payload_bytes = kMaxDatagramBytes + 1;
    CHECK(validate_request(request, limits)->code == proto::error_code::protocol_error);

    request.udp_payload_bytes = 1400;
    limits.udp = false;
    const auto refusal = validate_request(request, limits);
    REQUIRE(refusal);
    CHECK(refusal->code == proto::error_code::unsupported);
    CHECK_THAT(refusal->message, Catch::Contains("UDP"));
}

// The case the review found: a path that reorders. RFC 5481 pairs consecutive sequence numbers, so every
// pair counts whichever of the two arrived first; pairing consecutive arrivals only would have kept one.
TEST_CASE("receiver accounting: IPDV pairs consecutive sequence numbers whatever their arrival order",
          "[udp][accounting]") {
    receiver_accounting acct;
    // Sent 10 ns apart; transits 1000, 1030, 1010, 1000, 1020, 1005 for sequences 0..5.
    // Arrival order: 0 (1000), 2 (1030), 3 (1030), 1 (1040), 5 (1055), 4 (1060).
    acct.on_datagram(0, 100, 0, 1000);
    acct.on_datagram(2, 100, 20, 1030);
    acct.on_datagram(3, 100, 30, 1030);
    acct.on_datagram(1, 100, 10, 1040);
    acct.on_datagram(5, 100, 50, 1055);
    acct.on_datagram(4, 100, 40, 1060);
    // |IPDV| by sequence: (0,1) 30, (1,2) 20, (2,3) 10, (3,4) 20, (4,5) 15.
    CHECK(acct.counters().ipdv_pairs == 5);
    CHECK(acct.counters().ipdv_pairs_excluded == 0);
    CHECK(acct.counters().out_of_order == 2);
    CHECK(acct.ipdv().count() == 5);
    CHECK(acct.ipdv().percentile(0.2) == 10);
    CHECK(acct.ipdv().percentile(0.4) == 15);
    CHECK(acct.ipdv().percentile(0.5) == 20);
    CHECK(acct.ipdv().percentile(0.8) == 20);
    CHECK(acct.ipdv().percentile(1.0) == 30);

    // Jitter is iperf3's: RFC 3550's recurrence over transits in ARRIVAL order, out-of-order ones included:
    // 1000, 1010, 1000, 1030, 1005, 1020.
    double expected = 0.0;
    expected += (10.0 - expected) / 16.0;
    expected += (10.0 - expected) / 16.0;
    expected += (30.0 - expected) / 16.0;
    expected += (25.0 - expected) / 16.0;
    expected += (15.0 - expected) / 16.0;
    CHECK(acct.counters().jitter_ns == expected);
}

TEST_CASE("receiver accounting: datagrams that carry a GRO message's stamp stay out of jitter and IPDV",
          "[udp][accounting]") {
    receiver_accounting acct;
    acct.on_datagram(0, 100, 0, 1000);
    acct.on_datagram(1, 100, 100, 1110);  // D = 10, IPDV 10
    const double j = acct.counters().jitter_ns;
    // 2, 3 and 4 came in one GRO message stamped when 2 arrived: only 2's time is its own.
    acct.on_datagram(2, 100, 200, 1230, true);   // transit 1030: IPDV (1,2) 20
    acct.on_datagram(3, 100, 300, 1230, false);  // would be transit 930
    acct.on_datagram(4, 100, 400, 1230, false);  // would be transit 830
    acct.on_datagram(5, 100, 500, 1520, true);   // transit 1020: (4,5) has an untimed side
    CHECK(acct.counters().packets_received == 6);
    CHECK(acct.counters().untimed == 2);
    CHECK(acct.counters().ipdv_pairs == 2);
    CHECK(acct.counters().ipdv_pairs_excluded == 3);  // (2,3), (3,4), (4,5)
    CHECK(acct.ipdv().percentile(1.0) == 20);
    double expected = j;
    expected += (20.0 - expected) / 16.0;  // 1010 -> 1030
    expected += (10.0 - expected) / 16.0;  // 1030 -> 1020: the untimed datagrams are skipped
    CHECK(acct.counters().jitter_ns == expected);
}

TEST_CASE("receiver accounting: the transit ring is bounded and a reused slot pairs with nothing",
          "[udp][accounting]") {
    receiver_accounting acct;
    constexpr std::uint64_t ring = receiver_accounting::kTransitRing;
    acct.on_datagram(0, 100, 0, 1000);
    acct.on_datagram(ring, 100, 0, 1000);  // takes slot 0
    acct.on_datagram(1, 100, 0, 1000);     // its neighbour 0 is gone: no pair, and no pair with `ring`
    CHECK(acct.counters().ipdv_pairs == 0);
    acct.on_datagram(ring + 1, 100, 0, 1000);  // pairs with `ring`, and takes the slot of 1
    CHECK(acct.counters().ipdv_pairs == 1);
    acct.on_datagram(2, 100, 0, 1000);  // its neighbour 1 is gone
    CHECK(acct.counters().ipdv_pairs == 1);
    acct.on_datagram(ring + 2, 100, 0, 1005);  // pairs with ring + 1 (slot 2 now holds 2: no pair there)
    CHECK(acct.counters().ipdv_pairs == 2);
    CHECK(acct.ipdv().percentile(1.0) == 5);
}

TEST_CASE("the pacer stamps each datagram of a batch with its place in the schedule", "[udp][pacer]") {
    pacer p(8e9, 1000, 100, 0);  // 1 byte/ns
    // A batch of 100-byte datagrams handed over at once at t = 5000: 100 ns apart.
    CHECK(p.departure_ns(5000, 0, 100) == 5000);
    CHECK(p.departure_ns(5000, 1, 100) == 5100);
    CHECK(p.departure_ns(5000, 63, 100) == 11300);
    CHECK(p.departure_ns(5000, 2, 1400) == 7800);
    // At 20 Mbit/s a 1400-byte datagram is worth 560 us.
    p.set_rate(20e6, 0);
    CHECK(p.departure_ns(1'000'000, 1, 1400) == 1'560'000);
    CHECK(p.departure_ns(1'000'000, 3, 1400) == 2'680'000);
}

// The ground truth, simulated: 20 Mbit/s of 1400-byte datagrams (560 us apart) over a link that adds
// 5 ms plus a uniform 0-4 ms per datagram, so datagrams overtake each other. For independent uniform delays
// on [0, a], |IPDV| of consecutive sequence numbers has the triangular density 2 (a - x) / a^2 and the median
// a (1 - 1/sqrt 2) = 1.1716 ms. Pairing only consecutive arrivals (the old rule) read about 0.32 ms.
TEST_CASE("receiver accounting: IPDV over a reordering link with uniform delay matches the closed form",
          "[udp][accounting]") {
    constexpr int kDatagrams = 20000;
    constexpr std::int64_t kSpacingNs = 560'000;
    constexpr std::int64_t kMostExtraNs = 4'000'000;
    std::mt19937_64 random(20261129);
    struct datagram {
        std::uint64_t sequence;
        std::int64_t sent_ns;
        std::int64_t arrival_ns;
    };
    std::vector<datagram> datagrams;
    for (int i = 0; i < kDatagrams; ++i) {
        const std::int64_t sent = i * kSpacingNs;
        const auto extra = static_cast<std::int64_t>(random() % (kMostExtraNs + 1));  // integer: portable
        datagrams.push_back({static_cast<std::uint64_t>(i), sent, sent + 5'000'000 + extra});
    }
    std::stable_sort(datagrams.begin(), datagrams.end(),
                     [](const datagram& a, const datagram& b) { return a.arrival_ns < b.arrival_ns; });
    receiver_accounting acct;
    for (const auto& d : datagrams) {
        acct.on_datagram(d.sequence, 1400, d.sent_ns, d.arrival_ns);
    }
    CHECK(acct.counters().out_of_order > 0);
    CHECK(acct.counters().ipdv_pairs == kDatagrams - 1);
    // Sampling error of the median of 20,000 pairs: about 1 %; the histogram's bucket is 1.4 % wide here.
    const double median_ms = static_cast<double>(acct.ipdv().percentile(0.5)) / 1e6;
    CHECK(median_ms == Approx(4.0 * (1.0 - 1.0 / std::sqrt(2.0))).epsilon(0.03));
}

TEST_CASE("receiver accounting: a boundary bins by arrival stamp, whenever the datagrams are read",
          "[udp][accounting][binning]") {
    receiver_accounting acct(64);
    // seq, arrival: read in this order, as one late read would return them.
    const auto on = [&acct](std::uint64_t sequence, std::int64_t arrival_ns) {
        return acct.on_datagram(sequence, 100, 0, arrival_ns);
    };
    on(0, 900);
    acct.set_boundary(1000);
    CHECK_FALSE(acct.boundary_counters());
    // Arrived before the boundary, read after it (the read time never enters): binned before it.
    on(1, 950);
    on(2, 999);
    CHECK_FALSE(acct.boundary_counters());
    on(4, 1000);  // the first stamp at the boundary closes the bin before it is counted
    REQUIRE(acct.boundary_counters());
    const receiver_counters before = *acct.boundary_counters();
    CHECK(before.packets_received == 3);
    CHECK(before.bytes_received == 300);
    CHECK(before.expected == 3);
    // Read after the first stamp past the boundary: binned after it, even with an earlier stamp (the rule
    // follows the socket's order).
    on(3, 998);
    on(5, 2000);
    CHECK(acct.boundary_counters()->bytes_received == 300);
    CHECK(acct.counters().bytes_received == 600);
    CHECK(acct.counters().out_of_order == 1);

    // Arming the same boundary keeps the bin; a new one starts empty.
    acct.set_boundary(1000);
    CHECK(acct.boundary_counters()->bytes_received == 300);
    acct.set_boundary(3000);
    CHECK_FALSE(acct.boundary_counters());
    on(6, 2999);
    // A read that began before the boundary and found the socket empty proves nothing about it...
    acct.on_queue_empty(2999);
    CHECK_FALSE(acct.boundary_counters());
    // ... one that began at or after it passes the boundary with everything read so far.
    acct.on_queue_empty(3000);
    REQUIRE(acct.boundary_counters());
    CHECK(acct.boundary_counters()->bytes_received == 700);
    CHECK(acct.boundary_counters()->packets_received == 7);
    on(7, 3001);
    CHECK(acct.boundary_counters()->bytes_received == 700);

    // Disarmed (0): no bin, whatever arrives.
    acct.set_boundary(0);
    on(8, 5000);
    acct.on_queue_empty(6000);
    CHECK_FALSE(acct.boundary_counters());
    CHECK(acct.counters().bytes_received == 900);
}

TEST_CASE("receiver accounting: a refused datagram past the boundary still closes the bin before it",
          "[udp][accounting][binning]") {
    receiver_accounting acct(64, data_limits{100, true});
    acct.ready(0, 0);
    acct.set_boundary(1000);
    acct.on_datagram(0, 100, 0, 500);
    CHECK(acct.on_datagram(1, 99, 0, 1500) == arrival::dropped);  // wrong length, arrived after the boundary
    REQUIRE(acct.boundary_counters());
    CHECK(acct.boundary_counters()->bytes_received == 100);
    CHECK(acct.boundary_counters()->drops.wrong_length == 0);
    acct.on_datagram(2, 100, 0, 900);  // read after that one: after the boundary
    CHECK(acct.boundary_counters()->bytes_received == 100);
    CHECK(acct.counters().bytes_received == 200);
}

TEST_CASE("A receiver that finds its socket empty reads again for kPollNs, then waits",
          "[udp][receive_poll]") {
    receive_poll poll(true);
    constexpr std::int64_t start = 1'000'000;
    CHECK(poll.read_again(start));
    CHECK(poll.read_again(start + receive_poll::kPollNs - 1));
    SECTION("data within the poll: the next empty read polls again") {
        poll.on_data();
        CHECK(poll.successful_polls() == 1);
        CHECK(poll.read_again(start + receive_poll::kPollNs + 5));
        CHECK(poll.failed_polls() == 0);
    }
    SECTION("nothing within the poll: wait") {
        CHECK_FALSE(poll.read_again(start + receive_poll::kPollNs));
        CHECK(poll.failed_polls() == 1);
        CHECK(poll.successful_polls() == 0);
    }
}

TEST_CASE("Failed polls make the next waits begin at once, doubling up to kMaxSkippedPolls, and data resets",
          "[udp][receive_poll]") {
    receive_poll poll(true);
    std::int64_t now = 0;
    // One failed poll (read_again true, then false kPollNs later), then count the waits that begin at once
    // before the next poll.
    auto fail_one_poll_and_count_skipped = [&] {
        REQUIRE(poll.read_again(now));
        now += receive_poll::kPollNs;
        REQUIRE_FALSE(poll.read_again(now));
        std::uint32_t skipped = 0;
        while (!poll.read_again(++now)) {  // each false is one wait for readiness without a poll
            ++skipped;
            REQUIRE(skipped <= receive_poll::kMaxSkippedPolls);
        }
        // read_again(now) just began a poll: it is under way, as in the real loop.
        now += receive_poll::kPollNs;
        REQUIRE_FALSE(poll.read_again(now));  // ... and it fails too
        return skipped;
    };
    REQUIRE(poll.read_again(now));
    now += receive_poll::kPollNs;
    REQUIRE_FALSE(poll.read_again(now));  // first failure: the next one wait is skipped
    std::vector<std::uint32_t> skipped;
    std::uint32_t waits = 0;
    while (!poll.read_again(++now)) {
        ++waits;
    }
    skipped.push_back(waits);
    for (int i = 0; i < 7; ++i) {
        waits = 0;
        now += receive_poll::kPollNs;
        REQUIRE_FALSE(poll.read_again(now));
        while (!poll.read_again(++now)) {
            ++waits;
        }
        skipped.push_back(waits);
    }
    CHECK(skipped == std::vector<std::uint32_t>{1, 2, 4, 8, 16, 32, 64, 64});
    CHECK(poll.failed_polls() == 8);
    // A poll that finds data: the next failure skips one wait again.
    poll.on_data();
    CHECK(poll.successful_polls() == 1);
    CHECK(fail_one_poll_and_count_skipped() == 1);
}

TEST_CASE("Only the receiver of an unpaced sender polls", "[udp][receive_poll]") {
    CHECK(receive_poll::worth_it(0));
    CHECK_FALSE(receive_poll::worth_it(1));
    CHECK_FALSE(receive_poll::worth_it(10'000'000'000ULL));
    receive_poll off(false);
    CHECK_FALSE(off.read_again(0));
    CHECK_FALSE(off.read_again(1));
    off.on_data();
    CHECK(off.successful_polls() == 0);
    CHECK(off.failed_polls() == 0);
}

TEST_CASE("A receiver's data without a poll under way changes nothing", "[udp][receive_poll]") {
    receive_poll poll(true);
    poll.on_data();  // data from a read after a wait, not after a poll
    CHECK(poll.successful_polls() == 0);
    CHECK(poll.read_again(0));
    CHECK_FALSE(poll.read_again(receive_poll::kPollNs));
    poll.on_data();
    CHECK(poll.successful_polls() == 0);
    CHECK_FALSE(poll.read_again(receive_poll::kPollNs + 1));  // the failure's skipped wait
    CHECK(poll.read_again(receive_poll::kPollNs + 2));
}
