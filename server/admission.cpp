#include "server/admission.hpp"

#include <arpa/inet.h>

#include <algorithm>
#include <utility>

namespace speed::server {
namespace {

constexpr std::array<std::uint8_t, 12> kMappedPrefix{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
constexpr unsigned kMappedPrefixBits = 96;

// Aggregate networks: an IPv4 /24 (in mapped form), an IPv6 /56 and /48.
constexpr unsigned kIpv4NetworkBits = kMappedPrefixBits + 24;
constexpr unsigned kIpv6SubscriberBits = 56;
constexpr unsigned kIpv6SiteBits = 48;

bool is_ipv4_mapped(const std::array<std::uint8_t, 16>& bytes) {
    return std::equal(kMappedPrefix.begin(), kMappedPrefix.end(), bytes.begin());
}

// 2002:AABB:CCDD::/48, the 6to4 prefix of the IPv4 address AA.BB.CC.DD (RFC 3056).
bool is_6to4(const std::array<std::uint8_t, 16>& bytes) {
    return bytes[0] == 0x20 && bytes[1] == 0x02;
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
        if (is_6to4(key.bytes)) {
            const std::array<std::uint8_t, 4> embedded{key.bytes[2], key.bytes[3], key.bytes[4],
                                                       key.bytes[5]};
            return make_host_key(embedded, limits);
        }
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

host_networks networks_of(const host_key& host) {
    host_networks networks;
    const auto add = [&](unsigned bits) {
        if (host.prefix_bits < bits) {
            return;  // the host prefix itself is this wide or wider: the per-host cap already covers it
        }
        host_key network = host;
        network.prefix_bits = bits;
        mask(network.bytes, bits);
        networks.keys[networks.count++] = network;
    };
    if (is_ipv4_mapped(host.bytes)) {
        add(kIpv4NetworkBits);
    } else {
        add(kIpv6SubscriberBits);
        add(kIpv6SiteBits);
    }
    return networks;
}

std::size_t admission_limits::handshakes_reserved() const {
    return std::min(reserved_handshakes.value_or(max_handshakes / 4), max_handshakes);
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
    std::size_t global_cap = handshake ? limits_.max_handshakes : limits_.max_sessions;
    const std::size_t host_cap = handshake ? limits_.max_handshakes_per_host : limits_.max_sessions_per_host;
    const bool has_session = count(stage::session, host) > 0;
    if (handshake && !has_session) {
        global_cap -= limits_.handshakes_reserved();
    }
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
    const host_networks networks = networks_of(host);
    for (std::size_t i = 0; i < networks.count; ++i) {
        const host_key& network = networks.keys[i];
        const std::size_t cap = network_cap(which, network);
        if (count_in_network(which, network) >= cap) {
            result.refusal =
                handshake
                    ? "too many connections being set up from " + network.to_string() + "; try again later"
                    : "the server already runs " + std::to_string(cap) + " test" + (cap == 1 ? "" : "s") +
                          " from " + network.to_string() + "; try again later";
            return result;
        }
    }
    ++per_host_[host].of(which);
    for (std::size_t i = 0; i < networks.count; ++i) {
        ++per_network_[networks.keys[i]].of(which);
    }
    ++(handshake ? handshakes_ : sessions_);
    result.granted = slot(this, which, host);
    return result;
}

std::size_t admission_control::network_cap(stage which, const host_key& network) const {
    if (which == stage::handshake) {
        return limits_.max_handshakes_per_network;
    }
    switch (network.prefix_bits) {
        case kIpv4NetworkBits:
            return limits_.max_sessions_per_ipv4_24;
        case kIpv6SubscriberBits:
            return limits_.max_sessions_per_ipv6_56;
        default:
            return limits_.max_sessions_per_ipv6_48;
    }
}

std::size_t admission_control::count(stage which, const host_key& host) const {
    auto it = per_host_.find(host);
    return it == per_host_.end() ? 0 : it->second.of(which);
}

std::size_t admission_control::count_in_network(stage which, const host_key& network) const {
    auto it = per_network_.find(network);
    return it == per_network_.end() ? 0 : it->second.of(which);
}

void admission_control::decrement(count_table& table, stage which, const host_key& key) {
    auto it = table.find(key);
    if (it == table.end()) {
        return;
    }
    --it->second.of(which);
    if (it->second.handshakes == 0 && it->second.sessions == 0) {
        table.erase(it);
    }
}

void admission_control::leave(stage which, const host_key& host) {
    if (per_host_.find(host) == per_host_.end()) {
        return;
    }
    decrement(per_host_, which, host);
    const host_networks networks = networks_of(host);
    for (std::size_t i = 0; i < networks.count; ++i) {
        decrement(per_network_, which, networks.keys[i]);
    }
    --(which == stage::handshake ? handshakes_ : sessions_);
}

void connections_per_host::opened(std::uint64_t id, const host_key& host) {
    if (host_of_.emplace(id, host).second) {
        ++per_host_[host];
    }
}

void connections_per_host::closed(std::uint64_t id) {
    const auto found = host_of_.find(id);
    if (found == host_of_.end()) {
        return;
    }
    const auto counted = per_host_.find(found->second);
    if (counted != per_host_.end() && --counted->second == 0) {
        per_host_.erase(counted);
    }
    host_of_.erase(found);
}

std::size_t connections_per_host::count(const host_key& host) const {
    const auto found = per_host_.find(host);
    return found == per_host_.end() ? 0 : found->second;
}

}  // namespace speed::server
