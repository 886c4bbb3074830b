// libFuzzer harness: the adaptive rate controller (common/udp_rate_control.hpp) and the pacer it drives
// (common/udp_pacer.hpp), with FEEDBACK bodies, the receiver's timestamps and the local clock all taken from
// the input: a hostile receiver chooses every FEEDBACK field and header timestamp.
//
// Input: the cap (u32, kbit/s; 0 = none), then events of 1 + 60 bytes: kind (u8: even = FEEDBACK, odd =
// silence), a FEEDBACK body (44 bytes, the wire format), the receiver's timestamp (i64) and now (i64; for a
// silence: the last FEEDBACK's time and now).
// Invariants: no signed overflow or bad conversion (UBSan); the rate stays finite, at or above the minimum,
// at or below the cap and the controller's ceiling; the round trip is never negative; the pacer's bucket and
// waits stay well-defined.
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/udp_pacer.hpp"
#include "common/udp_rate_control.hpp"
#include "common/udp_wire.hpp"
#include "common/wire.hpp"
#include "fuzz/fuzz_check.hpp"

using namespace speed;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    wire::reader in(std::span<const std::uint8_t>(data, size));
    udp::rate_limits limits;
    limits.max_bits_per_second = static_cast<double>(in.u32()) * 1000.0;
    if (!in.ok()) {
        return 0;
    }
    udp::rate_controller controller(limits);
    udp::pacer pacer(controller.bits_per_second(), 2'000'000, 2 * 1472, 0);
    std::vector<std::uint8_t> datagram(udp::kFeedbackSize);
    for (;;) {
        const std::uint8_t kind = in.u8();
        in.bytes(std::span<std::uint8_t>(datagram).subspan(udp::kHeaderSize));
        const auto receiver_ns = static_cast<std::int64_t>(in.u64());
        const auto now_ns = static_cast<std::int64_t>(in.u64());
        if (!in.ok()) {
            break;
        }
        std::optional<double> changed;
        if (kind % 2 == 0) {
            const auto body = udp::read_feedback(datagram);
            FUZZ_CHECK(body.has_value());
            changed = controller.on_feedback(*body, receiver_ns, now_ns);
        } else {
            changed = controller.on_silence(receiver_ns, now_ns);
        }
        const double rate = controller.bits_per_second();
        FUZZ_CHECK(std::isfinite(rate));
        // A cap below the minimum wins (clamp applies the minimum first).
        const bool capped = limits.max_bits_per_second > 0;
        FUZZ_CHECK(rate >= (capped ? std::min(limits.min_bits_per_second, limits.max_bits_per_second)
                                   : limits.min_bits_per_second));
        FUZZ_CHECK(!capped || rate <= limits.max_bits_per_second);
        FUZZ_CHECK(rate <= udp::rate_controller::kHighestBitsPerSecond);
        FUZZ_CHECK(controller.round_trip_ns() >= 0);
        if (changed) {
            FUZZ_CHECK(*changed == rate);
            pacer.set_rate(*changed, now_ns);
        }
        (void)pacer.allowed(now_ns, 1472);
        FUZZ_CHECK(pacer.wait_ns(now_ns, 64 * 1024) >= 0);
        FUZZ_CHECK(pacer.depth_bytes() >= 2 * 1472);
    }
    return 0;
}
