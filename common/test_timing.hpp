// One test's timing: its warm-up, measured window and report interval as its TEST_REQUEST carries them (whole
// milliseconds), and everything derived from them: the receiver's sampling plan, the test's length (warm-up +
// window) and the deadlines both binaries wait by. Both binaries and the limits take these from here, so
// every side derives the same instants from the same rounded values.
#pragma once

#include <algorithm>
#include <chrono>

#include "common/measurement.hpp"
#include "common/protocol.hpp"

namespace speed {

struct test_timing {
    std::chrono::milliseconds warm_up{0};   // omitted from the totals, reported separately
    std::chrono::milliseconds window{0};    // the measured window
    std::chrono::milliseconds interval{0};  // 0: no interval reports

    static test_timing of(const proto::test_request& request) {
        return {std::chrono::milliseconds(request.omit_ms), std::chrono::milliseconds(request.duration_ms),
                std::chrono::milliseconds(request.interval_ms)};
    }

    // The test's whole length on the sender's side: warm-up plus measured window.
    std::chrono::milliseconds length() const { return warm_up + window; }
    double length_seconds() const { return std::chrono::duration<double>(length()).count(); }

    // The receiver's sampling plan, counted from its first payload byte.
    measure::plan plan() const {
        return {std::chrono::nanoseconds(warm_up).count(), std::chrono::nanoseconds(window).count(),
                std::chrono::nanoseconds(interval).count()};
    }

    // From STREAMS_READY, how long the client waits for the end of the receiver's window: the server's STOP
    // of an upload, or the SENDER_REPORT of a download (its first byte may take kFirstByteTimeout).
    std::chrono::milliseconds client_stop_wait() const {
        return proto::kFirstByteTimeout + length() + proto::kStopGrace;
    }

    // How long a sending server waits for the client's STOP: the test's length plus the longer of
    // `least_grace` and the window. Bounded, so that a client that never sends STOP gets little more than
    // the test it asked for.
    std::chrono::milliseconds server_stop_wait(std::chrono::milliseconds least_grace) const {
        return length() + std::max(window, least_grace);
    }
};

}  // namespace speed
