// Optional authentication with named pre-shared keys: the key file format and the HMAC-SHA256 tags of the
// challenge-response (docs/protocol.md, "Authentication", has the byte layouts).
//
// Both sides prove the key once per session (AUTH_RESPONSE from the client, AUTH_OK from the server: tags
// over both sides' fresh nonces and the WELCOME frame); the client tags every test request (TEST_AUTH) and
// the server every report (REPORT_AUTH), each with its sequence number in the session. The nonces make tags
// useless in another session; the sequence numbers make a tag useless for any other request or report of the
// same session. Tags are compared in constant time.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/protocol.hpp"
#include "common/result.hpp"

namespace speed::auth {

// Secrets shorter than this are refused: 128 bits is the least an HMAC key should carry.
inline constexpr std::size_t kMinSecretBytes = 16;
inline constexpr std::size_t kMaxSecretBytes = 64;

// A named pre-shared key. The secret is wiped from memory when the key goes away.
class key {
  public:
    key(std::string name, std::vector<std::uint8_t> secret);
    ~key();
    key(const key& other);
    key& operator=(const key& other);
    key(key&& other) noexcept;
    key& operator=(key&& other) noexcept;

    const std::string& name() const { return name_; }
    std::span<const std::uint8_t> secret() const { return secret_; }

  private:
    void wipe();
    std::string name_;
    std::vector<std::uint8_t> secret_;
};

// Key names: 1..64 characters of [A-Za-z0-9._-] (they appear in logs and on the wire).
bool valid_key_name(std::string_view name);

// The key file: one key per line, "NAME HEX-SECRET" (32..128 hex digits), '#' starts a comment, blank lines
// are ignored, names are unique. Returns the keys, or a sentence naming the line that is wrong (never the
// secret itself).
result<std::vector<key>> parse_key_file(std::string_view text);

// The key called `name` among `keys`, or nothing.
const key* find_key(const std::vector<key>& keys, std::string_view name);

// The session's two nonces: the server's (AUTH_CHALLENGE) and the client's (AUTH_RESPONSE), both fresh random
// bytes. Every tag covers both, so neither side can be made to reuse a tag from another session.
struct session_nonces {
    proto::auth_nonce server{};
    proto::auth_nonce client{};
};

// AUTH_RESPONSE's tag: HMAC-SHA256(secret, "speedtest client v2" || server nonce || client nonce
// || u16 name length || name || WELCOME frame), the frame as the server sent it (header included).
proto::auth_mac client_proof(const key& k, const session_nonces& nonces,
                             std::span<const std::uint8_t> welcome_frame);

// AUTH_OK's proof: HMAC-SHA256(secret, "speedtest server v2" || server nonce || client nonce || WELCOME
// frame). Its own label keeps a client's proof from ever passing as the server's.
proto::auth_mac server_proof(const key& k, const session_nonces& nonces,
                             std::span<const std::uint8_t> welcome_frame);

// TEST_AUTH's tag: HMAC-SHA256(secret, "speedtest test v2" || server nonce || client nonce || u32 sequence
// || TEST_REQUEST frame), where the frame is the request's canonical encoding (header included) and sequence
// counts the session's TEST_REQUESTs from 1.
proto::auth_mac test_mac(const key& k, const session_nonces& nonces, std::uint32_t sequence,
                         const proto::test_request& request);

// REPORT_AUTH's tag: HMAC-SHA256(secret, "speedtest report v2" || server nonce || client nonce || u32
// sequence
// || report frame), where sequence counts the reports the server sent in the session from 1.
proto::auth_mac report_mac(const key& k, const session_nonces& nonces, std::uint32_t sequence,
                           std::span<const std::uint8_t> report_frame);

// The server's check of an AUTH_RESPONSE: the key it proves, or null. An unknown key name costs what a known
// one does (the timing must not tell which names exist): its tag is computed with a dummy key and compared
// all the same, and only then refused.
struct client_check {
    const key* proven = nullptr;
    bool name_known = false;  // for the server's log only
};
client_check check_client(const std::vector<key>& keys, const proto::auth_response& response,
                          const proto::auth_nonce& server_nonce, std::span<const std::uint8_t> welcome_frame);

// HMACs this thread has computed: lets tests see that every path of check_client computes one.
std::uint64_t hmacs_computed();

// The tags of one authenticated session's reports, in order: the server tags the reports it sends, the client
// checks the ones it reads with a tagger of its own, so both count the same sequence.
class report_tagger {
  public:
    report_tagger(key k, const session_nonces& nonces) : key_(std::move(k)), nonces_(nonces) {}
    // The tag of the next report, given its whole frame.
    proto::auth_mac next(std::span<const std::uint8_t> report_frame);

  private:
    key key_;
    session_nonces nonces_;
    std::uint32_t sequence_ = 0;
};

// The client's decisions in the exchange, pure so that the fuzzer can drive them (client/auth.cpp does the
// I/O): WELCOME -> [AUTH_CHALLENGE -> AUTH_RESPONSE -> AUTH_OK].
class client_handshake {
  public:
    // `k` is the client's key, null without one; it must outlive this object.
    explicit client_handshake(const key* k) : key_(k) {}

    enum class next_step {
        go_on,             // neither side wants authentication
        authenticate,      // read AUTH_CHALLENGE
        refuse_no_key,     // the server requires a key the client does not have
        refuse_downgrade,  // the client has a key and the server asks for none: it cannot prove it holds it
    };
    // Keeps the WELCOME frame (as received, header included), which both proofs cover.
    next_step on_welcome(const proto::welcome& welcome, std::span<const std::uint8_t> welcome_frame);
    // The answer to the server's challenge, with the client's fresh nonce. Only after authenticate.
    proto::auth_response on_challenge(const proto::auth_challenge& challenge,
                                      const proto::auth_nonce& client_nonce);
    // Whether AUTH_OK proves that the server holds the key. Only after on_challenge.
    bool server_proven(const proto::auth_ok& accepted) const;
    // Checks the server's reports from then on.
    report_tagger report_checker() const { return report_tagger(*key_, nonces_); }
    const session_nonces& nonces() const { return nonces_; }

  private:
    const key* key_;
    std::vector<std::uint8_t> welcome_frame_;
    session_nonces nonces_;
};

// Constant-time comparison (CRYPTO_memcmp): the time taken does not depend on where the tags differ.
bool macs_equal(const proto::auth_mac& a, const proto::auth_mac& b);

}  // namespace speed::auth
