// speedcli's TCP connections to the server (control, probe and data): each is opened within the
// --connect-timeout and starts with a HELLO.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <cstdint>
#include <stdexcept>
#include <string>

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

// Connects to `endpoint` within `timeout_seconds`; throws unreachable_error otherwise.
asio::awaitable<asio::ip::tcp::socket> connect(const asio::ip::tcp::endpoint& endpoint,
                                               double timeout_seconds);

// The HELLO that opens each connection to the server, naming speedcli's version.
proto::hello make_hello(proto::connection_kind kind, const proto::session_token& token,
                        std::uint32_t test_id = 0, std::uint16_t stream_index = 0);

}  // namespace speed::client
