#include "tools/netem-tun/packet_tally.hpp"

namespace speed::netem {

namespace {

constexpr std::uint8_t kProtocolIcmp = 1;
constexpr std::uint8_t kProtocolTcp = 6;
constexpr std::uint8_t kProtocolUdp = 17;
constexpr std::uint8_t kProtocolIcmpv6 = 58;
constexpr std::size_t kUdpHeaderBytes = 8;
constexpr std::size_t kIpv6HeaderBytes = 40;

std::uint8_t byte_at(std::span<const std::byte> packet, std::size_t at) {
    return static_cast<std::uint8_t>(packet[at]);
}

std::uint16_t u16_at(std::span<const std::byte> packet, std::size_t at) {
    return static_cast<std::uint16_t>((byte_at(packet, at) << 8) | byte_at(packet, at + 1));
}

ip_protocol protocol_of(std::uint8_t number) {
    switch (number) {
        case kProtocolTcp:
            return ip_protocol::tcp;
        case kProtocolUdp:
            return ip_protocol::udp;
        case kProtocolIcmp:
        case kProtocolIcmpv6:
            return ip_protocol::icmp;
        default:
            return ip_protocol::other;
    }
}

// The UDP payload length from the UDP header at `offset`, when the packet holds it.
std::optional<std::uint32_t> udp_payload_at(std::span<const std::byte> packet, std::size_t offset) {
    if (packet.size() < offset + kUdpHeaderBytes) {
        return std::nullopt;
    }
    const std::uint16_t length = u16_at(packet, offset + 4);  // header included
    if (length < kUdpHeaderBytes) {
        return std::nullopt;
    }
    return static_cast<std::uint32_t>(length - kUdpHeaderBytes);
}

}  // namespace

packet_kind classify_packet(std::span<const std::byte> packet) {
    packet_kind kind;
    if (packet.empty()) {
        return kind;
    }
    const unsigned version = byte_at(packet, 0) >> 4;
    if (version == 4 && packet.size() >= 20) {
        const std::size_t header_bytes = std::size_t{byte_at(packet, 0) & 0x0fU} * 4;
        if (header_bytes < 20) {
            return kind;
        }
        kind.protocol = protocol_of(byte_at(packet, 9));
        const bool first_fragment = (u16_at(packet, 6) & 0x1fffU) == 0;  // fragment offset 0
        if (kind.protocol == ip_protocol::udp && first_fragment) {
            kind.udp_payload_bytes = udp_payload_at(packet, header_bytes);
        }
    } else if (version == 6 && packet.size() >= kIpv6HeaderBytes) {
        kind.protocol = protocol_of(byte_at(packet, 6));  // next header: extension headers are not followed
        if (kind.protocol == ip_protocol::udp) {
            kind.udp_payload_bytes = udp_payload_at(packet, kIpv6HeaderBytes);
        }
    }
    return kind;
}

const char* protocol_name(ip_protocol protocol) {
    switch (protocol) {
        case ip_protocol::tcp:
            return "tcp";
        case ip_protocol::udp:
            return "udp";
        case ip_protocol::icmp:
            return "icmp";
        case ip_protocol::other:
            break;
    }
    return "other";
}

std::uint64_t gso_segment_count(std::span<const std::byte> packet, std::uint32_t segment_payload_bytes) {
    if (segment_payload_bytes == 0 || classify_packet(packet).protocol != ip_protocol::tcp) {
        return 1;
    }
    const unsigned version = byte_at(packet, 0) >> 4;
    const std::size_t ip_header_bytes =
        version == 4 ? std::size_t{byte_at(packet, 0) & 0x0fU} * 4 : kIpv6HeaderBytes;
    if (packet.size() < ip_header_bytes + 20) {
        return 1;
    }
    const std::size_t headers =
        ip_header_bytes + static_cast<std::size_t>(byte_at(packet, ip_header_bytes + 12) >> 4) * 4;
    if (packet.size() <= headers) {
        return 1;
    }
    const std::uint64_t payload = packet.size() - headers;
    return (payload + segment_payload_bytes - 1) / segment_payload_bytes;
}

void packet_tally::count(const packet_kind& kind, bool lost, std::uint64_t segments) {
    const auto add = [lost, segments](packet_counts& counts) {
        counts.received += segments;
        counts.lost += lost ? segments : 0;
    };
    add(protocols_[static_cast<std::size_t>(kind.protocol)]);
    if (!kind.udp_payload_bytes) {
        return;
    }
    const auto found = udp_lengths_.find(*kind.udp_payload_bytes);
    if (found != udp_lengths_.end()) {
        add(found->second);
    } else if (udp_lengths_.size() < kMaxUdpLengths) {
        add(udp_lengths_[*kind.udp_payload_bytes]);
    } else {
        add(udp_untracked_);
    }
}

void packet_tally::released(const packet_kind& kind, std::uint64_t arrival_index) {
    const auto leave = [arrival_index](packet_counts& counts, std::uint64_t& highest) {
        if (arrival_index < highest) {
            ++counts.overtaken;
        } else {
            highest = arrival_index;
        }
    };
    const auto p = static_cast<std::size_t>(kind.protocol);
    leave(protocols_[p], protocols_released_[p]);
    if (!kind.udp_payload_bytes) {
        return;
    }
    // count() saw this packet arrive, so its length is tracked or counted as untracked.
    const auto found = udp_lengths_.find(*kind.udp_payload_bytes);
    if (found != udp_lengths_.end()) {
        leave(found->second, udp_lengths_released_[*kind.udp_payload_bytes]);
    } else {
        leave(udp_untracked_, udp_untracked_released_);
    }
}

}  // namespace speed::netem
