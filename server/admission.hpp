// Admission: how many connections and sessions speedsrv takes on, in total and per source "host".
//
// Two stages, each capped globally and per host:
//  - handshake: a connection accepted but whose HELLO has not arrived yet (any kind). Checked right after
//    accept, before anything is read, so a flood is turned away with one write and a close.
//  - session: a control connection past its HELLO, until the session ends.
// A host is the client's address cut to a prefix: /32 (one address) or e.g. /24 for IPv4, /64 for IPv6 (one
// subscriber's network: a single IPv6 host can pick any address in its /64 at will). IPv4-mapped IPv6
// addresses (a dual-stack listener's view of an IPv4 client) count as IPv4.
//
// Pure bookkeeping, no sockets or clocks, used on the server's control thread only (no locks).
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>

namespace speed::server {

struct admission_limits {
    std::size_t max_sessions = 100;
    std::size_t max_sessions_per_host = 4;
    std::size_t max_handshakes = 512;
    std::size_t max_handshakes_per_host = 16;
    unsigned ipv4_prefix_bits = 32;  // 8..32
    unsigned ipv6_prefix_bits = 64;  // 16..128
};

// A client address cut to its host prefix. IPv4 is kept in IPv4-mapped form (::ffff:a.b.c.d).
struct host_key {
    std::array<std::uint8_t, 16> bytes{};
    unsigned prefix_bits = 128;  // of the 128-bit (mapped) form
    auto operator<=>(const host_key&) const = default;
    // "192.0.2.0/24", "2001:db8::/64", "192.0.2.7"
    std::string to_string() const;
};

struct host_key_hash {
    std::size_t operator()(const host_key& key) const;
};

// The host of `address` (4 bytes for IPv4, 16 for IPv6) under the limits' prefixes.
host_key make_host_key(std::span<const std::uint8_t> address, const admission_limits& limits);

class admission_control {
  public:
    enum class stage { handshake, session };

    // A place in one stage for one host; gives it back when destroyed. Movable, not copyable. The
    // admission_control must outlive its slots.
    class slot {
      public:
        slot() = default;
        slot(admission_control* owner, stage which, host_key host)
            : owner_(owner), stage_(which), host_(host) {}
        ~slot() { release(); }
        slot(slot&& other) noexcept;
        slot& operator=(slot&& other) noexcept;
        slot(const slot&) = delete;
        slot& operator=(const slot&) = delete;

        void release();
        bool held() const { return owner_ != nullptr; }
        const host_key& host() const { return host_; }

      private:
        admission_control* owner_ = nullptr;
        stage stage_ = stage::handshake;
        host_key host_;
    };

    // Either a slot or the sentence explaining the refusal (sent with ERROR server_busy).
    struct decision {
        slot granted;
        std::string refusal;
        bool admitted() const { return granted.held(); }
    };

    explicit admission_control(admission_limits limits) : limits_(limits) {}
    admission_control(const admission_control&) = delete;
    admission_control& operator=(const admission_control&) = delete;

    const admission_limits& limits() const { return limits_; }
    host_key host_of(std::span<const std::uint8_t> address) const { return make_host_key(address, limits_); }

    decision try_enter(stage which, const host_key& host);

    std::size_t count(stage which) const { return which == stage::handshake ? handshakes_ : sessions_; }
    std::size_t count(stage which, const host_key& host) const;
    // Hosts with at least one connection in either stage (bounded by the caps: no state outlives its slots).
    std::size_t tracked_hosts() const { return per_host_.size(); }

  private:
    struct host_counts {
        std::size_t handshakes = 0;
        std::size_t sessions = 0;
    };
    void leave(stage which, const host_key& host);

    admission_limits limits_;
    std::size_t handshakes_ = 0;
    std::size_t sessions_ = 0;
    std::unordered_map<host_key, host_counts, host_key_hash> per_host_;
};

}  // namespace speed::server
