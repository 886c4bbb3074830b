#include "common/auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <array>
#include <cctype>

#include "common/wire.hpp"

namespace speed::auth {
namespace {

constexpr std::string_view kClientLabel = "speedtest client v2";
constexpr std::string_view kServerLabel = "speedtest server v2";
constexpr std::string_view kTestLabel = "speedtest test v2";
constexpr std::string_view kReportLabel = "speedtest report v2";

thread_local std::uint64_t hmac_count = 0;

proto::auth_mac hmac_sha256(std::span<const std::uint8_t> secret, std::span<const std::uint8_t> message) {
    ++hmac_count;
    proto::auth_mac tag{};
    unsigned int length = 0;
    const unsigned char* done = HMAC(EVP_sha256(), secret.data(), static_cast<int>(secret.size()),
                                     message.data(), message.size(), tag.data(), &length);
    if (done == nullptr || length != tag.size()) {
        // Only an OpenSSL without SHA-256 fails here. An all-zero tag matches no tag a peer computes with a
        // working library, so verification fails closed.
        tag.fill(0);
    }
    return tag;
}

// The bytes a tag covers start with a label that keeps the two kinds of tag apart. Reserving room for the
// whole transcript first also keeps GCC 12 from a false -Wstringop-overflow on the growing vector.
std::vector<std::uint8_t> transcript_starting_with(std::string_view label, const session_nonces& nonces) {
    std::vector<std::uint8_t> out;
    out.reserve(512);
    out.insert(out.end(), label.begin(), label.end());
    out.insert(out.end(), nonces.server.begin(), nonces.server.end());
    out.insert(out.end(), nonces.client.begin(), nonces.client.end());
    return out;
}

proto::auth_mac client_proof_for(std::span<const std::uint8_t> secret, std::string_view name,
                                 const session_nonces& nonces, std::span<const std::uint8_t> welcome_frame) {
    std::vector<std::uint8_t> message = transcript_starting_with(kClientLabel, nonces);
    wire::writer out(message);
    out.string16(name);
    out.bytes(welcome_frame);
    return hmac_sha256(secret, message);
}

// Stands in for the key of an unknown name. Its value does not matter: a tag that happens to match it is
// refused all the same.
std::span<const std::uint8_t> dummy_secret() {
    static const std::array<std::uint8_t, 32> secret{};
    return secret;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

std::optional<std::vector<std::uint8_t>> parse_hex(std::string_view text) {
    if (text.size() % 2 != 0) {
        return std::nullopt;
    }
    std::vector<std::uint8_t> bytes;
    bytes.reserve(text.size() / 2);
    for (std::size_t i = 0; i < text.size(); i += 2) {
        const int high = hex_value(text[i]);
        const int low = hex_value(text[i + 1]);
        if (high < 0 || low < 0) {
            OPENSSL_cleanse(bytes.data(), bytes.size());
            return std::nullopt;
        }
        bytes.push_back(static_cast<std::uint8_t>(high * 16 + low));
    }
    return bytes;
}

bool is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\r';
}

// Splits a line into whitespace-separated fields.
std::vector<std::string_view> fields_of(std::string_view line) {
    std::vector<std::string_view> fields;
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && is_blank(line[i])) {
            ++i;
        }
        const std::size_t start = i;
        while (i < line.size() && !is_blank(line[i])) {
            ++i;
        }
        if (i > start) {
            fields.push_back(line.substr(start, i - start));
        }
    }
    return fields;
}

}  // namespace

key::key(std::string name, std::vector<std::uint8_t> secret)
    : name_(std::move(name)), secret_(std::move(secret)) {}

key::~key() {
    wipe();
}

key::key(const key& other) : name_(other.name_), secret_(other.secret_) {}

key& key::operator=(const key& other) {
    if (this != &other) {
        wipe();
        name_ = other.name_;
        secret_ = other.secret_;
    }
    return *this;
}

key::key(key&& other) noexcept : name_(std::move(other.name_)), secret_(std::move(other.secret_)) {}

key& key::operator=(key&& other) noexcept {
    if (this != &other) {
        wipe();
        name_ = std::move(other.name_);
        secret_ = std::move(other.secret_);
    }
    return *this;
}

void key::wipe() {
    if (!secret_.empty()) {
        OPENSSL_cleanse(secret_.data(), secret_.size());
    }
    secret_.clear();
}

bool valid_key_name(std::string_view name) {
    if (name.empty() || name.size() > proto::kMaxKeyNameLength) {
        return false;
    }
    return std::all_of(name.begin(), name.end(), [](char c) {
        return std::isalnum(static_cast<unsigned char>(c)) != 0 || c == '.' || c == '_' || c == '-';
    });
}

