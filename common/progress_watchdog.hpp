// Notices a transfer that stopped making progress: a client that vanished or was stopped mid-test.
//
// Pure (the caller passes the time and a progress counter), so the TCP sender (bytes the peer acknowledged)
// and the TCP receiver (bytes read) apply the same rule: the transfer is stalled when the counter has not
// moved for `stall_ns`. UDP needs no watchdog: its sender stops without the receiver's feedback, and its
// receiver's window is bounded by time.
#pragma once

#include <cstdint>

namespace speed {

class progress_watchdog {
  public:
    // stall_ns <= 0 turns the watchdog off: stalled() is then always false.
    explicit progress_watchdog(std::int64_t stall_ns) : stall_ns_(stall_ns) {}

    void start(std::int64_t now_ns, std::uint64_t progress) {
        last_change_ns_ = now_ns;
        last_progress_ = progress;
    }

    // Records `progress` at `now_ns`; true when it has not changed for the stall time.
    bool stalled(std::int64_t now_ns, std::uint64_t progress) {
        if (progress != last_progress_) {
            last_progress_ = progress;
            last_change_ns_ = now_ns;
            return false;
        }
        return enabled() && now_ns - last_change_ns_ >= stall_ns_;
    }

    bool enabled() const { return stall_ns_ > 0; }
    std::int64_t stall_ns() const { return stall_ns_; }

  private:
    std::int64_t stall_ns_;
    std::int64_t last_change_ns_ = 0;
    std::uint64_t last_progress_ = 0;
};

}  // namespace speed
