#include "common/limits.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <string>

#include "common/test_timing.hpp"
#include "common/udp_wire.hpp"
#include "common/units.hpp"

namespace speed {
namespace {

proto::error refuse(proto::error_code code, std::string message) {
    return proto::error{code, std::move(message)};
}

std::uint64_t saturate_to_u64(double value) {
    if (!(value > 0.0)) {
        return 0;
    }
    if (value >= 18446744073709551615.0) {
        return std::numeric_limits<std::uint64_t>::max();
    }
    return static_cast<std::uint64_t>(value);
}

std::string format_seconds(double seconds) {
    char text[32];
    std::snprintf(text, sizeof text, "%.2f s", seconds);
    return text;
}

// The smaller of two caps where 0 means "no cap".
std::uint64_t tighter(std::uint64_t a, std::uint64_t b) {
    if (a == 0) {
        return b;
    }
    if (b == 0) {
        return a;
    }
    return std::min(a, b);
}

}  // namespace

std::optional<proto::error> validate_request(const proto::test_request& request,
                                             const server_limits& limits) {
    using proto::error_code;
    if (request.streams == 0) {
        return refuse(error_code::protocol_error, "a test needs at least one stream");
    }
    if (request.streams > limits.max_streams || request.streams > proto::kMaxStreams) {
        return refuse(error_code::limit_exceeded, "requested " + std::to_string(request.streams) +
                                                      " streams; this server allows at most " +
                                                      std::to_string(limits.max_streams));
    }
    if (request.duration_ms < kMinDurationMs) {
        return refuse(error_code::protocol_error, "a test must last at least " +
                                                      std::to_string(kMinDurationMs) + " ms; requested " +
                                                      std::to_string(request.duration_ms));
    }
    if (request.duration_ms > limits.max_duration_ms) {
        return refuse(error_code::limit_exceeded, "requested duration " +
                                                      std::to_string(request.duration_ms / 1000.0) +
                                                      " s; this server allows at most " +
                                                      std::to_string(limits.max_duration_ms / 1000.0) + " s");
    }
    if (request.omit_ms > limits.max_omit_ms) {
        return refuse(error_code::limit_exceeded, "requested warm-up (omit) " +
                                                      std::to_string(request.omit_ms / 1000.0) +
                                                      " s; this server allows at most " +
                                                      std::to_string(limits.max_omit_ms / 1000.0) + " s");
    }
    if (request.interval_ms != 0 && request.interval_ms < limits.min_interval_ms) {
        return refuse(error_code::limit_exceeded, "report interval " + std::to_string(request.interval_ms) +
                                                      " ms is shorter than this server's minimum of " +
                                                      std::to_string(limits.min_interval_ms) + " ms");
    }
    if (request.bitrate != 0 && request.bitrate < limits.min_bitrate) {
        return refuse(
            error_code::limit_exceeded,
            "requested bitrate " + units::format_bits_per_second(static_cast<double>(request.bitrate)) +
                " is below this server's minimum of " +
                units::format_bits_per_second(static_cast<double>(limits.min_bitrate)) + " per test");
    }
    // An unlimited request (0) is allowed under a cap: the server shapes what it sends to the cap.
    const bool udp = request.proto == proto::transport::udp;
    const std::uint64_t cap = udp ? limits.max_udp_bitrate : limits.max_bitrate;
    if (cap != 0 && request.bitrate > cap) {
        return refuse(error_code::limit_exceeded, "requested bitrate " + std::to_string(request.bitrate) +
                                                      " bit/s; this server allows at most " +
                                                      std::to_string(cap) + " bit/s" +
                                                      (udp ? " for UDP" : ""));
    }
    if (limits.max_bytes != 0 && request.bitrate != 0) {
        const double planned_bytes =
            static_cast<double>(request.bitrate) / 8.0 * test_timing::of(request).length_seconds();
        if (planned_bytes > static_cast<double>(limits.max_bytes)) {
            return refuse(error_code::limit_exceeded,
                          "requested bitrate and time would move " +
                              units::format_bytes(saturate_to_u64(planned_bytes)) +
                              "; this server allows at most " + units::format_bytes(limits.max_bytes) +
                              " per test");
        }
    }
    if (request.congestion.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_-") != std::string::npos) {
        return refuse(error_code::protocol_error,
                      "congestion control name has characters outside [a-z0-9_-]");
    }
    if (udp && !limits.udp) {
        return refuse(error_code::unsupported, "this server does not offer UDP tests");
    }
    if (udp && (request.udp_payload_bytes < udp::kMinDatagramBytes ||
                request.udp_payload_bytes > udp::kMaxDatagramBytes)) {
        return refuse(error_code::protocol_error,
                      "UDP datagram length " + std::to_string(request.udp_payload_bytes) + " is outside " +
                          std::to_string(udp::kMinDatagramBytes) + ".." +
                          std::to_string(udp::kMaxDatagramBytes));
    }
    return std::nullopt;
}

std::uint64_t sender_bitrate(const proto::test_request& request, const server_limits& limits) {
    const bool udp = request.proto == proto::transport::udp;
    std::uint64_t rate = tighter(request.bitrate, udp ? limits.max_udp_bitrate : limits.max_bitrate);
    if (limits.max_bytes != 0) {
        const double seconds = std::max(test_timing::of(request).length_seconds(), 0.001);
        const double fitting = static_cast<double>(limits.max_bytes) * 8.0 / seconds;
        rate = tighter(rate, std::max<std::uint64_t>(1, saturate_to_u64(fitting)));
    }
    return rate;
}

std::uint64_t server_rate_cap(const proto::test_request& request, const server_limits& limits) {
    proto::test_request as_fast_as_allowed = request;
    as_fast_as_allowed.bitrate = 0;
    return sender_bitrate(as_fast_as_allowed, limits);
}

std::uint64_t per_stream_pacing(std::uint64_t bits_per_second, std::uint16_t streams) {
    if (bits_per_second == 0 || streams == 0) {
        return 0;
    }
    return std::max<std::uint64_t>(1, bits_per_second / 8 / streams);
}

std::int64_t stall_timeout_ns(std::uint64_t bits_per_second, std::uint16_t streams,
                              std::int64_t configured_ns) {
    const std::uint64_t stream_bytes_per_second = per_stream_pacing(bits_per_second, streams);
    if (stream_bytes_per_second == 0) {
        return configured_ns;
    }
    const double segments_ns =
        static_cast<double>(kStallSegmentBytes) * 1e9 / static_cast<double>(stream_bytes_per_second);
    return segments_ns > static_cast<double>(configured_ns)
               ? static_cast<std::int64_t>(std::min(segments_ns, 9e18))
               : configured_ns;
}

test_budget test_budget::for_test(const proto::test_request& request, const server_limits& limits) {
    test_budget budget;
    budget.bits_per_second = server_rate_cap(request, limits);
    budget.max_bytes = limits.max_bytes;
    return budget;
}

double test_budget::burst_bytes() const {
    double burst = static_cast<double>(bits_per_second) / 8.0 * kBurstSeconds;
    if (max_bytes != 0) {
        burst = std::min(burst, static_cast<double>(max_bytes) * kBurstShare);
    }
    return std::max(burst, static_cast<double>(kMinBurstBytes));
}

std::optional<proto::error> test_budget::check(std::int64_t elapsed_ns, std::uint64_t bytes) const {
    if (unlimited()) {
        return std::nullopt;
    }
    const double seconds = static_cast<double>(std::max<std::int64_t>(elapsed_ns, 0)) / 1e9;
    const double bytes_per_second = static_cast<double>(bits_per_second) / 8.0;
    const auto moved = static_cast<double>(bytes);
    if (bits_per_second != 0 && moved > bytes_per_second * kRateMargin * seconds + burst_bytes()) {
        return refuse(proto::error_code::limit_exceeded,
                      "the data arrived faster than this server's cap of " +
                          units::format_bits_per_second(static_cast<double>(bits_per_second)) +
                          " for this test (" + units::format_bytes(bytes) + " in " + format_seconds(seconds) +
                          ")");
    }
    if (max_bytes != 0 && moved > static_cast<double>(max_bytes) * kRateMargin) {
        return refuse(proto::error_code::limit_exceeded, "the test moved more than this server's cap of " +
                                                             units::format_bytes(max_bytes) + " per test");
    }
    return std::nullopt;
}

}  // namespace speed
