#include "common/udp_rate_control.hpp"

#include <algorithm>
#include <cmath>

#include "common/saturating.hpp"

namespace speed::udp {

namespace {

// A round-trip sample beyond this is the peer's invented echo, not a path: ignored, so srtt and the
// multiples of it below stay far from overflow.
constexpr std::int64_t kMaxRoundTripNs = 60'000'000'000;

}  // namespace

rate_controller::rate_controller(rate_limits limits) : limits_(limits), rate_(0) {
    rate_ = clamp(limits_.initial_bits_per_second);
}

double rate_controller::clamp(double rate) const {
    rate = std::max(rate, limits_.min_bits_per_second);
    if (limits_.max_bits_per_second > 0) {
        rate = std::min(rate, limits_.max_bits_per_second);
    }
    return std::min(rate, kHighestBitsPerSecond);
}

std::optional<double> rate_controller::on_feedback(const feedback& fb, std::int64_t receiver_time_ns,
                                                   std::int64_t now_ns) {
    // Round trip from the echoed timestamp, minus the time the receiver held it.
    if (fb.echo_timestamp_ns != 0) {
        // The echoed timestamp is the peer's to choose: every step saturates.
        const std::int64_t sample =
            saturating_sub(saturating_sub(now_ns, static_cast<std::int64_t>(fb.echo_timestamp_ns)),
                           std::int64_t{fb.echo_delay_us} * 1000);
        if (sample > 0 && sample <= kMaxRoundTripNs) {
            srtt_ns_ = srtt_ns_ == 0 ? sample : (7 * srtt_ns_ + sample) / 8;
        }
    }
    if (!has_previous_ || fb.packets_received < previous_.packets_received ||
        receiver_time_ns <= previous_receiver_time_ns_) {
        // The first feedback, or a stale one that arrived out of order: nothing to compare against.
        if (!has_previous_ || receiver_time_ns > previous_receiver_time_ns_) {
            previous_ = fb;
            previous_receiver_time_ns_ = receiver_time_ns;
            has_previous_ = true;
        }
        return std::nullopt;
    }
    const std::uint64_t expected = fb.expected - std::min(fb.expected, previous_.expected);
    const std::uint64_t received = fb.packets_received - previous_.packets_received;
    const std::uint64_t delivered_bytes =
        fb.bytes_received - std::min(fb.bytes_received, previous_.bytes_received);
    const std::int64_t period_ns = saturating_sub(receiver_time_ns, previous_receiver_time_ns_);
    const bool socket_overflowed = fb.socket_drops != previous_.socket_drops;
    previous_ = fb;
    previous_receiver_time_ns_ = receiver_time_ns;

    const double delivered_bits_per_second =
        static_cast<double>(delivered_bytes) * 8e9 / static_cast<double>(period_ns);
    const std::uint64_t missing = expected > received ? expected - received : 0;
    const bool lossy = expected >= kMinPacketsForLoss &&
                       static_cast<double>(missing) > kLossLimit * static_cast<double>(expected);
    const bool queueing = std::int64_t{fb.queue_delay_us} * 1000 > kQueueDelayLimitNs;
    const std::int64_t round_trip = std::max(srtt_ns_, kMinRoundTripNs);

    remember_delivery(receiver_time_ns, delivered_bits_per_second);
    const double before = rate_;
    if (now_ns < hold_until_ns_) {
        return std::nullopt;  // this feedback still describes the rate before the last change
    }
    if (socket_overflowed || lossy || queueing) {
        startup_ = false;
        const double recent = recent_delivered_bits_per_second(receiver_time_ns);
        const double base = recent > 0 ? std::min(rate_, recent) : rate_;
        rate_ = clamp(base * kCutFactor);
        recovery_target_ = base * kRecoveryShare;
        hold_until_ns_ = saturating_add(now_ns, round_trip);
    } else {
        // Growth per feedback period, scaled so that it compounds to 2x (startup), +10 % (climbing back to
        // most of the rate before a cut) or +1 % per round trip.
        const double periods_per_rtt =
            static_cast<double>(round_trip) / static_cast<double>(std::max<std::int64_t>(period_ns, 1));
        const bool recovering = rate_ < recovery_target_;
        const double per_rtt = startup_ ? 2.0 : 1.0 + (recovering ? kRecoveryGainPerRtt : kProbeGainPerRtt);
        double next = rate_ * std::pow(per_rtt, 1.0 / std::max(periods_per_rtt, 1.0));
        if (recovering && !startup_) {
            next = std::min(next, recovery_target_);
        }
        // Never run far ahead of what arrives: a sender limited by its own CPU must not build a huge rate
        // that turns into a burst the moment it can keep up.
        if (delivered_bits_per_second > 0) {
            next = std::min(next, std::max(2.0 * delivered_bits_per_second, limits_.initial_bits_per_second));
        }
        rate_ = clamp(next);
    }
    if (rate_ == before) {
        return std::nullopt;
    }
    return rate_;
}

void rate_controller::remember_delivery(std::int64_t receiver_time_ns, double delivered_bits_per_second) {
    deliveries_[deliveries_next_] = delivery_sample{receiver_time_ns, delivered_bits_per_second};
    deliveries_next_ = (deliveries_next_ + 1) % deliveries_.size();
}

double rate_controller::recent_delivered_bits_per_second(std::int64_t receiver_time_ns) const {
    double highest = 0.0;
    for (const auto& sample : deliveries_) {
        // Receiver times only grow (older feedback is skipped above); empty slots hold a rate of 0.
        const std::int64_t age = saturating_sub(receiver_time_ns, sample.receiver_time_ns);
        if (age >= 0 && age <= kDeliveryMemoryNs) {
            highest = std::max(highest, sample.bits_per_second);
        }
    }
    return highest;
}

std::optional<double> rate_controller::on_silence(std::int64_t last_feedback_ns, std::int64_t now_ns) {
    const std::int64_t silence = std::max(kMinSilenceNs, 3 * srtt_ns_);
    if (saturating_sub(now_ns, last_feedback_ns) < silence ||
        saturating_sub(now_ns, std::max(silence_cut_ns_, last_feedback_ns)) < silence) {
        return std::nullopt;
    }
    silence_cut_ns_ = now_ns;
    // A silent receiver is often just a descheduled one: recover as fast as at the start (doubling per round
    // trip, never beyond twice what arrives) rather than creeping back at 1 % per round trip.
    startup_ = true;
    const double before = rate_;
    rate_ = clamp(rate_ / 2);
    if (rate_ == before) {
        return std::nullopt;
    }
    return rate_;
}

double stream_rate_bound(std::uint64_t bitrate, std::uint64_t cap, std::size_t streams) {
    const std::uint64_t highest = std::max(bitrate, cap);
    const double total = highest == 0 ? rate_controller::kHighestBitsPerSecond : static_cast<double>(highest);
    return total / static_cast<double>(std::max<std::size_t>(streams, 1));
}

}  // namespace speed::udp
