// speedcli's TCP connections to the server (control, probe and data): each is opened within the
// --connect-timeout and starts with a HELLO.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/ip/udp.hpp>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "client/options.hpp"
#include "common/protocol.hpp"

namespace speed::client {

// Reaching the server failed: name resolution, refusal, connect timeout.
class unreachable_error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

// "ADDRESS port PORT", for error messages.
std::string describe(const asio::ip::address& address, std::uint16_t port);
std::string describe(const asio::ip::tcp::endpoint& endpoint);

// Connects to `endpoint` within `timeout_seconds`; throws unreachable_error otherwise. Every connection takes
// `sockets.bind_address`; a data connection (`data_stream`: its index) also takes the data sockets' settings
// and the local port data_port + index.
asio::awaitable<asio::ip::tcp::socket> connect(const asio::ip::tcp::endpoint& endpoint,
                                               double timeout_seconds, const socket_settings& sockets,
                                               std::optional<std::uint16_t> data_stream = std::nullopt);

// Opens `socket` for `server`'s protocol and applies `sockets` as connect() does, for a UDP socket: the bind
// address (the server takes UDP only from the control connection's address), the port of data stream
// `data_stream` and the TOS. Throws unreachable_error when the local address cannot be had.
void prepare_udp_socket(asio::ip::udp::socket& socket, const asio::ip::udp::endpoint& server,
                        const socket_settings& sockets, std::optional<std::uint16_t> data_stream);

// The addresses `host` resolves to for `family`, in the resolver's order; throws unreachable_error.
asio::awaitable<std::vector<asio::ip::tcp::endpoint>> resolve(const std::string& host, std::uint16_t port,
                                                              address_family family);

// The HELLO that opens each connection to the server, naming speedcli's version.
proto::hello make_hello(proto::connection_kind kind, const proto::session_token& token,
                        std::uint32_t test_id = 0, std::uint16_t stream_index = 0);

}  // namespace speed::client
