// libFuzzer harness: speedcli's window over iperf3's UDP receiver accounting (common/iperf3_udp_window.hpp),
// with a peer that picks every datagram's bytes (its header: sequence numbers, clock), the stream it comes on
// and when it arrives (before time 0 too), and a plan of any warm-up, window and interval.
//
// Input: warm-up ms (u16), window ms (u16, at least 1), interval (u8: 0 = none, else 100 ms + 10 ms per
// step), streams (u8 % 4 + 1), 64-bit counters (u8 bit 0), then records: stream (u8), length (u16 % 2049),
// arrival step (u32: microseconds, the top bit steps back), that many bytes. Then every point is closed.
// Invariants: the intervals' bytes and datagrams add up to what the window counted (the warm-up's set apart
// included); an interval's lost never exceeds what the stream's figures say; the figures' bytes are the bytes
// after the warm-up; jitter is finite and not negative.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/iperf3_udp.hpp"
#include "common/iperf3_udp_window.hpp"
#include "common/wire.hpp"
#include "fuzz/fuzz_check.hpp"

using namespace speed;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    constexpr std::int64_t kMs = 1'000'000;
    wire::reader in(std::span<const std::uint8_t>(data, size));
    measure::plan plan;
    plan.omit_ns = std::int64_t{in.u16()} * kMs;
    plan.duration_ns = (std::int64_t{in.u16()} + 1) * kMs;
    const std::uint8_t interval = in.u8();
    plan.interval_ns = interval == 0 ? 0 : (100 + std::int64_t{interval} * 10) * kMs;
    const std::size_t streams = in.u8() % 4U + 1;
    const bool wide = (in.u8() & 1) != 0;
    if (!in.ok()) {
        return 0;
    }
    iperf3::udp_window window(plan, streams);
    std::int64_t arrival_ns = 1'000'000 * kMs;
    for (;;) {
        const std::size_t stream = in.u8() % streams;
        const std::size_t length = in.u16() % 2049U;
        const std::uint32_t step = in.u32();
        std::vector<std::uint8_t> bytes(length);
        in.bytes(bytes);
        if (!in.ok()) {
            break;
        }
        const std::int64_t step_ns = std::int64_t{step & 0x7fffffffU} * 1000;
        arrival_ns += (step & 0x80000000U) != 0 ? -step_ns : step_ns;
        window.on_datagram(stream, bytes.size(), iperf3::read_udp_header(bytes, wide), arrival_ns);
    }
    std::uint64_t bytes = 0;
    std::uint64_t datagrams = 0;
    std::uint64_t lost = 0;
    for (std::size_t k = 0; k < window.point_count(); ++k) {
        const auto closed = window.close_point(k);
        FUZZ_CHECK(closed.stream_bytes.size() == streams);
        FUZZ_CHECK(closed.end_ns == window.point_ns(k));
        FUZZ_CHECK(closed.end_ns > closed.start_ns);
        FUZZ_CHECK(std::isfinite(closed.mean_jitter_seconds) && closed.mean_jitter_seconds >= 0.0);
        for (const std::uint64_t b : closed.stream_bytes) {
            bytes += b;
        }
        datagrams += closed.datagrams;
        lost += closed.lost;
    }
    FUZZ_CHECK(window.point_count() == 0 || window.point_ns(window.point_count() - 1) == plan.end_ns());
    std::uint64_t after_warm_up = 0;
    std::uint64_t counted = 0;
    std::uint64_t errors = 0;
    for (std::size_t i = 0; i < streams; ++i) {
        const auto& f = window.figures(i);
        after_warm_up += f.bytes;
        counted += f.datagrams;
        errors += f.errors;
        FUZZ_CHECK(std::isfinite(f.jitter_seconds) && f.jitter_seconds >= 0.0);
    }
    FUZZ_CHECK(bytes == after_warm_up + window.omitted_bytes());
    FUZZ_CHECK(datagrams == counted);
    // The intervals count gaps as they open; late datagrams that fill them lower the figures' count only.
    FUZZ_CHECK(lost >= errors);
    return 0;
}
