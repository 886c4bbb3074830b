// Admission: how many connections and sessions speedsrv takes on, in total and per source "host".
//
// Two stages, each capped globally and per host:
//  - handshake: a connection accepted but whose HELLO has not arrived yet (any kind). Checked right after
//    accept, before anything is read, so a flood is turned away with one write and a close.
//  - session: a control connection past its HELLO, until the session ends.
// A host is the client's address cut to a prefix: /32 (one address) or e.g. /24 for IPv4, /64 for IPv6 (one
// subscriber's network: a single IPv6 host can pick any address in its /64 at will). IPv4-mapped IPv6
// addresses (a dual-stack listener's view of an IPv4 client) count as IPv4, and so do 6to4 addresses
// (2002:AABB:CCDD::/48 belongs to the IPv4 host AA.BB.CC.DD, which would otherwise hold 65,536 /64s).
//
// Besides the per-host caps, every host belongs to networks with aggregate caps of their own, so that many
// cheap addresses of one operator cannot hold the whole server: an IPv4 /24, and for IPv6 the /56 and the /48
// (the prefixes ISPs delegate to one subscriber or site). Part of the handshake pool is kept for hosts that
// already run a session, so that a handshake flood from elsewhere cannot shut out their data and probe
// connections.
//
// Pure bookkeeping, no sockets or clocks, used on the server's control thread only (no locks); the browser
// test port's per-host connection count (connections_per_host, below) on the web thread.
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
    // Aggregate caps over the networks a host is in (docs/operations.md explains the defaults).
    std::size_t max_sessions_per_ipv4_24 = 16;
    std::size_t max_sessions_per_ipv6_56 = 8;
    std::size_t max_sessions_per_ipv6_48 = 16;
    std::size_t max_handshakes_per_network = 64;  // per IPv4 /24, IPv6 /56 and IPv6 /48 alike
    // Handshakes only hosts with a live session may use; nothing = a quarter of max_handshakes.
    std::optional<std::size_t> reserved_handshakes;
    std::size_t handshakes_reserved() const;
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

// The networks with aggregate caps that `host` is in: its IPv4 /24, or its IPv6 /56 and /48 (fewer when the
// host prefix is already as short).
struct host_networks {
    std::array<host_key, 2> keys{};
    std::size_t count = 0;
};
host_networks networks_of(const host_key& host);

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
    // Counts of a network from networks_of().
    std::size_t count_in_network(stage which, const host_key& network) const;
    // Hosts with at least one connection in either stage (bounded by the caps: no state outlives its slots).
    std::size_t tracked_hosts() const { return per_host_.size(); }
    std::size_t tracked_networks() const { return per_network_.size(); }

  private:
    struct host_counts {
        std::size_t handshakes = 0;
        std::size_t sessions = 0;
        std::size_t& of(stage which) { return which == stage::handshake ? handshakes : sessions; }
        std::size_t of(stage which) const { return which == stage::handshake ? handshakes : sessions; }
    };
    using count_table = std::unordered_map<host_key, host_counts, host_key_hash>;
    std::size_t network_cap(stage which, const host_key& network) const;
    void leave(stage which, const host_key& host);
    static void decrement(count_table& table, stage which, const host_key& key);

    admission_limits limits_;
    std::size_t handshakes_ = 0;
    std::size_t sessions_ = 0;
    count_table per_host_;
    count_table per_network_;
};

// Connections open at once per host on a listener whose total is capped elsewhere: the browser test's HTTP
// port (server/web_server.hpp), where RESTinio caps the total and this the share one host may hold, so that
// one host's idle connections cannot take every slot. Connections are known by an id that is unique while
// they are open (RESTinio's connection id). Pure bookkeeping, one thread only (the web thread).
class connections_per_host {
  public:
    explicit connections_per_host(std::size_t max_per_host) : max_per_host_(max_per_host) {}

    std::size_t max_per_host() const { return max_per_host_; }
    // Whether one more connection from `host` stays within the cap.
    bool allows(const host_key& host) const { return count(host) < max_per_host_; }
    // Connection `id` from `host` is open / has closed. An id already open, or one not open, changes nothing,
    // so a close reported twice cannot free another connection's place.
    void opened(std::uint64_t id, const host_key& host);
    void closed(std::uint64_t id);

    std::size_t count(const host_key& host) const;
    std::size_t open() const { return host_of_.size(); }
    // Hosts with at least one open connection (no state outlives the connections).
    std::size_t tracked_hosts() const { return per_host_.size(); }

  private:
    std::size_t max_per_host_;
    std::unordered_map<std::uint64_t, host_key> host_of_;
    std::unordered_map<host_key, std::size_t, host_key_hash> per_host_;
};

}  // namespace speed::server
