#include "net/random.hpp"

#include <sys/random.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace speed::net {

void fill_random(std::span<std::uint8_t> bytes) {
    std::size_t filled = 0;
    while (filled < bytes.size()) {
        const ssize_t got = ::getrandom(bytes.data() + filled, bytes.size() - filled, 0);
        if (got < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw std::runtime_error("getrandom failed: " + std::string(std::strerror(errno)));
        }
        filled += static_cast<std::size_t>(got);
    }
}

std::uint64_t random_nonzero_u64() {
    std::uint64_t value = 0;
    while (value == 0) {
        std::array<std::uint8_t, sizeof value> bytes{};
        fill_random(bytes);
        std::memcpy(&value, bytes.data(), bytes.size());
    }
    return value;
}

}  // namespace speed::net
