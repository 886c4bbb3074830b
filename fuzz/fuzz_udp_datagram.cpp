// libFuzzer harness: every decoder of UDP test bytes from a peer. The first byte picks the decoder, the rest
// is its input:
//   0: a datagram (common/udp_wire.hpp): read_header, and read_feedback when it is a FEEDBACK;
//   1-5: the payload of UDP_SETUP, UDP_ECHO_REQUEST, UDP_SENDER_REPORT, UDP_RECEIVER_REPORT or
//        UDP_INTERVAL_REPORT (common/udp_messages.hpp).
// Invariants: nothing crashes or trips a sanitizer; what decodes re-encodes to something that decodes to the
// same value; a refusal has a reason.
#include <cstddef>
#include <cstdint>
#include <span>
#include <type_traits>
#include <vector>

#include "common/udp_messages.hpp"
#include "common/udp_wire.hpp"
#include "common/wire.hpp"
#include "fuzz/fuzz_check.hpp"

using namespace speed;

namespace {

void datagram(std::span<const std::uint8_t> bytes) {
    const auto h = udp::read_header(bytes);
    if (!h) {
        return;
    }
    FUZZ_CHECK(bytes.size() >= udp::kHeaderSize);
    std::vector<std::uint8_t> again(udp::kFeedbackSize);
    udp::write_header(again, *h);
    FUZZ_CHECK(udp::read_header(std::span<const std::uint8_t>(again.data(), udp::kHeaderSize)) == h);
    if (h->type != udp::datagram_type::feedback) {
        return;
    }
    const auto body = udp::read_feedback(bytes);
    if (!body) {
        FUZZ_CHECK(bytes.size() < udp::kFeedbackSize);
        return;
    }
    udp::write_feedback(again, *h, *body);
    FUZZ_CHECK(udp::read_feedback(again) == body);
}

template <typename Message>
void message(std::span<const std::uint8_t> bytes) {
    wire::reader in(bytes);
    const auto decoded = proto::decode_payload(in, std::type_identity<Message>{});
    if (!decoded) {
        FUZZ_CHECK(!decoded.error().empty());
        return;
    }
    std::vector<std::uint8_t> encoded;
    wire::writer out(encoded);
    proto::encode_payload(out, *decoded);
    wire::reader again(encoded);
    const auto redecoded = proto::decode_payload(again, std::type_identity<Message>{});
    FUZZ_CHECK(redecoded == *decoded);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    const std::span<const std::uint8_t> rest(data + 1, size - 1);
    switch (data[0] % 6) {
        case 0:
            datagram(rest);
            break;
        case 1:
            message<proto::udp_setup>(rest);
            break;
        case 2:
            message<proto::udp_echo_request>(rest);
            break;
        case 3:
            message<proto::udp_sender_report>(rest);
            break;
        case 4:
            message<proto::udp_receiver_report>(rest);
            break;
        default:
            message<proto::udp_interval_report>(rest);
            break;
    }
    return 0;
}
