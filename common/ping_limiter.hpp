// The PING rate limit of one probe connection (server/probe_echo.cpp), pure: the time is passed in.
//
// Policy: PINGs beyond the rate are dropped unanswered (the client counts them as lost), and a connection
// that has had kMaxDroppedPings dropped is ended: a peer that keeps sending that fast is flooding, not
// measuring, and reading its bytes would still cost the echo thread. speedcli's shortest --ping-interval is
// 1 ms, i.e. 1000 PINGs a second, which the rate allows; the burst absorbs a client's timer jitter and a
// few PINGs that the network delivers together.
#pragma once

#include <cstdint>

#include "common/token_bucket.hpp"

namespace speed {

class ping_limiter {
  public:
    static constexpr double kPingsPerSecond = 1000;
    static constexpr double kBurst = 100;
    static constexpr std::uint64_t kMaxDroppedPings = 1000;

    enum class verdict {
        answer,  // within the rate
        drop,    // over the rate: no PONG
        close,   // over the rate kMaxDroppedPings times: end the connection
    };

    verdict on_ping(std::int64_t now_ns) {
        if (bucket_.take(now_ns)) {
            return verdict::answer;
        }
        ++dropped_;
        return dropped_ >= kMaxDroppedPings ? verdict::close : verdict::drop;
    }
    std::uint64_t dropped() const { return dropped_; }

  private:
    token_bucket bucket_{kPingsPerSecond, kBurst};
    std::uint64_t dropped_ = 0;
};

}  // namespace speed
