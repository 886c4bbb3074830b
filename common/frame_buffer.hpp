// Accumulates bytes read from a stream and hands out complete frames, for connections that read whatever the
// socket has (one read may hold several frames or part of one) instead of one exact-size read per frame.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/protocol.hpp"

namespace speed::proto {

class frame_buffer {
  public:
    // Space for at least `bytes` more bytes; fill it, then commit() what was actually written.
    std::span<std::uint8_t> prepare(std::size_t bytes);
    void commit(std::size_t bytes);

    // Decodes the next complete frame and consumes it (ok); need_more leaves the bytes in place; bad means
    // the stream is unusable from here on.
    decode_result next(std::uint32_t max_payload = kMaxFramePayload);

    std::size_t buffered() const { return end_ - start_; }

  private:
    std::vector<std::uint8_t> data_;
    std::size_t start_ = 0;
    std::size_t end_ = 0;
};

}  // namespace speed::proto
