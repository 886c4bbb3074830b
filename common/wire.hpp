// Explicit big-endian encoding over byte buffers. Nothing here casts a struct onto the wire: every field is
// written and read one byte at a time, so the layout is the same on every compiler and CPU.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace speed::wire {

// The one big-endian encoding of the code base: the low `width` bytes of `value`, most significant first.
// Callers have checked that `width` (at most 8) bytes fit at `out` / are there at `in`.
inline void put_big_endian(std::uint8_t* out, std::uint64_t value, int width) {
    for (int i = 0; i < width; ++i) {
        out[i] = static_cast<std::uint8_t>(value >> (8 * (width - 1 - i)));
    }
}

inline std::uint64_t get_big_endian(const std::uint8_t* in, int width) {
    std::uint64_t value = 0;
    for (int i = 0; i < width; ++i) {
        value = (value << 8) | in[i];
    }
    return value;
}

class writer {
  public:
    explicit writer(std::vector<std::uint8_t>& out) : out_(out) {}

    void u8(std::uint8_t value) { out_.push_back(value); }
    void u16(std::uint16_t value) { put(value, 2); }
    void u32(std::uint32_t value) { put(value, 4); }
    void u64(std::uint64_t value) { put(value, 8); }
    void bytes(std::span<const std::uint8_t> data) { out_.insert(out_.end(), data.begin(), data.end()); }
    // A string as a u16 length followed by its bytes (no terminator). Callers bound the length.
    void string16(std::string_view text);
    std::size_t size() const { return out_.size(); }
    // Overwrites a u32 written earlier at `offset` (used to fill in a frame length once it is known).
    void patch_u32(std::size_t offset, std::uint32_t value);

  private:
    void put(std::uint64_t value, int width);
    std::vector<std::uint8_t>& out_;
};

// Reads fields in order; the first read past the end marks the reader failed and returns zeros, so decoders
// can read a whole message and check `ok()` once.
class reader {
  public:
    explicit reader(std::span<const std::uint8_t> in) : in_(in) {}

    std::uint8_t u8() { return static_cast<std::uint8_t>(get(1)); }
    std::uint16_t u16() { return static_cast<std::uint16_t>(get(2)); }
    std::uint32_t u32() { return static_cast<std::uint32_t>(get(4)); }
    std::uint64_t u64() { return get(8); }
    void bytes(std::span<std::uint8_t> out);
    // Reads a u16-length string; fails (and returns "") if the length exceeds `max_length`.
    std::string string16(std::size_t max_length);

    bool ok() const { return ok_; }
    void fail() { ok_ = false; }
    std::size_t remaining() const { return ok_ ? in_.size() - position_ : 0; }

  private:
    std::uint64_t get(int width);
    std::span<const std::uint8_t> in_;
    std::size_t position_ = 0;
    bool ok_ = true;
};

}  // namespace speed::wire
