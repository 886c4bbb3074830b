#include "server/admission.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <utility>

namespace speed::server {
namespace {

constexpr std::array<std::uint8_t, 12> kMappedPrefix{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
constexpr unsigned kMappedPrefixBits = 96;

bool is_ipv4_mapped(const std::array<std::uint8_t, 16>& bytes) {
    return std::equal(kMappedPrefix.begin(), kMappedPrefix.end(), bytes.begin());
}

// Clears every bit after the first `bits` of `bytes`.
void mask(std::array<std::uint8_t, 16>& bytes, unsigned bits) {
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        const unsigned first_bit = static_cast<unsigned>(i) * 8;
        if (first_bit >= bits) {
            bytes[i] = 0;
        } else if (bits - first_bit < 8) {
            bytes[i] = static_cast<std::uint8_t>(bytes[i] & (0xffU << (8 - (bits - first_bit))));
        }
    }
}

}  // namespace

std::string host_key::to_string() const {
    char text[INET6_ADDRSTRLEN] = {};
    unsigned shown_bits = prefix_bits;
    unsigned full_bits = 128;
    if (is_ipv4_mapped(bytes)) {
        ::inet_ntop(AF_INET, bytes.data() + 12, text, sizeof text);
        shown_bits = prefix_bits - kMappedPrefixBits;
        full_bits = 32;
    } else {
        ::inet_ntop(AF_INET6, bytes.data(), text, sizeof text);
    }
    std::string result = text;
    if (shown_bits < full_bits) {
        result += "/" + std::to_string(shown_bits);
    }
    return result;
}

std::size_t host_key_hash::operator()(const host_key& key) const {
    // FNV-1a. Attackers choose addresses, but the table never holds more entries than the admission caps
    // allow (a few hundred), so even a flood of colliding keys stays cheap.
    std::uint64_t hash = 0xcbf29ce484222325ULL;
    for (std::uint8_t byte : key.bytes) {
        hash = (hash ^ byte) * 0x100000001b3ULL;
    }
    return hash ^ key.prefix_bits;
}

host_key make_host_key(std::span<const std::uint8_t> address, const admission_limits& limits) {
    host_key key;
    if (address.size() == 4) {
        std::copy(kMappedPrefix.begin(), kMappedPrefix.end(), key.bytes.begin());
        std::copy(address.begin(), address.end(), key.bytes.begin() + 12);
    } else if (address.size() == 16) {
        std::copy(address.begin(), address.end(), key.bytes.begin());
    } else {
        return key;  // not an IP address: every such peer is one "host" (the all-zero key)
    }
    if (is_ipv4_mapped(key.bytes)) {
        key.prefix_bits = kMappedPrefixBits + std::clamp(limits.ipv4_prefix_bits, 8U, 32U);
    } else {
        key.prefix_bits = std::clamp(limits.ipv6_prefix_bits, 16U, 128U);
    }
    mask(key.bytes, key.prefix_bits);
    return key;
}

admission_control::slot::slot(slot&& other) noexcept
    : owner_(std::exchange(other.owner_, nullptr)), stage_(other.stage_), host_(other.host_) {}

admission_control::slot& admission_control::slot::operator=(slot&& other) noexcept {
    if (this != &other) {
        release();
        owner_ = std::exchange(other.owner_, nullptr);
        stage_ = other.stage_;
        host_ = other.host_;
    }
    return *this;
}

void admission_control::slot::release() {
    if (owner_ != nullptr) {
        std::exchange(owner_, nullptr)->leave(stage_, host_);
    }
}

admission_control::decision admission_control::try_enter(stage which, const host_key& host) {
    const bool handshake = which == stage::handshake;
    const std::size_t global_cap = handshake ? limits_.max_handshakes : limits_.max_sessions;
    const std::size_t host_cap = handshake ? limits_.max_handshakes_per_host : limits_.max_sessions_per_host;
    decision result;
    if (count(which) >= global_cap) {
        result.refusal = handshake ? "the server is busy (too many connections being set up); try again later"
                                   : "the server is busy (" + std::to_string(sessions_) +
                                         " tests running); try again later";
        return result;
    }
    if (count(which, host) >= host_cap) {
        result.refusal =
            handshake ? "too many connections being set up from " + host.to_string() + "; try again later"
                      : "the server already runs " + std::to_string(host_cap) + " test" +
                            (host_cap == 1 ? "" : "s") + " from " + host.to_string() + "; try again later";
        return result;
    }
    auto& counts = per_host_[host];
    if (handshake) {
        ++counts.handshakes;
        ++handshakes_;
    } else {
        ++counts.sessions;
        ++sessions_;
    }
    result.granted = slot(this, which, host);
    return result;
}

std::size_t admission_control::count(stage which, const host_key& host) const {
    auto it = per_host_.find(host);
    if (it == per_host_.end()) {
        return 0;
    }
    return which == stage::handshake ? it->second.handshakes : it->second.sessions;
}

void admission_control::leave(stage which, const host_key& host) {
    auto it = per_host_.find(host);
    if (it == per_host_.end()) {
        return;
    }
    auto& counts = it->second;
    if (which == stage::handshake) {
        --counts.handshakes;
        --handshakes_;
    } else {
        --counts.sessions;
        --sessions_;
    }
    if (counts.handshakes == 0 && counts.sessions == 0) {
        per_host_.erase(it);
    }
}

}  // namespace speed::server
