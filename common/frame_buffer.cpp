#include "common/frame_buffer.hpp"

#include <algorithm>

namespace speed::proto {

std::span<std::uint8_t> frame_buffer::prepare(std::size_t bytes) {
    if (start_ > 0 && data_.size() - end_ < bytes) {
        // Move the unconsumed tail to the front before growing: the buffer stays as small as one frame.
        std::copy(data_.begin() + static_cast<std::ptrdiff_t>(start_),
                  data_.begin() + static_cast<std::ptrdiff_t>(end_), data_.begin());
        end_ -= start_;
        start_ = 0;
    }
    if (data_.size() - end_ < bytes) {
        data_.resize(end_ + bytes);
    }
    return {data_.data() + end_, data_.size() - end_};
}

void frame_buffer::commit(std::size_t bytes) {
    end_ = std::min(end_ + bytes, data_.size());
}

decode_result frame_buffer::next(std::uint32_t max_payload) {
    decode_result result = decode_frame({data_.data() + start_, end_ - start_}, max_payload);
    if (result.status == decode_status::ok) {
        start_ += result.consumed;
        if (start_ == end_) {
            start_ = end_ = 0;
        }
    }
    return result;
}

}  // namespace speed::proto
