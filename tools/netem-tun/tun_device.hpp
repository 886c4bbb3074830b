// A TUN interface opened for reading and writing whole IP packets, each behind a virtio-net header
// (IFF_VNET_HDR, no packet-information header).
#pragma once

#include <sys/types.h>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace speed::netem {

class tun_device {
  public:
    // The virtio-net header (struct virtio_net_hdr) in front of every packet read and written.
    static constexpr std::size_t kHeaderBytes = 10;
    // The largest packet with segmentation offload: an IPv4 or IPv6 GSO packet of 64 KiB plus headers.
    static constexpr std::size_t kMaxOffloadPacketBytes = 65536 + 256;

    // Attaches to the TUN interface `name` (as made by `ip tuntap add NAME mode tun`), or creates one that
    // lives as long as this object. The descriptor is non-blocking. With `segmentation_offload` the device
    // advertises checksum offload and TSO (IPv4, IPv6), so that the kernel hands over TCP super-packets of up
    // to 64 KiB in one read, described by the header; without it the kernel segments them first and every
    // read is one packet of the wire. Throws std::system_error on failure.
    tun_device(const std::string& name, bool segmentation_offload);
    ~tun_device();
    tun_device(tun_device&& other) noexcept;
    tun_device& operator=(tun_device&&) = delete;
    tun_device(const tun_device&) = delete;
    tun_device& operator=(const tun_device&) = delete;

    int fd() const { return fd_; }
    const std::string& name() const { return name_; }
    // The interface's MTU: the largest packet the kernel hands to us.
    std::size_t mtu() const;

    // One packet, header first, into `buffer`; returns its length, 0 when none is waiting. Throws on other
    // errors.
    std::size_t read_packet(std::span<std::byte> buffer);
    // Hands one packet (header first, as read) back to the kernel, which routes it as if it had arrived on
    // this interface. Returns false when the kernel refused it (counted, not fatal: a real link drops packets
    // too).
    bool write_packet(std::span<const std::byte> packet);

    // The TCP segment size of a super-packet `frame` (as read: header first); 0 for an ordinary packet.
    static std::uint32_t segment_size(std::span<const std::byte> frame);

  private:
    std::string name_;
    int fd_ = -1;
};

}  // namespace speed::netem
