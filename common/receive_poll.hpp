// When a UDP receiver finds its socket empty, it reads again for a few microseconds before it waits for
// readiness. The reason is the sender's cost, not the receiver's: on loopback and across a veth pair the
// sending CPU delivers each datagram itself and, when the receiving thread sleeps, wakes it (an epoll
// callback, a scheduler wake-up, an inter-processor interrupt: a VM exit on a virtual machine). A receiver
// that is faster than its sender empties the queue after almost every batch and goes to sleep, so the sender
// pays that wake-up again and again and slows down: an iperf3 client's unpaced upload to speedsrv went 24 %
// faster with the poll (docs/methodology.md, "Receiving UDP from an unpaced client").
//
// Only for a sender that sends as fast as it can (worth_it). A poll that finds nothing within its time makes
// the next waits begin at once, twice as many after each such failure (up to kMaxSkippedPolls), so a paced or
// idle flow, whose gaps are longer than the poll, costs one failed poll per that many waits; a poll that
// finds data resets the count. Pure logic, no clock of its own: every call takes the current time, so tests
// drive it with exact values.
#pragma once

#include <cstdint>

namespace speed {

class receive_poll {
  public:
    // How long an empty socket is read again before the receiver waits: longer than the gap between a
    // saturating sender's batches on loopback (about 5 us between 1400-byte datagrams, 15 us between 64 KiB
    // GSO batches), short enough that a flow paced below a few hundred Mbit/s fails it and stops polling.
    static constexpr std::int64_t kPollNs = 30'000;
    static constexpr std::uint32_t kMaxSkippedPolls = 64;

    // Only a receiver of an unpaced sender (-b 0) polls: that sender is limited by its CPU, so the wake-ups
    // it pays lower the rate being measured; a paced sender has time to spare, and a poll shorter than its
    // gaps would only burn the receiver's CPU.
    static bool worth_it(std::uint64_t sender_bits_per_second) { return sender_bits_per_second == 0; }

    explicit receive_poll(bool enabled) : enabled_(enabled) {}

    // The socket was read empty at `now_ns`. True: read it again now; false: wait for readiness.
    bool read_again(std::int64_t now_ns) {
        if (!enabled_) {
            return false;
        }
        if (polling_since_ns_ < 0) {
            if (waits_before_next_poll_ > 0) {
                --waits_before_next_poll_;
                return false;
            }
            polling_since_ns_ = now_ns;
            return true;
        }
        if (now_ns - polling_since_ns_ < kPollNs) {
            return true;
        }
        ++failed_polls_;
        polling_since_ns_ = -1;
        waits_before_next_poll_ = waits_after_failure_;
        waits_after_failure_ =
            waits_after_failure_ >= kMaxSkippedPolls / 2 ? kMaxSkippedPolls : waits_after_failure_ * 2;
        return false;
    }

    // A read found data.
    void on_data() {
        if (polling_since_ns_ >= 0) {
            ++successful_polls_;
            polling_since_ns_ = -1;
            waits_after_failure_ = 1;
        }
    }

    std::uint64_t successful_polls() const { return successful_polls_; }
    std::uint64_t failed_polls() const { return failed_polls_; }

  private:
    bool enabled_;
    std::int64_t polling_since_ns_ = -1;  // when the current poll began; -1 = not polling
    std::uint32_t waits_before_next_poll_ = 0;
    std::uint32_t waits_after_failure_ = 1;
    std::uint64_t successful_polls_ = 0;
    std::uint64_t failed_polls_ = 0;
};

}  // namespace speed
