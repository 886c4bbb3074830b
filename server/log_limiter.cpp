#include "server/log_limiter.hpp"

#include <utility>

namespace speed::server {

namespace {
std::size_t index_of(log_kind kind) {
    return static_cast<std::size_t>(kind);
}
}  // namespace

std::string_view name_of(log_kind kind) {
    switch (kind) {
        case log_kind::handshake:
            return "handshake";
        case log_kind::refusal:
            return "refusal";
        case log_kind::stray_connection:
            return "stray connection";
        case log_kind::session:
            return "session";
    }
    return "unknown";
}

// Lines per second and burst per kind: abuse lines get a few per second; session lines enough for every
// session a busy server really runs (100 sessions of a few seconds each).
log_limiter::log_limiter()
    : buckets_{token_bucket(5, 20), token_bucket(5, 20), token_bucket(5, 20), token_bucket(50, 200)} {}

bool log_limiter::allow(log_kind kind, std::int64_t now_ns, std::uint64_t& suppressed) {
    const std::size_t i = index_of(kind);
    if (!buckets_[i].take(now_ns)) {
        ++suppressed_[i];
        return false;
    }
    suppressed = std::exchange(suppressed_[i], 0);
    return true;
}

std::uint64_t log_limiter::take_suppressed(log_kind kind) {
    return std::exchange(suppressed_[index_of(kind)], 0);
}

}  // namespace speed::server
