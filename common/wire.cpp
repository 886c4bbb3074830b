#include "common/wire.hpp"

#include <algorithm>

namespace speed::wire {

void writer::put(std::uint64_t value, int width) {
    const std::size_t offset = out_.size();
    out_.resize(offset + static_cast<std::size_t>(width));
    put_big_endian(out_.data() + offset, value, width);
}

void writer::string16(std::string_view text) {
    const auto length = static_cast<std::uint16_t>(std::min<std::size_t>(text.size(), 0xffff));
    u16(length);
    out_.insert(out_.end(), text.begin(), text.begin() + length);
}

void writer::patch_u32(std::size_t offset, std::uint32_t value) {
    (void)out_.at(offset + 3);  // the same bounds check as before, for the last byte written
    put_big_endian(out_.data() + offset, value, 4);
}

std::uint64_t reader::get(int width) {
    const auto count = static_cast<std::size_t>(width);
    if (!ok_ || in_.size() - position_ < count) {
        ok_ = false;
        return 0;
    }
    const std::uint64_t value = get_big_endian(in_.data() + position_, width);
    position_ += count;
    return value;
}

void reader::bytes(std::span<std::uint8_t> out) {
    if (!ok_ || in_.size() - position_ < out.size()) {
        ok_ = false;
        std::fill(out.begin(), out.end(), std::uint8_t{0});
        return;
    }
    std::copy_n(in_.begin() + static_cast<std::ptrdiff_t>(position_), out.size(), out.begin());
    position_ += out.size();
}

std::string reader::string16(std::size_t max_length) {
    const std::size_t length = u16();
    if (!ok_ || length > max_length || in_.size() - position_ < length) {
        ok_ = false;
        return {};
    }
    std::string text(reinterpret_cast<const char*>(in_.data() + position_), length);
    position_ += length;
    return text;
}

}  // namespace speed::wire
