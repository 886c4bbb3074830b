#include "client/monitor/netdev_reader.hpp"

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstring>

#if defined(__linux__) || defined(__APPLE__) || defined(__FreeBSD__) || defined(__NetBSD__) || \
    defined(__OpenBSD__) || defined(__DragonFly__)
#define SPEED_HAVE_GETIFADDRS 1
#include <ifaddrs.h>
#include <net/if.h>
#include <sys/socket.h>
#endif

#if defined(__linux__)
#include <fcntl.h>
#include <netpacket/packet.h>
#include <unistd.h>
#elif defined(SPEED_HAVE_GETIFADDRS)
#include <net/if_dl.h>
#if defined(__APPLE__)
#include <net/if_var.h>
#endif
#endif

namespace speed::client {

std::int64_t monotonic_now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

namespace {

// Runs `read_counters` between two monotonic clock readings and stamps `into` with their midpoint: the
// instant the counters stand for, to within half the read's duration (tens of microseconds).
template <typename ReadCounters>
bool stamped(netdev::reading& into, ReadCounters read_counters) {
    const std::int64_t before_ns = monotonic_now_ns();
    const bool ok = read_counters();
    const std::int64_t after_ns = monotonic_now_ns();
    into.monotonic_ns = before_ns + (after_ns - before_ns) / 2;
    into.wall_time = std::chrono::system_clock::now();
    return ok;
}

#if defined(__linux__)

// /proc/net/dev: one read gives every interface's 64-bit counters (the kernel's rtnl_link_stats64, the
// numbers netlink and sysfs report too), for the network namespace of the reading process.
bool read_proc_net_dev(std::string& text, std::string& error) {
    const char* const path = "/proc/net/dev";
    const int fd = ::open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        error = std::string("cannot open ") + path + ": " + std::strerror(errno);
        return false;
    }
    std::array<char, 16384> buffer{};
    text.clear();
    for (;;) {
        const ssize_t n = ::read(fd, buffer.data(), buffer.size());
        if (n > 0) {
            text.append(buffer.data(), static_cast<std::size_t>(n));
        } else if (n == 0) {
            break;
        } else if (errno != EINTR) {
            error = std::string("cannot read ") + path + ": " + std::strerror(errno);
            ::close(fd);
            return false;
        }
    }
    ::close(fd);
    return true;
}

// Link state from getifaddrs (netlink underneath, so it follows the process's namespace as /proc/net/dev
// does; /sys/class/net shows the namespace sysfs was mounted in): one AF_PACKET entry per interface, with its
// flags and index. The counters stay /proc/net/dev's: getifaddrs carries only the 32-bit rtnl_link_stats.
bool add_link_state(std::vector<netdev::interface_reading>& interfaces, std::string& error) {
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) != 0) {
        error = std::string("getifaddrs: ") + std::strerror(errno);
        return false;
    }
    const netdev::name_index by_name = netdev::index_by_name(interfaces);
    for (const ifaddrs* entry = list; entry != nullptr; entry = entry->ifa_next) {
        if (entry->ifa_addr == nullptr || entry->ifa_addr->sa_family != AF_PACKET) {
            continue;
        }
        const auto found = by_name.find(entry->ifa_name);
        if (found == by_name.end()) {
            continue;  // appeared between the two reads: the next reading has it
        }
        sockaddr_ll link{};
        std::memcpy(&link, entry->ifa_addr, sizeof link);
        netdev::interface_reading& reading = interfaces[found->second];
        reading.up = (entry->ifa_flags & IFF_UP) != 0;
        reading.index = static_cast<unsigned>(link.sll_ifindex);
    }
    ::freeifaddrs(list);
    return true;
}

}  // namespace

std::optional<netdev::reading> read_interfaces(std::string& error) {
    netdev::reading now;
    std::string text;
    if (!stamped(now, [&] { return read_proc_net_dev(text, error); })) {
        return std::nullopt;
    }
    auto parsed = netdev::parse_proc_net_dev(text);
    if (!parsed) {
        error = "/proc/net/dev: " + parsed.error();
        return std::nullopt;
    }
    now.interfaces = std::move(*parsed);
    if (!add_link_state(now.interfaces, error)) {
        return std::nullopt;
    }
    return now;
}

#elif defined(SPEED_HAVE_GETIFADDRS)

// macOS and the BSDs: getifaddrs gives one AF_LINK entry per interface whose ifa_data is the kernel's if_data
// counters (32-bit on macOS: the wrap rule of common/netdev.hpp covers them). Not built by this project's CI.
bool read_link_counters(std::vector<netdev::interface_reading>& interfaces, std::string& error) {
    ifaddrs* list = nullptr;
    if (::getifaddrs(&list) != 0) {
        error = std::string("getifaddrs: ") + std::strerror(errno);
        return false;
    }
    for (const ifaddrs* entry = list; entry != nullptr; entry = entry->ifa_next) {
        if (entry->ifa_addr == nullptr || entry->ifa_addr->sa_family != AF_LINK ||
            entry->ifa_data == nullptr) {
            continue;
        }
        const auto* data = static_cast<const struct if_data*>(entry->ifa_data);
        netdev::interface_reading reading;
        reading.name = entry->ifa_name;
        reading.total.rx_bytes = data->ifi_ibytes;
        reading.total.rx_packets = data->ifi_ipackets;
        reading.total.rx_errors = data->ifi_ierrors;
        reading.total.rx_dropped = data->ifi_iqdrops;
        reading.total.tx_bytes = data->ifi_obytes;
        reading.total.tx_packets = data->ifi_opackets;
        reading.total.tx_errors = data->ifi_oerrors;
#if defined(__FreeBSD__) || defined(__OpenBSD__)
        reading.total.tx_dropped = data->ifi_oqdrops;
#endif
        sockaddr_dl link{};
        std::memcpy(&link, entry->ifa_addr,
                    std::min(sizeof link, static_cast<std::size_t>(entry->ifa_addr->sa_len)));
        reading.up = (entry->ifa_flags & IFF_UP) != 0;
        reading.index = link.sdl_index;
        interfaces.push_back(std::move(reading));
    }
    ::freeifaddrs(list);
    return true;
}

}  // namespace

std::optional<netdev::reading> read_interfaces(std::string& error) {
    netdev::reading now;
    if (!stamped(now, [&] { return read_link_counters(now.interfaces, error); })) {
        return std::nullopt;
    }
    return now;
}

#else

}  // namespace

std::optional<netdev::reading> read_interfaces(std::string& error) {
    error =
        "reading interface counters is not supported on this system (speedcli monitor needs Linux's "
        "/proc/net/dev or the getifaddrs link counters of macOS and the BSDs)";
    return std::nullopt;
}

#endif

}  // namespace speed::client
