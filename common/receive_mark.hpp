// The low-water mark (SO_RCVLOWAT) of a TCP stream that receives a test's payload. The reason is the
// sender's cost: a receiver faster than its sender empties its socket after every segment and sleeps, and the
// sending CPU then pays a wake-up for each segment it delivers (on loopback and across a veth pair the sender
// delivers the segment itself; on a virtual machine a wake-up is a VM exit). With a mark the kernel wakes the
// receiver only when that many bytes wait, so it reads several segments per wake-up. On a 2-core VM,
// loopback, one stream: 82 Gbit/s with a 128 KiB mark against 32 without; 16 and 64 KiB changed nothing, 256
// and 512 KiB gave 58-61 (docs/performance.md, "Waking the TCP receiver less often").
//
// A mark delays reads, and so the time the counters see a byte: never more than kHoldNs at the rate the
// stream had over its last kRateWindowNs, because the mark is the bytes the stream receives in kHoldNs at
// that rate, rounded down to kStep, at most kMaxMark; below kStep there is none. Below about 1.3 Gbit/s per
// stream it is therefore off, and a slow or paced stream reads every segment as it comes. The bytes below the
// mark when the sender stops wait for release(), which the receiver calls once it has been told the sender is
// done.
//
// Only for a stream alone on its thread among its test's streams (worth_it). Measured on the same VM, against
// the same build without the mark: 1 stream 1.95-1.98x, 2 streams on 2 threads 1.12-1.13x, 4 streams on 2
// threads 0.91-0.96x. A guess at the reason, not measured: a thread with several busy streams seldom finds
// all of them empty, so it seldom sleeps, and delaying its reads saves no wake-up.
//
// The mark is also at most an eighth of the socket's receive buffer (kBufferShare), read when a window
// closes: with a buffer the user fixed (-w), the receive window is about half that buffer, and a receiver
// that waited for half the window would stall the sender. Measured with -w 256K on loopback (a 512 KiB
// buffer) before that cap: uploads of 14-18 Gbit/s against 27-54 without a mark. The kernel's autotuned
// buffers are megabytes at the rates that get a mark, so the cap leaves them alone.
//
// Pure logic, no clock of its own: every call takes the current time, so tests drive it with exact values.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>

namespace speed {

class receive_mark {
  public:
    static constexpr std::int64_t kRateWindowNs = 10'000'000;
    static constexpr std::int64_t kHoldNs = 100'000;
    static constexpr std::size_t kStep = 16 * 1024;
    static constexpr std::size_t kMaxMark = 128 * 1024;
    static constexpr std::size_t kBufferShare = 8;

    static bool worth_it(std::size_t streams_on_the_thread) { return streams_on_the_thread == 1; }

    explicit receive_mark(bool enabled) : released_(!enabled) {}

    // The stream read `bytes` at `now_ns`. Returns the mark to set when it changes (0: none, the kernel's
    // default of waking for every byte). `receive_buffer_bytes()` gives the socket's receive buffer; it is
    // called only when a rate window closes.
    template <class ReceiveBuffer>
    std::optional<std::size_t> on_read(std::size_t bytes, std::int64_t now_ns,
                                       ReceiveBuffer&& receive_buffer_bytes) {
        if (released_) {
            return std::nullopt;
        }
        if (window_start_ns_ < 0) {
            window_start_ns_ = now_ns;
        }
        window_bytes_ += bytes;
        const std::int64_t elapsed_ns = now_ns - window_start_ns_;
        if (elapsed_ns < kRateWindowNs) {
            return std::nullopt;
        }
        const std::size_t next = mark_for(window_bytes_, static_cast<std::uint64_t>(elapsed_ns),
                                          static_cast<std::uint64_t>(receive_buffer_bytes()));
        window_start_ns_ = now_ns;
        window_bytes_ = 0;
        if (next == mark_) {
            return std::nullopt;
        }
        mark_ = next;
        return mark_;
    }

    // The sender is done: no mark from now on, so the last bytes are read at once. True when a mark is set
    // and must be cleared.
    bool release() {
        released_ = true;
        const bool was_set = mark_ != 0;
        mark_ = 0;
        return was_set;
    }

    std::size_t mark() const { return mark_; }

    // The mark for `bytes` received in `elapsed_ns` (> 0) on a socket with `receive_buffer_bytes`.
    static std::size_t mark_for(std::uint64_t bytes, std::uint64_t elapsed_ns,
                                std::uint64_t receive_buffer_bytes) {
        // bytes x kHoldNs overflows only past 1.8e14 bytes in one window: far beyond any link, and then the
        // largest mark is the answer anyway.
        constexpr auto hold = static_cast<std::uint64_t>(kHoldNs);
        const std::uint64_t in_hold =
            bytes > std::numeric_limits<std::uint64_t>::max() / hold ? kMaxMark : bytes * hold / elapsed_ns;
        const std::uint64_t largest = std::min<std::uint64_t>(kMaxMark, receive_buffer_bytes / kBufferShare);
        return static_cast<std::size_t>(std::min(in_hold, largest)) / kStep * kStep;
    }

  private:
    std::int64_t window_start_ns_ = -1;
    std::uint64_t window_bytes_ = 0;
    std::size_t mark_ = 0;
    bool released_ = false;
};

}  // namespace speed
