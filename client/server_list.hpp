// `speedcli --servers FILE`: the candidate servers of a fleet, and the choice of the nearest (Ookla-style:
// each is timed briefly, the test runs against the one that answered fastest). Pure: the I/O is in
// client/server_selection.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/result.hpp"

namespace speed::client {

struct server_address {
    std::string host;
    std::uint16_t port = 0;
    bool operator==(const server_address&) const = default;
};

// The most candidates a list may hold: each costs a few connections and a session on its server.
inline constexpr std::size_t kMaxServers = 64;

// A server list: either one `host[:port]` per line (`[v6-address]:port` for IPv6 with a port; blank lines and
// `#` comments are skipped), or a JSON array whose elements are "host[:port]" strings or {"host": ...,
// "port": ...} objects. A missing port is `default_port`.
result<std::vector<server_address>> parse_server_list(std::string_view text, std::uint16_t default_port);

// One candidate as it was timed: the fastest of its HELLO -> WELCOME round trips, or why it could not be
// used.
struct server_candidate {
    server_address address;
    std::optional<double> rtt_ms;
    std::string error;  // when rtt_ms is empty
};

struct server_selection {
    std::vector<server_candidate> candidates;
    std::optional<std::size_t> chosen;  // the index of the nearest; empty when none answered
};

// The candidate with the shortest round trip; the first in the list among equals; nothing when none has one.
std::optional<std::size_t> nearest(const std::vector<server_candidate>& candidates);

}  // namespace speed::client
