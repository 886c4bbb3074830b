#include "server/systemd_notify.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace speed::server {

namespace {

std::optional<unsigned long long> number_from_environment(const char* name) {
    const char* text = std::getenv(name);
    if (text == nullptr || *text == '\0') {
        return std::nullopt;
    }
    char* end = nullptr;
    errno = 0;
    const unsigned long long value = std::strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0') {
        return std::nullopt;
    }
    return value;
}

}  // namespace

systemd_notifier systemd_notifier::from_environment() {
    systemd_notifier notifier;
    const char* path = std::getenv("NOTIFY_SOCKET");
    if (path == nullptr || (path[0] != '/' && path[0] != '@') ||
        std::strlen(path) >= sizeof(sockaddr_un::sun_path)) {
        return notifier;
    }
    notifier.socket_path_ = path;
    const auto usec = number_from_environment("WATCHDOG_USEC");
    const auto pid = number_from_environment("WATCHDOG_PID");
    const bool ours = !pid || *pid == static_cast<unsigned long long>(::getpid());
    if (usec && *usec > 0 && ours) {
        notifier.watchdog_interval_ = std::chrono::microseconds(*usec / 2);
    }
    return notifier;
}

bool systemd_notifier::notify(std::string_view state) const {
    if (!enabled()) {
        return false;
    }
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::memcpy(address.sun_path, socket_path_.data(), socket_path_.size());
    if (address.sun_path[0] == '@') {
        address.sun_path[0] = '\0';  // the abstract namespace: the name is not a file
    }
    const auto length = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_path_.size());
    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        return false;
    }
    // Never blocks the control thread: a notification systemd has no room for is dropped (the next comes
    // soon).
    const ssize_t sent = ::sendto(fd, state.data(), state.size(), MSG_NOSIGNAL | MSG_DONTWAIT,
                                  reinterpret_cast<const sockaddr*>(&address), length);
    ::close(fd);
    return sent == static_cast<ssize_t>(state.size());
}

}  // namespace speed::server
