#include "tools/netem-tun/tun_device.hpp"

#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

namespace speed::netem {

namespace {

[[noreturn]] void throw_errno(const std::string& what) {
    throw std::system_error(errno, std::generic_category(), what);
}

ifreq request_for(const std::string& name) {
    ifreq request{};
    std::strncpy(request.ifr_name, name.c_str(), IFNAMSIZ - 1);
    return request;
}

// struct virtio_net_hdr (linux/virtio_net.h cannot be included from C++: a member there is named `class`).
struct virtio_net_header {
    std::uint8_t flags;
    std::uint8_t gso_type;
    std::uint16_t hdr_len;
    std::uint16_t gso_size;
    std::uint16_t csum_start;
    std::uint16_t csum_offset;
};
static_assert(sizeof(virtio_net_header) == tun_device::kHeaderBytes);
constexpr std::uint8_t kGsoNone = 0;    // VIRTIO_NET_HDR_GSO_NONE
constexpr std::uint8_t kGsoEcn = 0x80;  // VIRTIO_NET_HDR_GSO_ECN, a flag on the type

}  // namespace

tun_device::tun_device(const std::string& name, bool segmentation_offload) : name_(name) {
    fd_ = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd_ < 0) {
        throw_errno("open /dev/net/tun");
    }
    ifreq request = request_for(name);
    // IFF_NO_PI: packets are bare IP behind the virtio-net header (IFF_VNET_HDR), which describes a
    // super-packet's segmentation and its partial checksum.
    request.ifr_flags = IFF_TUN | IFF_NO_PI | IFF_VNET_HDR;
    // Offloads the device accepts from the kernel: none means the kernel segments GSO packets and completes
    // checksums before they reach us.
    const unsigned offloads =
        segmentation_offload ? TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN : 0U;
    if (::ioctl(fd_, TUNSETIFF, &request) != 0 || ::ioctl(fd_, TUNSETOFFLOAD, offloads) != 0) {
        const int saved = errno;
        ::close(fd_);
        errno = saved;
        throw_errno("attach to TUN device " + name);
    }
}

std::uint32_t tun_device::segment_size(std::span<const std::byte> frame) {
    if (frame.size() < kHeaderBytes) {
        return 0;
    }
    virtio_net_header header{};
    std::memcpy(&header, frame.data(), sizeof header);
    // Native byte order: the device is not switched to little-endian headers (TUNSETVNETLE).
    return (header.gso_type & ~kGsoEcn) == kGsoNone ? 0U : header.gso_size;
}

tun_device::~tun_device() {
    if (fd_ >= 0) {
        ::close(fd_);
    }
}

tun_device::tun_device(tun_device&& other) noexcept : name_(std::move(other.name_)), fd_(other.fd_) {
    other.fd_ = -1;
}

std::size_t tun_device::mtu() const {
    const int sock = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0) {
        throw_errno("socket");
    }
    ifreq request = request_for(name_);
    const int rc = ::ioctl(sock, SIOCGIFMTU, &request);
    const int saved = errno;
    ::close(sock);
    if (rc != 0) {
        errno = saved;
        throw_errno("read the MTU of " + name_);
    }
    return static_cast<std::size_t>(request.ifr_mtu);
}

std::size_t tun_device::read_packet(std::span<std::byte> buffer) {
    for (;;) {
        const ssize_t n = ::read(fd_, buffer.data(), buffer.size());
        if (n >= 0) {
            return static_cast<std::size_t>(n);
        }
        if (errno == EAGAIN) {
            return 0;
        }
        if (errno != EINTR) {
            throw_errno("read from " + name_);
        }
    }
}

bool tun_device::write_packet(std::span<const std::byte> packet) {
    for (;;) {
        const ssize_t n = ::write(fd_, packet.data(), packet.size());
        if (n >= 0) {
            return static_cast<std::size_t>(n) == packet.size();
        }
        if (errno != EINTR) {
            return false;
        }
    }
}

}  // namespace speed::netem
