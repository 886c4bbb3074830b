// libFuzzer harness: a stream's receiver accounting (common/udp_accounting.hpp) fed datagrams whose sequence
// numbers, lengths and timestamps the input chooses, as a hostile peer would. A hang is a finding too: CI
// runs with -timeout=1 (the 2^64-1 wrap spun forever).
//
// Input: window (u16 mod 4096, x64), datagram size (u16, 0 = any), flags (u8: 1 = wait for ready), the index
// of the datagram before which ready() is called (u8), the sender's rate (u32, kbit/s), then records of 27
// bytes: mode (u8: bit 0 = the sequence is the previous one plus a signed byte, bit 1 = untimed: a later
// segment of a GRO message, bit 2 = first arm an interval boundary at sent_ns, bit 3 = first report an empty
// read that began at arrival_ns), sequence (u64), length (u16), sent_ns (i64), arrival_ns (i64). Invariants:
// every datagram is exactly one of received, duplicate or dropped; expected never goes back nor wraps;
// received <= expected; the final identity received + lost == sent holds for any sent >= expected, with the
// window's counters taken at any point or at a boundary; the drain check refuses final counters behind the
// window's.
#include <cstddef>
#include <cstdint>
#include <span>

#include "common/udp_accounting.hpp"
#include "common/wire.hpp"
#include "fuzz/fuzz_check.hpp"

using namespace speed;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    wire::reader in(std::span<const std::uint8_t>(data, size));
    // At most 4095 x 64 numbers: the ring is cleared in O(window), and larger rings only slow the search.
    const std::uint64_t window = std::uint64_t{in.u16() % 4096U} * 64;
    udp::data_limits limits;
    limits.datagram_bytes = in.u16();
    limits.wait_for_ready = (in.u8() & 1) != 0;
    const std::uint8_t ready_before = in.u8();
    const double rate = static_cast<double>(in.u32()) * 1000.0;
    if (!in.ok()) {
        return 0;
    }
    udp::receiver_accounting acct(window, limits);
    std::uint64_t fed = 0;
    std::uint64_t previous_sequence = 0;
    udp::receiver_counters at_half;
    for (std::size_t index = 0;; ++index) {
        const std::uint8_t mode = in.u8();
        std::uint64_t sequence = in.u64();
        const std::uint16_t length = in.u16();
        const auto sent_ns = static_cast<std::int64_t>(in.u64());
        const auto arrival_ns = static_cast<std::int64_t>(in.u64());
        if (!in.ok()) {
            break;
        }
        if (index == ready_before) {
            acct.ready(arrival_ns, rate);
        }
        if ((mode & 1) != 0) {
            sequence = previous_sequence + static_cast<std::uint64_t>(static_cast<std::int8_t>(sequence));
        }
        previous_sequence = sequence;
        if ((mode & 4) != 0) {
            acct.set_boundary(sent_ns);
        }
        if ((mode & 8) != 0) {
            acct.on_queue_empty(arrival_ns);
        }
        const std::uint64_t expected_before = acct.counters().expected;
        const bool timed = (mode & 2) == 0;
        const udp::arrival kind = acct.on_datagram(sequence, length, sent_ns, arrival_ns, timed);
        ++fed;
        const udp::receiver_counters& c = acct.counters();
        FUZZ_CHECK(c.expected >= expected_before);
        FUZZ_CHECK(c.packets_received <= c.expected);
        if (kind == udp::arrival::in_order) {
            FUZZ_CHECK(c.expected == sequence + 1);
        }
        FUZZ_CHECK(c.packets_received + c.duplicates + c.drops.total() == fed);
        // Each received datagram forms at most two pairs (with n - 1 and n + 1), each pair once.
        FUZZ_CHECK(c.ipdv_pairs + c.ipdv_pairs_excluded <= c.packets_received);
        if (index == 8) {
            at_half = c;
        }
        (void)acct.take_queue_delay_ns();
    }
    // Once per input, not per datagram: the walk over every bucket per datagram was most of the harness's
    // time (about 1,500 inputs a second instead of tens of thousands) and the histogram's state at the end
    // covers the same code.
    (void)acct.ipdv().percentile(0.99);
    const udp::receiver_counters& c = acct.counters();
    for (const std::uint64_t sent : {c.expected, c.expected + 5}) {
        if (sent < c.expected) {
            continue;  // expected + 5 wrapped
        }
        const auto result = udp::finalize_stream(at_half, c, sent);
        FUZZ_CHECK(result.totals.has_value());
        FUZZ_CHECK(result.totals->packets_received + result.totals->lost_packets == sent);
        FUZZ_CHECK(result.totals->late_packets <= result.totals->packets_received);
    }
    if (const auto& at_boundary = acct.boundary_counters()) {
        FUZZ_CHECK(at_boundary->packets_received <= c.packets_received);
        FUZZ_CHECK(at_boundary->bytes_received <= c.bytes_received);
        const auto result = udp::finalize_stream(*at_boundary, c, c.expected);
        FUZZ_CHECK(result.totals.has_value());
        FUZZ_CHECK(result.totals->late_packets == c.packets_received - at_boundary->packets_received);
    }
    if (c.packets_received > 0) {
        FUZZ_CHECK(!udp::finalize_stream(c, udp::receiver_counters{}, c.expected).totals);
    }
    return 0;
}
