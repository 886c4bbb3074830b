// IP addresses as the server's admission and address checks see them.
#pragma once

#include <asio/ip/address.hpp>
#include <cstdint>
#include <vector>

namespace speed::net {

// The address's bytes: 4 for IPv4, 16 for IPv6.
std::vector<std::uint8_t> address_bytes(const asio::ip::address& address);

// An IPv4-mapped IPv6 address (a dual-stack listener's view of an IPv4 client) as the IPv4 address it is;
// any other address unchanged.
asio::ip::address plain_address(const asio::ip::address& address);

}  // namespace speed::net
