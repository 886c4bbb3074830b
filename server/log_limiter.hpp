// Rate limits for log lines about what peers do, so a flood of bad connections cannot flood the log: a token
// bucket per kind of line; lines beyond it are counted, and the count is reported with the next line of that
// kind that gets through ("... (37 similar messages suppressed)") or by the server's periodic summary.
//
// Pure (the time is passed in); used on the control thread only.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/token_bucket.hpp"

namespace speed::server {

enum class log_kind : std::size_t {
    handshake,         // connections that failed before or at their HELLO (silent, malformed, wrong version)
    refusal,           // busy answers: admission caps
    stray_connection,  // data and probe connections that fit no session or test
    session,           // session start and end lines (generous: one pair per real test)
};
inline constexpr std::size_t kLogKinds = 4;

std::string_view name_of(log_kind kind);

class log_limiter {
  public:
    log_limiter();

    // Whether a line of `kind` may be logged at `now_ns`. When it may, `suppressed` is the number of lines of
    // this kind held back since the last one that got through (to mention in the line).
    bool allow(log_kind kind, std::int64_t now_ns, std::uint64_t& suppressed);
    // Lines of `kind` held back and not reported yet; resets the count (for the periodic summary).
    std::uint64_t take_suppressed(log_kind kind);

  private:
    std::array<token_bucket, kLogKinds> buckets_;
    std::array<std::uint64_t, kLogKinds> suppressed_{};
};

}  // namespace speed::server
