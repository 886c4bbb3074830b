#include <catch2/catch.hpp>

#include "common/limits.hpp"

using namespace speed;

TEST_CASE("requests within the server's limits pass", "[limits]") {
    proto::test_request request;
    CHECK_FALSE(validate_request(request, server_limits{}));
}

TEST_CASE("requests beyond the server's limits are refused with the limit named", "[limits]") {
    server_limits limits;
    limits.max_streams = 4;
    limits.max_duration_ms = 30'000;
    proto::test_request request;

    request.streams = 5;
    auto refusal = validate_request(request, limits);
    REQUIRE(refusal);
    CHECK(refusal->code == proto::error_code::limit_exceeded);
    CHECK_THAT(refusal->message, Catch::Contains("at most 4"));

    request = {};
    request.duration_ms = 30'001;
    refusal = validate_request(request, limits);
    REQUIRE(refusal);
    CHECK(refusal->code == proto::error_code::limit_exceeded);

    request = {};
    request.streams = 0;
    CHECK(validate_request(request, limits)->code == proto::error_code::protocol_error);

    request = {};
    request.duration_ms = 50;
    CHECK(validate_request(request, limits)->code == proto::error_code::protocol_error);

    request = {};
    request.interval_ms = 10;
    CHECK(validate_request(request, limits)->code == proto::error_code::limit_exceeded);

    request = {};
    request.congestion = "cubic;rm";
    CHECK(validate_request(request, limits)->code == proto::error_code::protocol_error);
}

TEST_CASE("a bitrate cap refuses faster requests but shapes unlimited ones", "[limits]") {
    server_limits limits;
    limits.max_bitrate = 1'000'000'000;
    proto::test_request request;
    request.bitrate = 0;
    CHECK_FALSE(validate_request(request, limits));
    request.bitrate = 2'000'000'000;
    CHECK(validate_request(request, limits)->code == proto::error_code::limit_exceeded);
}

TEST_CASE("a byte cap refuses a request whose rate and time would exceed it", "[limits]") {
    server_limits limits;
    limits.max_bytes = 125'000'000;  // 1 Gbit
    proto::test_request request;
    request.duration_ms = 10'000;
    request.bitrate = 100'000'000;  // 100 Mbit/s x 10 s = exactly the cap
    CHECK_FALSE(validate_request(request, limits));
    request.omit_ms = 1'000;  // the warm-up counts too
    auto refusal = validate_request(request, limits);
    REQUIRE(refusal);
    CHECK(refusal->code == proto::error_code::limit_exceeded);
    CHECK_THAT(refusal->message, Catch::Contains("per test"));
    request.bitrate = 0;  // as fast as allowed: accepted, the sender paces to fit
    CHECK_FALSE(validate_request(request, limits));
}

TEST_CASE("the sender's rate: the tightest of the request and the caps", "[limits]") {
    server_limits limits;
    proto::test_request request;
    request.duration_ms = 8'000;
    request.omit_ms = 2'000;
    CHECK(sender_bitrate(request, limits) == 0);  // nothing asks for a rate
    request.bitrate = 50'000'000;
    CHECK(sender_bitrate(request, limits) == 50'000'000);
    limits.max_bitrate = 20'000'000;
    CHECK(sender_bitrate(request, limits) == 20'000'000);
    request.bitrate = 0;
    CHECK(sender_bitrate(request, limits) == 20'000'000);
    limits.max_bytes = 12'500'000;  // over 10 s: 10 Mbit/s
    CHECK(sender_bitrate(request, limits) == 10'000'000);
    limits.max_bitrate = 0;
    request.bitrate = 5'000'000;
    CHECK(sender_bitrate(request, limits) == 5'000'000);
}

