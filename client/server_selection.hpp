// `speedcli --servers FILE`: times every candidate briefly and picks the nearest (client/server_list.hpp has
// the list and the choice; docs/operations.md, "A fleet of servers").
#pragma once

#include "client/options.hpp"
#include "client/server_list.hpp"

namespace speed::client {

// How many HELLO -> WELCOME round trips time each candidate (the fastest counts).
inline constexpr int kSelectionRounds = 3;

// Times every server of options.servers at once, each over its own connections: kSelectionRounds times
// connect, HELLO, WELCOME, close; the fastest HELLO -> WELCOME round trip is its figure (what the server's
// answer takes, as Ookla times an HTTP request). A candidate that cannot be reached, refuses (busy, another
// protocol version) or stays silent past --connect-timeout is not chosen, and the reason is kept. Never
// throws.
server_selection select_server(const test_options& options);

}  // namespace speed::client
