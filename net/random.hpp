// Random bytes for tokens and nonces, from the kernel's CSPRNG.
#pragma once

#include <cstdint>
#include <span>

namespace speed::net {

// Fills `bytes` from getrandom; throws std::runtime_error if it fails.
void fill_random(std::span<std::uint8_t> bytes);

}  // namespace speed::net
