// systemd's readiness and watchdog protocol (sd_notify(3)), written out: one datagram of "KEY=VALUE" lines to
// the unix socket named by NOTIFY_SOCKET (a path, or '@' for the abstract namespace). Outside systemd (no
// NOTIFY_SOCKET) every call does nothing.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace speed::server {

class systemd_notifier {
  public:
    // Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID (the watchdog is ours only when WATCHDOG_PID is
    // unset or our pid).
    static systemd_notifier from_environment();

    bool enabled() const { return !socket_path_.empty(); }
    // How often systemd wants WATCHDOG=1: half of WATCHDOG_USEC, as sd_watchdog_enabled(3) advises. Nothing
    // when systemd runs no watchdog for us.
    std::optional<std::chrono::microseconds> watchdog_interval() const { return watchdog_interval_; }

    // Sends `state` ("READY=1", "WATCHDOG=1", "STOPPING=1", ...). False when it could not be sent.
    bool notify(std::string_view state) const;

  private:
    std::string socket_path_;
    std::optional<std::chrono::microseconds> watchdog_interval_;
};

}  // namespace speed::server
