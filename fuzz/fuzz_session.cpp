// libFuzzer harness: the server's session state machine (server/session_protocol.hpp) fed the raw bytes a
// client sends on its control connection, framed exactly as the server frames them.
//
// Input: one mode byte, then the client's bytes. Mode bit 0: the server requires authentication (two keys).
// Bit 1: the harness plays a client that holds a key, answering the challenge and tagging each request
// correctly, so the fuzzer reaches the phases behind authentication. Bits 2-3: small caps (2 streams, 2 tests
// per session) so refusals are reached. Bit 4: the server offers no UDP. Bit 5: an upload's window closes at
// once. The harness plays the server's I/O side too: it reports the streams ready as soon as the phase waits
// for them, and an upload's window closed before the first frame that is not a SELF_PROBE_MARK (with bit 5,
// before any frame).
//
// Invariants: every step is one the phase allows; an accepted test passes validate_request; an ended session
// stays ended; every phase that reads has a positive deadline; every ERROR the server would send encodes and
// decodes back unchanged.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "common/frame_buffer.hpp"
#include "fuzz/fuzz_check.hpp"
#include "server/session_protocol.hpp"

using namespace speed;
using namespace speed::server;
using kind = session_step::kind;

namespace {

const std::vector<auth::key>& keys() {
    static const std::vector<auth::key> configured{auth::key("lab", std::vector<std::uint8_t>(32, 0x11)),
                                                   auth::key("ops", std::vector<std::uint8_t>(16, 0x22))};
    return configured;
}

proto::auth_nonce nonce() {
    proto::auth_nonce value{};
    value.fill(0x42);
    return value;
}

void check_error_round_trip(const proto::error& failure) {
    const auto decoded = proto::decode_frame(proto::encode(failure));
    FUZZ_CHECK(decoded.status == proto::decode_status::ok);
    const auto& back = std::get<proto::error>(decoded.msg);
    FUZZ_CHECK(back.code == failure.code);
    FUZZ_CHECK(back.message == failure.message.substr(0, proto::kMaxErrorMessageLength));
}

// Checks one step against the phase it was taken in; false once the session is over.
bool check_step(const session_step& step, session_phase before, const session_protocol& protocol,
                const server_limits& limits) {
    switch (step.what) {
        case kind::read_more:
            if (before == session_phase::awaiting_sender_report) {  // a late SELF_PROBE_MARK
                FUZZ_CHECK(protocol.phase() == session_phase::awaiting_sender_report);
                FUZZ_CHECK(protocol.self_probe_marks() <= proto::kMaxSelfProbes);
                return true;
            }
            FUZZ_CHECK(before == session_phase::idle);
            FUZZ_CHECK(protocol.phase() == session_phase::test_authenticating);
            return true;
        case kind::self_probe_mark:
            FUZZ_CHECK(before == session_phase::receiving);
            FUZZ_CHECK(protocol.phase() == session_phase::receiving);
            FUZZ_CHECK(protocol.test().proto == proto::transport::tcp);
            FUZZ_CHECK(step.mark.stream_index < protocol.test().streams);
            FUZZ_CHECK(protocol.self_probe_marks() <= proto::kMaxSelfProbes);
            return true;
        case kind::reply:
            FUZZ_CHECK(before == session_phase::authenticating);
            FUZZ_CHECK(std::holds_alternative<proto::auth_ok>(step.reply));
            FUZZ_CHECK(protocol.admitted());
            return true;
        case kind::start_test:
            FUZZ_CHECK(before == session_phase::idle || before == session_phase::test_authenticating);
            FUZZ_CHECK(protocol.admitted());
            FUZZ_CHECK(!validate_request(step.request, limits));
            FUZZ_CHECK(protocol.requests_received() <= limits.max_tests_per_session);
            FUZZ_CHECK(protocol.phase() == session_phase::setting_up);
            return true;
        case kind::start_udp_echo:
            FUZZ_CHECK(before == session_phase::idle);
            FUZZ_CHECK(protocol.phase() == session_phase::idle);
            FUZZ_CHECK(limits.udp);
            return true;
        case kind::stop_sending:
            FUZZ_CHECK(before == session_phase::sending);
            FUZZ_CHECK(protocol.phase() == session_phase::idle);
            return true;
        case kind::test_complete:
            FUZZ_CHECK(before == session_phase::awaiting_sender_report);
            FUZZ_CHECK(protocol.test().proto == proto::transport::udp
                           ? step.udp_sender_report.streams.size() == protocol.test().streams
                           : step.sender_report.streams.size() == protocol.test().streams);
            return true;
        case kind::client_done:
            FUZZ_CHECK(before == session_phase::idle);
            FUZZ_CHECK(protocol.phase() == session_phase::ended);
            return false;
        case kind::end_session:
            FUZZ_CHECK(protocol.phase() == session_phase::ended);
            check_error_round_trip(step.failure);
            return false;
    }
    FUZZ_CHECK(false);
    return false;
}

// What a key-holding client sends in a phase that asks for proof, if the harness plays that client.
std::optional<proto::message> answer_as_key_holder(const session_protocol& protocol,
                                                   std::span<const std::uint8_t> welcome_frame) {
    auth::session_nonces nonces{nonce(), {}};
    nonces.client.fill(0x24);
    if (protocol.phase() == session_phase::authenticating) {
        return proto::auth_response{"ops", nonces.client,
                                    auth::client_proof(keys()[1], nonces, welcome_frame)};
    }
    if (protocol.phase() == session_phase::test_authenticating) {
        return proto::test_auth{
            auth::test_mac(keys()[1], nonces, protocol.requests_received(), protocol.test())};
    }
    return std::nullopt;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    const std::uint8_t mode = data[0];
    const bool with_keys = (mode & 1) != 0;
    const bool key_holder = (mode & 2) != 0;
    server_limits limits;
    if ((mode & 4) != 0) {
        limits.max_streams = 2;
    }
    if ((mode & 8) != 0) {
        limits.max_tests_per_session = 2;
    }
    if ((mode & 16) != 0) {
        limits.udp = false;
    }
    // Mode bit 5: an upload's window closes before the client's first frame, so its SELF_PROBE_MARKs are
    // late ones (sent before the client saw STOP).
    const bool window_closes_at_once = (mode & 32) != 0;
    session_protocol protocol(limits, session_timeouts{}, with_keys ? &keys() : nullptr, nonce());
    const auto opening = protocol.opening(proto::session_token{}, "speedsrv fuzz");
    FUZZ_CHECK(opening.size() == (with_keys ? 2U : 1U));
    const auto welcome_frame = proto::encode(opening.front());

    proto::frame_buffer received;
    auto space = received.prepare(size - 1);
    std::copy(data + 1, data + size, space.begin());
    received.commit(size - 1);

    bool open = true;
    while (open) {
        // The server's own events, as soon as the phase waits for them.
        if (protocol.phase() == session_phase::setting_up) {
            protocol.streams_ready();
            FUZZ_CHECK(protocol.phase() == session_phase::sending ||
                       protocol.phase() == session_phase::receiving);
        }
        FUZZ_CHECK(protocol.read_timeout().count() > 0);
        std::optional<proto::message> next =
            key_holder ? answer_as_key_holder(protocol, welcome_frame) : std::nullopt;
        std::optional<proto::decode_result> frame;
        if (!next) {
            frame = received.next();
            if (frame->status == proto::decode_status::ok) {
                next = std::move(frame->msg);
            }
        }
        // An upload's window stays open while the client sends SELF_PROBE_MARKs, and closes before anything
        // else it sends.
        if (protocol.phase() == session_phase::receiving &&
            (window_closes_at_once || !(next && std::holds_alternative<proto::self_probe_mark>(*next)))) {
            protocol.window_closed();
        }
        const session_phase before = protocol.phase();
        if (!next) {
            if (frame->status == proto::decode_status::need_more) {
                // The client stops here. A close between frames is the state machine's to judge; a close in
                // the middle of one is a read error the server ends the session on by itself.
                if (received.buffered() == 0) {
                    check_step(protocol.on_closed(), before, protocol, limits);
                }
            }
            // Or a bad frame: the server ends the session with protocol_error before asking the state
            // machine.
            break;
        }
        open = check_step(protocol.on_message(*next), before, protocol, limits);
    }
    // Once ended, a session stays ended whatever arrives.
    if (protocol.phase() == session_phase::ended) {
        FUZZ_CHECK(protocol.on_message(proto::stop{}).what == kind::end_session);
        FUZZ_CHECK(protocol.phase() == session_phase::ended);
    }
    return 0;
}
