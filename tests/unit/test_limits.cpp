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
