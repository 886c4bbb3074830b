// libFuzzer harness: the authentication exchange from both ends (docs/protocol.md, "Authentication"): the
// server's check of AUTH_RESPONSE (server/session_protocol) and the client's decisions
// (auth::client_handshake and the report tags the control channel checks), each fed the frames the other side
// would send.
//
// Input: one mode byte, then the peer's frames.
//   Bit 0 clear, the server's side: the input is what a client sends while the session authenticates. Bit 1:
//   the harness first answers as an honest key holder (its client nonce taken from a leading AUTH_CHALLENGE
//   frame of the input, a fixed one otherwise), then the input.
//   Bit 0 set, the client's side: the input is what a server sends: WELCOME, AUTH_CHALLENGE, AUTH_OK, then
//   reports each followed by its REPORT_AUTH. Bit 1: the client has a key. Bit 2: the harness replaces the
//   AUTH_OK with an honest one, so the reports are reached. Bit 3: it tags the reports honestly too.
//
// Invariants: the server accepts an AUTH_RESPONSE exactly when its tag is the named key's proof, computes
// one HMAC for it whether the name exists or not, and answers with the proof the client checks; the client
// never goes on without authentication when it has a key, and accepts an AUTH_OK or a report only with
// the tag an honest key holder computes.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

#include "common/auth.hpp"
#include "common/frame_buffer.hpp"
#include "fuzz/fuzz_check.hpp"
#include "server/session_protocol.hpp"

using namespace speed;

