// Random bytes for tokens and nonces, from the kernel's CSPRNG.
#pragma once

#include <cstdint>
#include <span>

namespace speed::net {

// Fills `bytes` from getrandom; throws std::runtime_error if it fails.
void fill_random(std::span<std::uint8_t> bytes);

// A random 64-bit value that is never 0 (0 means "none" for the UDP tokens, path cookies and DATA nonces
// drawn from it); throws like fill_random.
std::uint64_t random_nonzero_u64();

}  // namespace speed::net
