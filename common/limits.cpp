#include "common/limits.hpp"

#include <string>

#include "common/udp_wire.hpp"

namespace speed {
namespace {

proto::error refuse(proto::error_code code, std::string message) {
    return proto::error{code, std::move(message)};
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
    // An unlimited request (0) is allowed under a cap: the server shapes what it sends to the cap.
    const bool udp = request.proto == proto::transport::udp;
    const std::uint64_t cap = udp ? limits.max_udp_bitrate : limits.max_bitrate;
    if (cap != 0 && request.bitrate > cap) {
        return refuse(error_code::limit_exceeded, "requested bitrate " + std::to_string(request.bitrate) +
                                                      " bit/s; this server allows at most " +
                                                      std::to_string(cap) + " bit/s" +
                                                      (udp ? " for UDP" : ""));
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

}  // namespace speed
