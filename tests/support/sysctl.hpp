// Numbers the kernel publishes under /proc/sys (net.core.rmem_max and the like), for tests whose expectations
// depend on the host's limits.
#pragma once

#include <cstdint>
#include <fstream>

namespace speed::testing {

// The number at the start of `path`; 0 when it cannot be read.
inline std::uint64_t proc_value(const char* path) {
    std::ifstream in(path);
    std::uint64_t value = 0;
    in >> value;
    return value;
}

}  // namespace speed::testing
