// A token bucket with the time passed in (pure): `rate` tokens per second, at most `burst` saved up. Used to
// rate-limit log lines about what peers do (server/log_limiter.hpp) and PINGs (common/ping_limiter.hpp).
#pragma once

#include <algorithm>
#include <cstdint>

namespace speed {

class token_bucket {
  public:
    token_bucket(double rate_per_second, double burst)
        : rate_(rate_per_second), burst_(burst), tokens_(burst) {}

    // Takes one token if there is one at `now_ns` (monotonic nanoseconds).
    bool take(std::int64_t now_ns) {
        if (started_) {
            const double elapsed = static_cast<double>(std::max<std::int64_t>(now_ns - last_ns_, 0)) / 1e9;
            tokens_ = std::min(burst_, tokens_ + elapsed * rate_);
        }
        started_ = true;
        last_ns_ = now_ns;
        if (tokens_ >= 1.0) {
            tokens_ -= 1.0;
            return true;
        }
        return false;
    }

  private:
    double rate_;
    double burst_;
    double tokens_;
    std::int64_t last_ns_ = 0;
    bool started_ = false;
};

}  // namespace speed
