#include "net/address.hpp"

namespace speed::net {

std::vector<std::uint8_t> address_bytes(const asio::ip::address& address) {
    if (address.is_v4()) {
        const auto bytes = address.to_v4().to_bytes();
        return {bytes.begin(), bytes.end()};
    }
    const auto bytes = address.to_v6().to_bytes();
    return {bytes.begin(), bytes.end()};
}

asio::ip::address plain_address(const asio::ip::address& address) {
    return address.is_v6() && address.to_v6().is_v4_mapped()
               ? asio::ip::address(asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6()))
               : address;
}

}  // namespace speed::net
