// Reading this host's interface counters for `speedcli monitor`: /proc/net/dev on Linux, getifaddrs link
// counters on macOS and the BSDs, a clear error elsewhere. docs/monitor.md explains the choice of source.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/netdev.hpp"

namespace speed::client {

// The monotonic clock every reading is stamped with, in nanoseconds.
std::int64_t monotonic_now_ns();

// Reads every interface's counters and link state (up, index) in this process's network namespace, stamped
// with the monotonic and wall clocks at the instant the counters were read. On failure returns nothing and
// says why in `error`.
std::optional<netdev::reading> read_interfaces(std::string& error);

}  // namespace speed::client
