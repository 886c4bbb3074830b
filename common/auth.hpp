// Optional authentication with named pre-shared keys: the key file format and the HMAC-SHA256 tags of the
// challenge-response (docs/protocol.md, "Authentication", has the byte layouts).
//
// A session proves itself once (AUTH_RESPONSE: a tag over the server's fresh nonce and the key name) and
// again for every test (TEST_AUTH: a tag over the nonce, the request's sequence number in the session and the
// TEST_REQUEST frame). The nonce makes tags useless in another session; the sequence number makes a test's
// tag useless for any other test of the same session. Tags are compared in constant time.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "common/protocol.hpp"

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
std::variant<std::vector<key>, std::string> parse_key_file(std::string_view text);

// The key called `name` among `keys`, or nothing.
const key* find_key(const std::vector<key>& keys, std::string_view name);

// AUTH_RESPONSE's tag: HMAC-SHA256(secret, "speedtest session v1" || nonce || u16 name length || name).
proto::auth_mac session_mac(const key& k, const proto::auth_nonce& nonce);

// TEST_AUTH's tag: HMAC-SHA256(secret, "speedtest test v1" || nonce || u32 sequence || TEST_REQUEST frame),
// where the frame is the request's canonical encoding (header included) and sequence counts the session's
// TEST_REQUESTs from 1.
proto::auth_mac test_mac(const key& k, const proto::auth_nonce& nonce, std::uint32_t sequence,
                         const proto::test_request& request);

// Constant-time comparison (CRYPTO_memcmp): the time taken does not depend on where the tags differ.
bool macs_equal(const proto::auth_mac& a, const proto::auth_mac& b);

}  // namespace speed::auth
