// Reproducible random loss and jitter: the same seed drops and delays the same packets of a sequence, on
// every machine.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>

namespace speed::netem {

// SplitMix64 (Steele, Lea, Flood 2014): a tiny generator whose output is defined here, not by the standard
// library, so a seed means the same pattern with every compiler.
class splitmix64 {
  public:
    explicit splitmix64(std::uint64_t seed) : state_(seed) {}

    std::uint64_t next() {
        std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        return z ^ (z >> 31);
    }

  private:
    std::uint64_t state_;
};

// Bernoulli loss: a packet is dropped when the next 64-bit draw is below probability x 2^64.
class seeded_loss {
  public:
    seeded_loss(double probability, std::uint64_t seed) : random_(seed) {
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
        const std::uint64_t draw = random_.next();
        return always_ || draw < threshold_;
    }

  private:
    splitmix64 random_;
    std::uint64_t threshold_ = 0;
    bool always_ = false;
};

// Uniform extra delay: each packet gets draw mod (jitter + 1) nanoseconds, i.e. uniform on the whole
// nanoseconds of [0, jitter] (the modulo's bias is below jitter / 2^64: nothing at jitters up to seconds).
// Without jitter nothing is drawn.
class seeded_jitter {
  public:
    seeded_jitter(std::int64_t jitter_ns, std::uint64_t seed)
        : random_(seed), span_(jitter_ns > 0 ? static_cast<std::uint64_t>(jitter_ns) + 1 : 0) {}

    std::int64_t next_ns() { return span_ == 0 ? 0 : static_cast<std::int64_t>(random_.next() % span_); }

  private:
    splitmix64 random_;
    std::uint64_t span_;
};

// The seed of direction `index` derived from the run's seed, so that two directions never share a pattern.
inline std::uint64_t direction_seed(std::uint64_t seed, std::size_t index) {
    return seed * 0x9e3779b97f4a7c15ULL + index;
}

// The jitter seed of a direction: a stream of its own, so that adding jitter leaves the loss pattern as it
// was.
inline std::uint64_t jitter_seed(std::uint64_t direction_seed) {
    return direction_seed ^ 0xd1b54a32d192ed03ULL;
}

}  // namespace speed::netem
