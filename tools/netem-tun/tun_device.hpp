// A TUN interface opened for reading and writing whole IP packets (no packet-information header).
#pragma once

#include <sys/types.h>
#include <cstddef>
#include <span>
#include <string>

namespace speed::netem {

class tun_device {
  public:
    // Attaches to the TUN interface `name` (as made by `ip tuntap add NAME mode tun`), or creates one that
    // lives as long as this object. The descriptor is non-blocking. Throws std::system_error on failure.
    explicit tun_device(const std::string& name);
    ~tun_device();
    tun_device(tun_device&& other) noexcept;
    tun_device& operator=(tun_device&&) = delete;
    tun_device(const tun_device&) = delete;
    tun_device& operator=(const tun_device&) = delete;

    int fd() const { return fd_; }
    const std::string& name() const { return name_; }
    // The interface's MTU: the largest packet the kernel hands to us.
    std::size_t mtu() const;

    // One packet into `buffer`; returns its length, 0 when none is waiting. Throws on other errors.
    std::size_t read_packet(std::span<std::byte> buffer);
    // Hands one packet back to the kernel, which routes it as if it had arrived on this interface. Returns
    // false when the kernel refused it (counted, not fatal: a real link drops packets too).
    bool write_packet(std::span<const std::byte> packet);

  private:
    std::string name_;
    int fd_ = -1;
};

}  // namespace speed::netem