TEST_CASE("the server's rate cap: the transport's cap and the byte cap, whatever the request asked",
          "[limits][udp]") {
    server_limits limits;  // max_udp_bitrate 1 Gbit/s by default, no TCP cap
    proto::test_request request;
    request.proto = proto::transport::udp;
    request.udp_payload_bytes = 1400;
    request.omit_ms = 0;
    request.duration_ms = 10'000;
    CHECK(server_rate_cap(request, limits) == 1'000'000'000);
    request.bitrate = 20'000'000;  // a fixed rate below the cap does not lower the cap
    CHECK(server_rate_cap(request, limits) == 1'000'000'000);
    CHECK(sender_bitrate(request, limits) == 20'000'000);
    limits.max_bytes = 250'000'000;  // 250 MB in 10 s: 200 Mbit/s
    CHECK(server_rate_cap(request, limits) == 200'000'000);
    limits.max_udp_bitrate = 0;
    limits.max_bytes = 0;
    CHECK(server_rate_cap(request, limits) == 0);
    limits.max_bitrate = 5'000'000;  // the TCP cap does not apply to UDP
    CHECK(server_rate_cap(request, limits) == 0);
    request.proto = proto::transport::tcp;  // but does to TCP, whatever the request asked
    CHECK(server_rate_cap(request, limits) == 5'000'000);
}

TEST_CASE("a client's own --bitrate is not a server cap: the budget ignores it", "[limits]") {
    proto::test_request request;
    request.duration_ms = 1'000;
    request.bitrate = 10'000'000;
    CHECK(test_budget::for_test(request, server_limits{}).unlimited());
    server_limits limits;
    limits.max_bitrate = 40'000'000;
    CHECK(test_budget::for_test(request, limits).bits_per_second == 40'000'000);
}

TEST_CASE("per-stream pacing never rounds a rate down to unlimited", "[limits]") {
    CHECK(per_stream_pacing(0, 4) == 0);
    CHECK(per_stream_pacing(800'000'000, 4) == 25'000'000);
    CHECK(per_stream_pacing(8, 4) == 1);
}

TEST_CASE("a running test's budget: 25 % over the rate plus a one-second burst", "[limits]") {
    test_budget budget;
    CHECK(budget.unlimited());
    CHECK_FALSE(budget.check(1'000'000'000, ~std::uint64_t{0}));

    budget.bits_per_second = 80'000'000;  // 10 MB/s
    const std::int64_t two_seconds = 2'000'000'000;
    // Allowance after 2 s: 10 MB/s x 1.25 x 2 s + 10 MB burst = 35 MB.
    CHECK_FALSE(budget.check(two_seconds, 35'000'000));
    auto refusal = budget.check(two_seconds, 35'000'001);
    REQUIRE(refusal);
    CHECK(refusal->code == proto::error_code::limit_exceeded);
    CHECK_THAT(refusal->message, Catch::Contains("80.00 Mbit/s"));
    // The burst is at least 256 KiB, whatever the rate.
    budget.bits_per_second = 8;
    CHECK_FALSE(budget.check(0, 256 * 1024));
    CHECK(budget.check(0, 256 * 1024 + 1));
}

TEST_CASE("a running test's budget: at most 1.25 x the byte cap, burst or not", "[limits]") {
    test_budget budget;
    budget.max_bytes = 4'000'000;
    CHECK_FALSE(budget.check(100'000'000'000, 5'000'000));
    auto refusal = budget.check(100'000'000'000, 5'000'001);
    REQUIRE(refusal);
    CHECK_THAT(refusal->message, Catch::Contains("per test"));

    server_limits limits;
    limits.max_bytes = 4'000'000;
    proto::test_request request;
    request.duration_ms = 1'000;
    const auto derived = test_budget::for_test(request, limits);
    CHECK(derived.max_bytes == 4'000'000);
    CHECK(derived.bits_per_second == 32'000'000);  // the rate that fits the cap in the test's second
}

TEST_CASE("the burst is bounded by the byte cap: short tests stay within 1.25 x max_bytes", "[limits]") {
    server_limits limits;
    limits.max_bytes = 4'000'000;
    proto::test_request request;
    request.duration_ms = 100;  // the rate that fits 4 MB in 0.1 s: 320 Mbit/s, 40 MB/s
    const auto budget = test_budget::for_test(request, limits);
    REQUIRE(budget.bits_per_second == 320'000'000);
    // burst = max(256 KiB, min(1 s at 40 MB/s, 0.25 x 4 MB)) = 1 MB
    CHECK(budget.burst_bytes() == 1'000'000.0);
    // Early in the test the rate check allows the rate plus that burst...
    CHECK_FALSE(budget.check(50'000'000, 2'500'000 + 1'000'000));
    CHECK(budget.check(50'000'000, 2'500'000 + 1'000'001));
    // ...and at no time more than 1.25 x max_bytes (the old 1 s burst allowed 11.25 x max_bytes).
    CHECK_FALSE(budget.check(100'000'000, 5'000'000));
    CHECK(budget.check(100'000'000, 5'000'001));
    CHECK(budget.check(10'000'000'000, 5'000'001));

    test_budget slow;
    slow.bits_per_second = 8'000'000;  // 1 MB/s, no byte cap: the burst is 1 s at the rate
    CHECK(slow.burst_bytes() == 1'000'000.0);
    slow.max_bytes = 100'000;  // a tiny byte cap: the burst floor of 256 KiB
    CHECK(slow.burst_bytes() == 256.0 * 1024);
}

TEST_CASE("paced tests below the server's minimum bitrate are refused", "[limits]") {
    server_limits limits;
    CHECK(limits.min_bitrate == 100'000);
    proto::test_request request;
    request.streams = 1;
    request.duration_ms = 1'000;
    request.bitrate = 99'999;
    const auto refusal = validate_request(request, limits);
    REQUIRE(refusal);
    CHECK(refusal->code == proto::error_code::limit_exceeded);
    CHECK_THAT(refusal->message, Catch::Contains("below this server's minimum of 100.0 kbit/s"));
    request.bitrate = 100'000;
    CHECK_FALSE(validate_request(request, limits));
    request.bitrate = 0;  // unpaced: never refused by the minimum
    CHECK_FALSE(validate_request(request, limits));
    limits.min_bitrate = 0;
    request.bitrate = 1;
    CHECK_FALSE(validate_request(request, limits));
}

TEST_CASE("the tests-per-session cap has a default", "[limits]") {
    CHECK(server_limits{}.max_tests_per_session == 8);
}

TEST_CASE("the stall timeout stretches only for very slowly paced tests", "[limits]") {
    const std::int64_t ten_seconds = 10'000'000'000;
    CHECK(stall_timeout_ns(0, 1, ten_seconds) == ten_seconds);          // unpaced
    CHECK(stall_timeout_ns(1'000'000, 1, ten_seconds) == ten_seconds);  // 1 Mbit/s: 48 ms per 4 segments
    CHECK(stall_timeout_ns(4'800, 1, ten_seconds) == ten_seconds);      // 600 B/s: exactly 10 s
    CHECK(stall_timeout_ns(1'000, 1, ten_seconds) == 48'000'000'000);   // 125 B/s: 48 s
    CHECK(stall_timeout_ns(8'000, 4, ten_seconds) == 24'000'000'000);   // 250 B/s per stream: 24 s
    CHECK(stall_timeout_ns(8, 128, ten_seconds) == 6'000'000'000'000);  // 1 B/s per stream (the floor)
}