namespace {

const std::vector<auth::key>& keys() {
    static const std::vector<auth::key> configured{auth::key("lab", std::vector<std::uint8_t>(32, 0x11)),
                                                   auth::key("ops", std::vector<std::uint8_t>(16, 0x22))};
    return configured;
}

proto::auth_nonce filled(std::uint8_t value) {
    proto::auth_nonce nonce{};
    nonce.fill(value);
    return nonce;
}

std::optional<proto::message> next_frame(proto::frame_buffer& input) {
    proto::decode_result frame = input.next();
    if (frame.status != proto::decode_status::ok) {
        return std::nullopt;
    }
    return std::move(frame.msg);
}

// What the server must decide about `response`, computed the long way round.
const auth::key* honest_verdict(const proto::auth_response& response, const auth::session_nonces& nonces,
                                const std::vector<std::uint8_t>& welcome_frame) {
    const auth::key* named = auth::find_key(keys(), response.key_name);
    if (named == nullptr) {
        return nullptr;
    }
    return auth::macs_equal(auth::client_proof(*named, nonces, welcome_frame), response.mac) ? named
                                                                                             : nullptr;
}

void server_side(bool honest_first, proto::frame_buffer& input) {
    server::session_protocol protocol(server_limits{}, server::session_timeouts{}, &keys(), filled(0x42));
    const auto opening = protocol.opening(proto::session_token{}, "speedsrv fuzz");
    const auto welcome_frame = proto::encode(opening.front());
    std::optional<proto::message> next;
    if (honest_first) {
        const auto client_nonce = next_frame(input);
        auth::session_nonces nonces{filled(0x42), filled(0x24)};
        if (client_nonce && std::holds_alternative<proto::auth_challenge>(*client_nonce)) {
            nonces.client = std::get<proto::auth_challenge>(*client_nonce).nonce;
        }
        next =
            proto::auth_response{"ops", nonces.client, auth::client_proof(keys()[1], nonces, welcome_frame)};
    }
    while (protocol.phase() == server::session_phase::authenticating) {
        if (!next) {
            next = next_frame(input);
            if (!next) {
                return;
            }
        }
        const auto* response = std::get_if<proto::auth_response>(&*next);
        const std::uint64_t hmacs_before = auth::hmacs_computed();
        const auto step = protocol.on_message(*next);
        if (response == nullptr) {
            FUZZ_CHECK(step.what == server::session_step::kind::end_session);
            return;
        }
        // One HMAC for the client's proof, known name or not, plus the server's proof when accepted.
        const std::uint64_t hmacs = auth::hmacs_computed() - hmacs_before;
        const auth::session_nonces nonces{filled(0x42), response->client_nonce};
        const auth::key* expected = honest_verdict(*response, nonces, welcome_frame);
        if (expected == nullptr) {
            FUZZ_CHECK(step.what == server::session_step::kind::end_session);
            FUZZ_CHECK(step.failure.code == proto::error_code::auth_failed);
            FUZZ_CHECK(hmacs == 1);
            return;
        }
        FUZZ_CHECK(step.what == server::session_step::kind::reply);
        FUZZ_CHECK(hmacs == 2);
        FUZZ_CHECK(protocol.key() == expected);
        // The client holding that key accepts the server's AUTH_OK.
        auth::client_handshake client(expected);
        const auto& welcome = std::get<proto::welcome>(opening.front());
        FUZZ_CHECK(client.on_welcome(welcome, welcome_frame) ==
                   auth::client_handshake::next_step::authenticate);
        client.on_challenge(proto::auth_challenge{nonces.server}, nonces.client);
        FUZZ_CHECK(client.server_proven(std::get<proto::auth_ok>(step.reply)));
        next.reset();
    }
}

void client_side(std::uint8_t mode, proto::frame_buffer& input) {
    const bool has_key = (mode & 2) != 0;
    const bool honest_ok = (mode & 4) != 0;
    const bool honest_tags = (mode & 8) != 0;
    const auth::key& key = keys()[0];
    auth::client_handshake handshake(has_key ? &key : nullptr);

    const auto first = next_frame(input);
    if (!first || !std::holds_alternative<proto::welcome>(*first)) {
        return;  // control_channel::expect<WELCOME> ends the session
    }
    const auto& welcome = std::get<proto::welcome>(*first);
    const auto welcome_frame = proto::encode(welcome);
    const auto step = handshake.on_welcome(welcome, welcome_frame);
    using next_step = auth::client_handshake::next_step;
    FUZZ_CHECK(has_key || step != next_step::authenticate);
    FUZZ_CHECK((step == next_step::go_on) == (!has_key && !welcome.auth_required));
    FUZZ_CHECK((step == next_step::refuse_downgrade) == (has_key && !welcome.auth_required));
    if (step != next_step::authenticate) {
        return;
    }
    const auto challenge = next_frame(input);
    if (!challenge || !std::holds_alternative<proto::auth_challenge>(*challenge)) {
        return;
    }
    const auto response = handshake.on_challenge(std::get<proto::auth_challenge>(*challenge), filled(0x24));
    const auth::session_nonces nonces{std::get<proto::auth_challenge>(*challenge).nonce, filled(0x24)};
    FUZZ_CHECK(response.key_name == key.name());
    FUZZ_CHECK(auth::macs_equal(response.mac, auth::client_proof(key, nonces, welcome_frame)));
    const proto::auth_ok honest{auth::server_proof(key, nonces, welcome_frame)};
    proto::auth_ok accepted = honest;
    if (!honest_ok) {
        const auto ok = next_frame(input);
        if (!ok || !std::holds_alternative<proto::auth_ok>(*ok)) {
            return;
        }
        accepted = std::get<proto::auth_ok>(*ok);
    }
    const bool proven = handshake.server_proven(accepted);
    FUZZ_CHECK(proven == (accepted == honest));
    if (!proven) {
        return;
    }
    auth::report_tagger checker = handshake.report_checker();
    auth::report_tagger server_tags(key, nonces);
    // Bounded by the input: every round consumes at least one frame.
    while (const auto report = next_frame(input)) {
        if (!proto::is_report(proto::type_of(*report))) {
            return;  // the client's read loops end the session on anything unexpected
        }
        const auto report_frame = proto::encode(*report);
        const proto::auth_mac expected = checker.next(report_frame);
        const proto::auth_mac honest_tag = server_tags.next(report_frame);
        FUZZ_CHECK(expected == honest_tag);
        proto::auth_mac tag = honest_tag;
        if (!honest_tags) {
            const auto sent = next_frame(input);
            if (!sent || !std::holds_alternative<proto::report_auth>(*sent)) {
                return;
            }
            tag = std::get<proto::report_auth>(*sent).mac;
        }
        if (!auth::macs_equal(expected, tag)) {
            FUZZ_CHECK(tag != honest_tag);
            return;  // refused: the session ends
        }
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    if (size == 0) {
        return 0;
    }
    const std::uint8_t mode = data[0];
    proto::frame_buffer input;
    auto space = input.prepare(size - 1);
    std::copy(data + 1, data + size, space.begin());
    input.commit(size - 1);
    if ((mode & 1) == 0) {
        server_side((mode & 2) != 0, input);
    } else {
        client_side(mode, input);
    }
    return 0;
}
