// The sender's rate when the user asked for "as fast as the path takes" (--bitrate 0): a small delay- and
// loss-based controller driven by the receiver's FEEDBACK (docs/methodology.md, "Adaptive rate").
//
// Without it, "as fast as possible" means "faster than the receiver can read", and the test reports the
// tool's own loss (iperf3 -u -b 0 loses 10 % and more on loopback). The controller:
//   - starts low and doubles the rate every round trip (startup) until the first sign of congestion;
//   - then probes upward by 1 % per round trip and, on congestion, drops to 85 % of the rate the receiver
//     recently got (the highest of its feedback periods in the last 200 ms, never above the rate sent), then
//     waits a round trip before judging again, and climbs back to 95 % of that rate by 10 % per round trip
//     before probing on at 1 %. The memory is what keeps a receiver descheduled for one period (a busy host)
//     from cutting the rate to a fraction of what the path carries; it expires, so a path that really slowed
//     down is followed within 200 ms.
// Congestion is any of: the receiver's socket overflowed (SO_RXQ_OVFL), the queueing delay estimate exceeds
// 5 ms, or more than 5 % of the datagrams of a feedback period went missing. Lighter loss without queueing is
// reported, not reacted to, so a lossy link does not drive the rate to zero. Silence is congestion too: a
// receiver too busy to send FEEDBACK is too busy to read, so after 30 ms (or 3 round trips) without any the
// rate halves, and again for every further such period; it then recovers as in startup, since a silent
// receiver is often just a descheduled one.
// Pure: the caller passes the time in.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "common/udp_wire.hpp"

namespace speed::udp {

struct rate_limits {
    double initial_bits_per_second = 10e6;
    double min_bits_per_second = 1e6;
    double max_bits_per_second = 0;  // 0 = no cap
};

class rate_controller {
  public:
    // Without a cap the rate still stops here: a receiver's FEEDBACK can claim any delivered rate, and
    // doubling on it without end reaches infinity.
    static constexpr double kHighestBitsPerSecond = 1e13;
    static constexpr std::int64_t kQueueDelayLimitNs = 5'000'000;
    static constexpr double kLossLimit = 0.05;
    static constexpr std::uint64_t kMinPacketsForLoss = 20;
    static constexpr double kCutFactor = 0.85;
    static constexpr double kProbeGainPerRtt = 0.01;
    static constexpr double kRecoveryGainPerRtt = 0.10;
    // The climb back at kRecoveryGainPerRtt stops this far below the rate before the cut: the last few per
    // cent are probed at kProbeGainPerRtt, so a rate that sits at a real bottleneck crosses it only briefly.
    static constexpr double kRecoveryShare = 0.95;
    // How long a feedback period's delivered rate counts as what the path recently carried.
    static constexpr std::int64_t kDeliveryMemoryNs = 200'000'000;
    static constexpr std::size_t kDeliveryMemoryPeriods = 32;
    // Round trips shorter than this count as this: the feedback period bounds how fast we can react.
    static constexpr std::int64_t kMinRoundTripNs = 10'000'000;
    static constexpr std::int64_t kMinSilenceNs = 30'000'000;

    explicit rate_controller(rate_limits limits);

    // One FEEDBACK datagram (its header timestamp is the receiver's clock), received at `now_ns` (sender
    // clock). Returns the new rate when it changed.
    std::optional<double> on_feedback(const feedback& fb, std::int64_t receiver_time_ns, std::int64_t now_ns);
    // Called by a sender that has heard nothing since `last_feedback_ns`. Returns the new rate when it
    // changed.
    std::optional<double> on_silence(std::int64_t last_feedback_ns, std::int64_t now_ns);

    double bits_per_second() const { return rate_; }
    bool in_startup() const { return startup_; }
    std::int64_t round_trip_ns() const { return srtt_ns_; }

    // The highest delivered rate of the feedback periods that ended within kDeliveryMemoryNs of
    // `receiver_time_ns` (receiver clock), 0 when none did.
    double recent_delivered_bits_per_second(std::int64_t receiver_time_ns) const;

  private:
    double clamp(double rate) const;
    void remember_delivery(std::int64_t receiver_time_ns, double delivered_bits_per_second);

    struct delivery_sample {
        std::int64_t receiver_time_ns = 0;
        double bits_per_second = 0.0;
    };

    rate_limits limits_;
    double rate_;
    bool startup_ = true;
    std::int64_t srtt_ns_ = 0;
    std::int64_t hold_until_ns_ = 0;
    std::int64_t silence_cut_ns_ = 0;  // when the rate was last halved for silence
    double recovery_target_ = 0.0;     // after a cut: the rate to climb back to at kRecoveryGainPerRtt
    std::array<delivery_sample, kDeliveryMemoryPeriods>
        deliveries_{};  // a ring, the newest at deliveries_next_
    std::size_t deliveries_next_ = 0;
    bool has_previous_ = false;
    feedback previous_;
    std::int64_t previous_receiver_time_ns_ = 0;
};

// The most a sender of a test may put on one of its `streams`: the test's bitrate or the server's cap,
// whichever is higher (a paced sender keeps to the first, an adaptive one to the second), and without either
// the adaptive controller's ceiling. Receivers hold sequence numbers to it (receiver_accounting::ready).
double stream_rate_bound(std::uint64_t bitrate, std::uint64_t cap, std::size_t streams);

}  // namespace speed::udp
