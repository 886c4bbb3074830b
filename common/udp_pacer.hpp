// A token bucket that paces a UDP sender: fine-grained (a burst is at most about a millisecond of the rate),
// exact over the long run (credit is kept to the nanosecond), and free of clocks of its own so tests drive it
// with a fake one: every call takes the current time.
#pragma once

#include <cstdint>

namespace speed::udp {

class pacer {
  public:
    // The bucket holds at most `burst_ns` worth of the rate, and never less than `min_burst_bytes` (so at
    // least a datagram or two fits even at a low rate). It starts holding `min_burst_bytes`.
    pacer(double bits_per_second, std::int64_t burst_ns, std::uint64_t min_burst_bytes, std::int64_t now_ns);

    // Changes the rate from `now_ns` on; credit earned at the old rate is kept.
    void set_rate(double bits_per_second, std::int64_t now_ns);
    double bits_per_second() const { return bytes_per_ns_ * 8e9; }
    // The most the bucket holds at the current rate.
    std::uint64_t depth_bytes() const;

    // How many datagrams of `datagram_bytes` may leave at `now_ns`.
    std::uint64_t allowed(std::int64_t now_ns, std::uint32_t datagram_bytes);
    // Takes `bytes` out of the bucket (after sending them).
    void consume(std::uint64_t bytes);
    // Nanoseconds from `now_ns` until `bytes` are allowed; 0 when they are now.
    std::int64_t wait_ns(std::int64_t now_ns, std::uint64_t bytes);

  private:
    void refill(std::int64_t now_ns);

    double bytes_per_ns_;
    std::int64_t burst_ns_;
    std::uint64_t min_burst_bytes_;
    double tokens_;
    std::int64_t last_ns_;
};

}  // namespace speed::udp
