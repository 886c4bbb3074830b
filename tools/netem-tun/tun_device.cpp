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

}  // namespace

tun_device::tun_device(const std::string& name) : name_(name) {
    fd_ = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd_ < 0) {
        throw_errno("open /dev/net/tun");
    }
    ifreq request = request_for(name);
    // IFF_NO_PI: packets are bare IP. No IFF_VNET_HDR: the kernel segments TSO/GSO packets before handing
    // them over, so that loss and delay apply to each packet on the wire, as on a real link.
    request.ifr_flags = IFF_TUN | IFF_NO_PI;
    if (::ioctl(fd_, TUNSETIFF, &request) != 0) {
        const int saved = errno;
        ::close(fd_);
        errno = saved;
        throw_errno("attach to TUN device " + name);
    }
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
