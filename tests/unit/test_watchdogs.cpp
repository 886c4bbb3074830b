// The pure timing helpers of the server's protections: the progress watchdog, the token bucket and the log
// and PING rate limiters built on it.
#include <catch2/catch.hpp>

#include "common/ping_limiter.hpp"
#include "common/progress_watchdog.hpp"
#include "common/token_bucket.hpp"
#include "server/log_limiter.hpp"

using namespace speed;

namespace {
constexpr std::int64_t kSecond = 1'000'000'000;
}

TEST_CASE("the progress watchdog fires after the stall time without progress", "[watchdog]") {
    progress_watchdog watchdog(3 * kSecond);
    watchdog.start(0, 100);
    CHECK_FALSE(watchdog.stalled(2 * kSecond, 100));
    CHECK_FALSE(watchdog.stalled(2 * kSecond + 1, 101));  // progress: the clock restarts here
    CHECK_FALSE(watchdog.stalled(5 * kSecond, 101));
    CHECK(watchdog.stalled(5 * kSecond + 1, 101));
    CHECK_FALSE(watchdog.stalled(5 * kSecond + 2, 102));
}

TEST_CASE("a slow but steady transfer never stalls", "[watchdog]") {
    progress_watchdog watchdog(10 * kSecond);
    watchdog.start(0, 0);
    // One segment every 9 s is slow, but it is progress.
    for (std::uint64_t i = 1; i <= 20; ++i) {
        CHECK_FALSE(watchdog.stalled(static_cast<std::int64_t>(i) * 9 * kSecond, i * 1448));
    }
}

TEST_CASE("a watchdog with no stall time never fires", "[watchdog]") {
    progress_watchdog watchdog(0);
    watchdog.start(0, 0);
    CHECK_FALSE(watchdog.enabled());
    CHECK_FALSE(watchdog.stalled(1000 * kSecond, 0));
}

TEST_CASE("the token bucket: a burst, then the rate", "[watchdog]") {
    token_bucket bucket(2, 3);
    CHECK(bucket.take(0));
    CHECK(bucket.take(0));
    CHECK(bucket.take(0));
    CHECK_FALSE(bucket.take(0));
    CHECK_FALSE(bucket.take(kSecond / 4));  // half a token
    CHECK(bucket.take(kSecond / 2));        // one token after 0.5 s at 2/s
    CHECK_FALSE(bucket.take(kSecond / 2));
    CHECK(bucket.take(100 * kSecond));  // refilled, but never above the burst
    CHECK(bucket.take(100 * kSecond));
    CHECK(bucket.take(100 * kSecond));
    CHECK_FALSE(bucket.take(100 * kSecond));
}

TEST_CASE("PINGs: speedcli's fastest schedule is answered, a flood is dropped and then ended", "[watchdog]") {
    using verdict = ping_limiter::verdict;
    SECTION("one PING a millisecond (--ping-interval 0.001) for 10 s: every one answered") {
        ping_limiter limiter;
        for (std::int64_t i = 0; i < 10'000; ++i) {
            REQUIRE(limiter.on_ping(i * kSecond / 1000) == verdict::answer);
        }
        CHECK(limiter.dropped() == 0);
    }
    SECTION("a burst of 100 at once, then the rate") {
        ping_limiter limiter;
        for (int i = 0; i < 100; ++i) {
            REQUIRE(limiter.on_ping(0) == verdict::answer);
        }
        CHECK(limiter.on_ping(0) == verdict::drop);
        CHECK(limiter.on_ping(kSecond / 1000) == verdict::answer);  // one token after 1 ms
        CHECK(limiter.dropped() == 1);
    }
    SECTION("a flood: 100 answered, then dropped, and the 1000th drop ends the connection") {
        ping_limiter limiter;
        int answered = 0;
        int dropped = 0;
        verdict last = verdict::answer;
        for (int i = 0; i < 10'000 && last != verdict::close; ++i) {
            last = limiter.on_ping(0);
            answered += last == verdict::answer ? 1 : 0;
            dropped += last == verdict::drop ? 1 : 0;
        }
        CHECK(answered == 100);
        CHECK(dropped == 999);
        CHECK(last == verdict::close);
        CHECK(limiter.dropped() == 1000);
    }
    SECTION("drops add up over the connection's life, even when spaced out") {
        ping_limiter limiter;
        std::int64_t now = 0;
        for (int i = 0; i < 100; ++i) {
            REQUIRE(limiter.on_ping(now) == verdict::answer);
        }
        // Twice the rate for 1 s: half of them dropped.
        for (int i = 0; i < 2000; ++i) {
            now += kSecond / 2000;
            limiter.on_ping(now);
        }
        CHECK(limiter.dropped() >= 999);
        CHECK(limiter.dropped() <= 1000);
    }
}

TEST_CASE("log lines beyond the rate are counted and reported with the next one", "[watchdog]") {
    server::log_limiter limiter;
    std::uint64_t suppressed = 99;
    for (int i = 0; i < 20; ++i) {
        REQUIRE(limiter.allow(server::log_kind::handshake, 0, suppressed));
        CHECK(suppressed == 0);
    }
    for (int i = 0; i < 37; ++i) {
        CHECK_FALSE(limiter.allow(server::log_kind::handshake, 0, suppressed));
    }
    // Other kinds have their own budget.
    CHECK(limiter.allow(server::log_kind::refusal, 0, suppressed));
    // Five lines per second: a quarter of a second later there is room for one more.
    CHECK(limiter.allow(server::log_kind::handshake, kSecond / 4, suppressed));
    CHECK(suppressed == 37);
    CHECK_FALSE(limiter.allow(server::log_kind::handshake, kSecond / 4, suppressed));
    CHECK(limiter.take_suppressed(server::log_kind::handshake) == 1);
    CHECK(limiter.take_suppressed(server::log_kind::handshake) == 0);
}