result<std::vector<key>> parse_key_file(std::string_view text) {
    std::vector<key> keys;
    std::size_t line_number = 0;
    while (!text.empty()) {
        ++line_number;
        const std::size_t end = text.find('\n');
        std::string_view line = text.substr(0, end);
        text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
        if (const std::size_t comment = line.find('#'); comment != std::string_view::npos) {
            line = line.substr(0, comment);
        }
        const auto fields = fields_of(line);
        if (fields.empty()) {
            continue;
        }
        const std::string where = "line " + std::to_string(line_number) + ": ";
        if (fields.size() != 2) {
            return failure{where + "expected 'NAME HEX-SECRET'"};
        }
        if (!valid_key_name(fields[0])) {
            return failure{where + "a key name is 1 to 64 characters of A-Z a-z 0-9 . _ -"};
        }
        auto secret = parse_hex(fields[1]);
        if (!secret) {
            return failure{where + "the secret is not an even number of hex digits"};
        }
        if (secret->size() < kMinSecretBytes || secret->size() > kMaxSecretBytes) {
            const std::size_t got = secret->size();
            OPENSSL_cleanse(secret->data(), secret->size());
            return failure{where + "the secret has " + std::to_string(got) + " bytes; it needs " +
                           std::to_string(kMinSecretBytes) + " to " + std::to_string(kMaxSecretBytes) +
                           " (e.g. 'openssl rand -hex 32')"};
        }
        if (find_key(keys, fields[0]) != nullptr) {
            return failure{where + "the key name '" + std::string(fields[0]) + "' is used twice"};
        }
        keys.emplace_back(std::string(fields[0]), std::move(*secret));
    }
    if (keys.empty()) {
        return failure{"the file holds no key"};
    }
    return keys;
}

const key* find_key(const std::vector<key>& keys, std::string_view name) {
    for (const auto& k : keys) {
        if (k.name() == name) {
            return &k;
        }
    }
    return nullptr;
}

proto::auth_mac client_proof(const key& k, const session_nonces& nonces,
                             std::span<const std::uint8_t> welcome_frame) {
    return client_proof_for(k.secret(), k.name(), nonces, welcome_frame);
}

proto::auth_mac server_proof(const key& k, const session_nonces& nonces,
                             std::span<const std::uint8_t> welcome_frame) {
    std::vector<std::uint8_t> message = transcript_starting_with(kServerLabel, nonces);
    wire::writer out(message);
    out.bytes(welcome_frame);
    return hmac_sha256(k.secret(), message);
}

proto::auth_mac test_mac(const key& k, const session_nonces& nonces, std::uint32_t sequence,
                         const proto::test_request& request) {
    std::vector<std::uint8_t> message = transcript_starting_with(kTestLabel, nonces);
    wire::writer out(message);
    out.u32(sequence);
    proto::encode(request, message);
    return hmac_sha256(k.secret(), message);
}

proto::auth_mac report_mac(const key& k, const session_nonces& nonces, std::uint32_t sequence,
                           std::span<const std::uint8_t> report_frame) {
    std::vector<std::uint8_t> message = transcript_starting_with(kReportLabel, nonces);
    wire::writer out(message);
    out.u32(sequence);
    out.bytes(report_frame);
    return hmac_sha256(k.secret(), message);
}

client_check check_client(const std::vector<key>& keys, const proto::auth_response& response,
                          const proto::auth_nonce& server_nonce,
                          std::span<const std::uint8_t> welcome_frame) {
    const key* named = find_key(keys, response.key_name);
    const session_nonces nonces{server_nonce, response.client_nonce};
    const auto expected = client_proof_for(named != nullptr ? named->secret() : dummy_secret(),
                                           response.key_name, nonces, welcome_frame);
    const bool tag_matches = macs_equal(expected, response.mac);
    client_check check;
    check.name_known = named != nullptr;
    check.proven = named != nullptr && tag_matches ? named : nullptr;
    return check;
}

std::uint64_t hmacs_computed() {
    return hmac_count;
}

proto::auth_mac report_tagger::next(std::span<const std::uint8_t> report_frame) {
    ++sequence_;
    return report_mac(key_, nonces_, sequence_, report_frame);
}

client_handshake::next_step client_handshake::on_welcome(const proto::welcome& welcome,
                                                         std::span<const std::uint8_t> welcome_frame) {
    welcome_frame_.assign(welcome_frame.begin(), welcome_frame.end());
    if (key_ == nullptr) {
        return welcome.auth_required ? next_step::refuse_no_key : next_step::go_on;
    }
    // Whoever holds the key would ask for it; a man in the middle would clear exactly this flag.
    return welcome.auth_required ? next_step::authenticate : next_step::refuse_downgrade;
}

proto::auth_response client_handshake::on_challenge(const proto::auth_challenge& challenge,
                                                    const proto::auth_nonce& client_nonce) {
    nonces_ = session_nonces{challenge.nonce, client_nonce};
    return proto::auth_response{key_->name(), client_nonce, client_proof(*key_, nonces_, welcome_frame_)};
}

bool client_handshake::server_proven(const proto::auth_ok& accepted) const {
    return macs_equal(accepted.server_proof, server_proof(*key_, nonces_, welcome_frame_));
}

bool macs_equal(const proto::auth_mac& a, const proto::auth_mac& b) {
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace speed::auth
