// Asio 1.22 predates std::span: wrap spans as Asio buffers.
#pragma once

#include <asio/buffer.hpp>
#include <cstdint>
#include <span>

namespace speed::net {

inline asio::mutable_buffer as_buffer(std::span<std::uint8_t> bytes) {
    return {bytes.data(), bytes.size()};
}
inline asio::const_buffer as_buffer(std::span<const std::uint8_t> bytes) {
    return {bytes.data(), bytes.size()};
}

}  // namespace speed::net
