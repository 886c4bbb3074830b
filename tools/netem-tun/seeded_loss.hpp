// Reproducible random loss: the same seed drops the same packets of a sequence, on every machine.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

namespace speed::netem {

// Bernoulli loss from SplitMix64 (Steele, Lea, Flood 2014): a tiny generator whose output is defined here,
// not by the standard library, so a seed means the same loss pattern with every compiler. A packet is dropped
// when the next 64-bit draw is below probability x 2^64.
class seeded_loss {
  public:
    seeded_loss(double probability, std::uint64_t seed) : state_(seed) {
        const double scaled = std::ldexp(probability, 64);  // probability x 2^64
        if (scaled >= std::ldexp(1.0, 64)) {
            always_ = true;
        } else if (scaled > 0.0) {
            threshold_ = static_cast<std::uint64_t>(scaled);
        }  // else (0, negative or NaN): threshold 0 drops nothing
    }

    // Whether the next packet is lost. Draws every time, so the pattern depends only on the packet's
    // position.
    bool drop() {
        const std::uint64_t draw = next();
        return always_ || draw < threshold_;
    }

  private:
    std::uint64_t next() {
        std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }

    std::uint64_t state_;
    std::uint64_t threshold_ = 0;
    bool always_ = false;
};

// The seed of direction `index` derived from the run's seed, so that two directions never share a pattern.
inline std::uint64_t direction_seed(std::uint64_t seed, std::size_t index) {
    return seed * 0x9e3779b97f4a7c15ULL + index;
}

}  // namespace speed::netem
