// What kind of packet netem-tun forwarded or dropped: per IP protocol, and for UDP per payload length. The
// namespace lab compares a tool's reported loss with exactly the datagrams netem-tun dropped, and needs to
// tell them from the TCP control connection and from smaller handshake, feedback or probe datagrams that
// share the path (docs/netlab.md).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>

namespace speed::netem {

enum class ip_protocol { tcp, udp, icmp, other };

struct packet_kind {
    ip_protocol protocol = ip_protocol::other;
    // UDP payload bytes (the UDP length field minus its 8-byte header); nothing for other protocols, for a
    // fragment after the first and for a packet too short to hold the UDP header.
    std::optional<std::uint32_t> udp_payload_bytes;
};

// Classifies a bare IPv4 or IPv6 packet (a TUN device without packet information). IPv6 extension headers are
// not followed: such a packet is `other`. Anything unparseable is `other`.
packet_kind classify_packet(std::span<const std::byte> packet);

const char* protocol_name(ip_protocol protocol);

struct packet_counts {
    std::uint64_t received = 0;
    std::uint64_t lost = 0;
    bool operator==(const packet_counts&) const = default;
};

// Counts per protocol and per UDP payload length. At most kMaxUdpLengths distinct lengths are tracked (so a
// flood of odd sizes cannot grow it without bound); datagrams of further lengths count in
// `udp_untracked_lengths` only.
class packet_tally {
  public:
    static constexpr std::size_t kMaxUdpLengths = 64;

    void count(const packet_kind& kind, bool lost);

    const packet_counts& protocol(ip_protocol p) const { return protocols_[static_cast<std::size_t>(p)]; }
    const std::map<std::uint32_t, packet_counts>& udp_by_payload_bytes() const { return udp_lengths_; }
    const packet_counts& udp_untracked_lengths() const { return udp_untracked_; }

  private:
    std::array<packet_counts, 4> protocols_{};  // indexed by ip_protocol
    std::map<std::uint32_t, packet_counts> udp_lengths_;
    packet_counts udp_untracked_;
};

}  // namespace speed::netem
