#include "common/auth.hpp"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>
#include <cctype>

#include "common/wire.hpp"

namespace speed::auth {
namespace {

constexpr std::string_view kSessionLabel = "speedtest session v1";
constexpr std::string_view kTestLabel = "speedtest test v1";

proto::auth_mac hmac_sha256(std::span<const std::uint8_t> secret, std::span<const std::uint8_t> message) {
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
std::vector<std::uint8_t> transcript_starting_with(std::string_view label) {
    std::vector<std::uint8_t> out;
    out.reserve(512);
    out.insert(out.end(), label.begin(), label.end());
    return out;
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

std::variant<std::vector<key>, std::string> parse_key_file(std::string_view text) {
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
            return where + "expected 'NAME HEX-SECRET'";
        }
        if (!valid_key_name(fields[0])) {
            return where + "a key name is 1 to 64 characters of A-Z a-z 0-9 . _ -";
        }
        auto secret = parse_hex(fields[1]);
        if (!secret) {
            return where + "the secret is not an even number of hex digits";
        }
        if (secret->size() < kMinSecretBytes || secret->size() > kMaxSecretBytes) {
            const std::size_t got = secret->size();
            OPENSSL_cleanse(secret->data(), secret->size());
            return where + "the secret has " + std::to_string(got) + " bytes; it needs " +
                   std::to_string(kMinSecretBytes) + " to " + std::to_string(kMaxSecretBytes) +
                   " (e.g. 'openssl rand -hex 32')";
        }
        if (find_key(keys, fields[0]) != nullptr) {
            return where + "the key name '" + std::string(fields[0]) + "' is used twice";
        }
        keys.emplace_back(std::string(fields[0]), std::move(*secret));
    }
    if (keys.empty()) {
        return std::string("the file holds no key");
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

proto::auth_mac session_mac(const key& k, const proto::auth_nonce& nonce) {
    std::vector<std::uint8_t> message = transcript_starting_with(kSessionLabel);
    wire::writer out(message);
    out.bytes(nonce);
    out.string16(k.name());
    return hmac_sha256(k.secret(), message);
}

proto::auth_mac test_mac(const key& k, const proto::auth_nonce& nonce, std::uint32_t sequence,
                         const proto::test_request& request) {
    std::vector<std::uint8_t> message = transcript_starting_with(kTestLabel);
    wire::writer out(message);
    out.bytes(nonce);
    out.u32(sequence);
    proto::encode(request, message);
    return hmac_sha256(k.secret(), message);
}

bool macs_equal(const proto::auth_mac& a, const proto::auth_mac& b) {
    return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

}  // namespace speed::auth
