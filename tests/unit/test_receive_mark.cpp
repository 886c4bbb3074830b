#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>

#include "common/receive_mark.hpp"

using speed::receive_mark;

namespace {
constexpr std::uint64_t kTenMs = 10'000'000;
// An autotuned receive buffer at these rates: megabytes, so it never caps the mark.
constexpr std::uint64_t kLargeBuffer = 6 * 1024 * 1024;
const auto large_buffer = [] { return kLargeBuffer; };
}  // namespace

TEST_CASE("The receive mark is the bytes of kHoldNs at the window's rate, in kStep steps, capped",
          "[receive_mark]") {
    // 10 ms windows: a rate of R bytes per second is R / 100 bytes per window, R / 10,000 per 100 us.
    CHECK(receive_mark::mark_for(1'250'000, kTenMs, kLargeBuffer) == 0);  // 1 Gbit/s: 12,500 B per 100 us
    CHECK(receive_mark::mark_for(1'638'399, kTenMs, kLargeBuffer) == 0);  // one byte short of 16 KiB
    CHECK(receive_mark::mark_for(1'638'400, kTenMs, kLargeBuffer) == 16 * 1024);  // exactly 16 KiB per 100 us
    CHECK(receive_mark::mark_for(6'553'600, kTenMs, kLargeBuffer) == 64 * 1024);  // 5.2 Gbit/s
    // 10 Gbit/s: 125,000 B per 100 us, rounded down to 114,688.
    CHECK(receive_mark::mark_for(12'500'000, kTenMs, kLargeBuffer) == 7 * 16 * 1024);
    CHECK(receive_mark::mark_for(13'107'200, kTenMs, kLargeBuffer) == 128 * 1024);  // 10.5 Gbit/s: the cap
    CHECK(receive_mark::mark_for(50'000'000, kTenMs, kLargeBuffer) == 128 * 1024);  // 40 Gbit/s: capped
    // The same bytes over twice the time.
    CHECK(receive_mark::mark_for(1'638'400, 2 * kTenMs, kLargeBuffer) == 0);
    // No wrap.
    CHECK(receive_mark::mark_for(std::numeric_limits<std::uint64_t>::max(), 1, kLargeBuffer) == 128 * 1024);
}

TEST_CASE("A stream sets a mark once per rate window, only when it changes, and none after release",
          "[receive_mark]") {
    receive_mark mark(true);
    constexpr std::int64_t start = 5'000'000;
    // 40 Gbit/s: 50 MB in 10 ms, in 64 KiB reads; the window closes with the read at or after 10 ms.
    CHECK_FALSE(mark.on_read(25'000'000, start, large_buffer));
    CHECK_FALSE(mark.on_read(25'000'000, start + receive_mark::kRateWindowNs - 1, large_buffer));
    CHECK(mark.mark() == 0);
    CHECK(mark.on_read(0, start + receive_mark::kRateWindowNs, large_buffer) == receive_mark::kMaxMark);
    CHECK(mark.mark() == receive_mark::kMaxMark);
    SECTION("the same rate in the next window changes nothing") {
        CHECK_FALSE(mark.on_read(50'000'000, start + 2 * receive_mark::kRateWindowNs, large_buffer));
        CHECK(mark.mark() == receive_mark::kMaxMark);
    }
    SECTION("a slower window lowers the mark, a slow one removes it") {
        CHECK(mark.on_read(6'553'600, start + 2 * receive_mark::kRateWindowNs, large_buffer) == 64 * 1024);
        CHECK(mark.on_read(100'000, start + 3 * receive_mark::kRateWindowNs, large_buffer) == 0u);
        CHECK(mark.mark() == 0);
    }
    SECTION("release clears a set mark and keeps it off") {
        CHECK(mark.release());
        CHECK(mark.mark() == 0);
        CHECK_FALSE(mark.on_read(50'000'000, start + 2 * receive_mark::kRateWindowNs, large_buffer));
        CHECK_FALSE(mark.on_read(50'000'000, start + 3 * receive_mark::kRateWindowNs, large_buffer));
        CHECK(mark.mark() == 0);
        CHECK_FALSE(mark.release());
    }
}

TEST_CASE("A stream below 1.3 Gbit/s never gets a mark, and release has nothing to clear", "[receive_mark]") {
    receive_mark mark(true);
    // 1 Gbit/s for a second, in 1448-byte segments every 11.584 us.
    std::int64_t now = 0;
    unsigned marks_set = 0;
    for (int i = 0; i < 86'326; ++i) {
        marks_set += mark.on_read(1448, now, large_buffer) ? 1U : 0U;
        now += 11'584;
    }
    CHECK(marks_set == 0);
    CHECK(mark.mark() == 0);
    CHECK_FALSE(mark.release());
}

TEST_CASE("Only a stream alone on its thread gets a mark", "[receive_mark]") {
    CHECK(receive_mark::worth_it(1));
    CHECK_FALSE(receive_mark::worth_it(2));
    receive_mark disabled(false);
    CHECK_FALSE(disabled.on_read(50'000'000, 0, large_buffer));
    CHECK_FALSE(disabled.on_read(50'000'000, receive_mark::kRateWindowNs, large_buffer));
    CHECK(disabled.mark() == 0);
    CHECK_FALSE(disabled.release());
}

TEST_CASE("The receive mark is at most an eighth of the socket's receive buffer", "[receive_mark]") {
    // 40 Gbit/s would give the largest mark; a buffer fixed with -w 256K (the kernel reports 512 KiB) caps it
    // at 64 KiB, -w 64K (128 KiB) at 16 KiB, -w 16K (32 KiB) leaves none.
    CHECK(receive_mark::mark_for(50'000'000, kTenMs, 512 * 1024) == 64 * 1024);
    CHECK(receive_mark::mark_for(50'000'000, kTenMs, 128 * 1024) == 16 * 1024);
    CHECK(receive_mark::mark_for(50'000'000, kTenMs, 32 * 1024) == 0);
    CHECK(receive_mark::mark_for(50'000'000, kTenMs, 0) == 0);  // unknown: no mark
    // The rate still decides when it is lower than the cap.
    CHECK(receive_mark::mark_for(1'638'400, kTenMs, 512 * 1024) == 16 * 1024);
    receive_mark mark(true);
    unsigned buffer_reads = 0;
    const auto small_buffer = [&buffer_reads] {
        ++buffer_reads;
        return std::uint64_t{512 * 1024};
    };
    CHECK_FALSE(mark.on_read(25'000'000, 0, small_buffer));
    CHECK(buffer_reads == 0);  // read only when a window closes
    CHECK(mark.on_read(25'000'000, receive_mark::kRateWindowNs, small_buffer) == 64 * 1024);
    CHECK(buffer_reads == 1);
}
