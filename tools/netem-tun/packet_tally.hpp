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

// How many packets on the wire a TCP super-packet of `packet` (a bare IPv4 or IPv6 packet, as classified
// above) carrying segments of at most `segment_payload_bytes` becomes: its TCP payload divided by the segment
// size, rounded up; 1 for anything unparseable or a segment size of 0.
std::uint64_t gso_segment_count(std::span<const std::byte> packet, std::uint32_t segment_payload_bytes);

struct packet_counts {
    std::uint64_t received = 0;
    std::uint64_t lost = 0;
    // Forwarded packets released after a packet of the same kind that arrived later than they did: for one
    // UDP flow, the datagrams its receiver counts as out of order (docs/netlab.md).
    std::uint64_t overtaken = 0;
    bool operator==(const packet_counts&) const = default;
};

// Counts per protocol and per UDP payload length. At most kMaxUdpLengths distinct lengths are tracked (so a
// flood of odd sizes cannot grow it without bound); datagrams of further lengths count in
// `udp_untracked_lengths` only.
class packet_tally {
  public:
    static constexpr std::size_t kMaxUdpLengths = 64;

    // `segments` packets of `kind` arrived (a GSO super-packet counts as the packets it becomes).
    void count(const packet_kind& kind, bool lost, std::uint64_t segments = 1);
    // A packet of `kind` leaves; `arrival_index` numbers the packets of the direction in arrival order
    // (rising, from 1). It was overtaken when a packet of the same kind with a higher index left before it.
    void released(const packet_kind& kind, std::uint64_t arrival_index);

    const packet_counts& protocol(ip_protocol p) const { return protocols_[static_cast<std::size_t>(p)]; }
    const std::map<std::uint32_t, packet_counts>& udp_by_payload_bytes() const { return udp_lengths_; }
    const packet_counts& udp_untracked_lengths() const { return udp_untracked_; }

  private:
    std::array<packet_counts, 4> protocols_{};  // indexed by ip_protocol
    std::map<std::uint32_t, packet_counts> udp_lengths_;
    packet_counts udp_untracked_;
    // The highest arrival index released so far, per entry above (0: none yet).
    std::array<std::uint64_t, 4> protocols_released_{};
    std::map<std::uint32_t, std::uint64_t> udp_lengths_released_;
    std::uint64_t udp_untracked_released_ = 0;
};

}  // namespace speed::netem
