#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <limits>

#include "common/web_api.hpp"

using namespace speed::web;

TEST_CASE("web session ids are 32 lowercase hex characters of the 16 bytes", "[web]") {
    std::array<std::uint8_t, kSessionIdBytes> bytes{0x00, 0x01, 0x7f, 0x80, 0xab, 0xcd, 0xef, 0xff,
                                                    0x10, 0x20, 0x30, 0x40, 0x50, 0x60, 0x70, 0x9a};
    CHECK(session_id_text(bytes) == "00017f80abcdefff102030405060709a");
    CHECK(is_session_id("00017f80abcdefff102030405060709a"));
    CHECK_FALSE(is_session_id("00017F80ABCDEFFF102030405060709A"));   // upper case is not an id
    CHECK_FALSE(is_session_id("00017f80abcdefff102030405060709"));    // 31
    CHECK_FALSE(is_session_id("00017f80abcdefff102030405060709a0"));  // 33
    CHECK_FALSE(is_session_id("00017f80abcdefff10203040506070g0"));
    CHECK_FALSE(is_session_id(""));
}

TEST_CASE("web request paths name their endpoints", "[web]") {
    const std::string id = "0123456789abcdef0123456789abcdef";
    CHECK(parse_route("/").target == endpoint::page);
    CHECK(parse_route("/speedtest.js").target == endpoint::script);
    CHECK(parse_route("/speedtest.css").target == endpoint::style);
    CHECK(parse_route("/chart.min.js").target == endpoint::chart);
    CHECK(parse_route("/api/sessions").target == endpoint::sessions);
    // The id is a view into the path: the paths must outlive the routes.
    const std::string session_path = "/api/sessions/" + id;
    const auto session = parse_route(session_path);
    CHECK(session.target == endpoint::session);
    CHECK(session.id == id);
    CHECK(parse_route("/api/sessions/" + id + "/ping").target == endpoint::ping);
    CHECK(parse_route("/api/sessions/" + id + "/download").target == endpoint::download);
    const std::string upload_path = "/api/sessions/" + id + "/upload";
    const auto upload = parse_route(upload_path);
    CHECK(upload.target == endpoint::upload);
    CHECK(upload.id == id);
    CHECK(parse_route("/api/sessions/" + id + "/uploads").target == endpoint::none);
    CHECK(parse_route("/api/sessions/" + id + "/upload/").target == endpoint::none);
    CHECK(parse_route("/api/sessions/nothex/ping").target == endpoint::unknown_session);
    CHECK(parse_route("/api/sessions/").target == endpoint::none);
    CHECK(parse_route("/api/sessionsX").target == endpoint::none);
    CHECK(parse_route("/index.html").target == endpoint::none);
    CHECK(parse_route("").target == endpoint::none);
}

TEST_CASE("a download's bytes= is read exactly and bounded", "[web]") {
    constexpr std::uint64_t max = 64ull << 20;
    CHECK(parse_download_bytes("bytes=1048576", max) == 1048576u);
    CHECK(parse_download_bytes("r=0.25&bytes=42&x=1", max) == 42u);
    CHECK(parse_download_bytes("bytes=0", max) == 0u);
    CHECK(parse_download_bytes("bytes=67108864", max) == max);
    CHECK_FALSE(parse_download_bytes("bytes=67108865", max));
    CHECK_FALSE(parse_download_bytes("bytes=", max));
    CHECK_FALSE(parse_download_bytes("bytes=-1", max));
    CHECK_FALSE(parse_download_bytes("bytes=1e6", max));
    CHECK_FALSE(parse_download_bytes("bytes=+5", max));
    CHECK_FALSE(parse_download_bytes("", max));
    CHECK_FALSE(parse_download_bytes("xbytes=5", max));
    // Would wrap a 64-bit value: refused, not wrapped.
    CHECK_FALSE(
        parse_download_bytes("bytes=18446744073709551616", std::numeric_limits<std::uint64_t>::max()));
    CHECK(parse_download_bytes("bytes=18446744073709551615", std::numeric_limits<std::uint64_t>::max()) ==
          std::numeric_limits<std::uint64_t>::max());
    CHECK_FALSE(parse_download_bytes("bytes=000000000000000000001", max));  // 21 digits
}

TEST_CASE("upload bodies are binned by arrival from the first body's", "[web]") {
    upload_bins bins(100'000'000, 50);
    CHECK(bins.intervals().empty());
    bins.add(5'000'000'000, 1000);  // t = 0: the first body opens interval 0
    bins.add(5'099'999'999, 10);    // still interval 0
    bins.add(5'100'000'000, 20);    // interval 1 starts exactly at 0.1 s
    bins.add(5'350'000'000, 300);   // interval 3; interval 2 stays empty
    CHECK(bins.bytes_total() == 1330);
    CHECK(bins.bodies() == 4);
    CHECK(bins.interval_seconds() == 0.1);
    const auto intervals = bins.intervals();
    REQUIRE(intervals.size() == 4);
    CHECK(intervals[0].bytes == 1010);
    CHECK(intervals[1].bytes == 20);
    CHECK(intervals[2].bytes == 0);
    CHECK(intervals[3].bytes == 300);
    CHECK(intervals[3].start == Approx(0.3));
    CHECK(intervals[3].end == Approx(0.4));
    std::uint64_t sum = 0;
    for (const auto& i : intervals) {
        sum += i.bytes;
    }
    CHECK(sum == bins.bytes_total());
}

TEST_CASE("upload bins stay within their count", "[web]") {
    upload_bins bins(100'000'000, 3);
    bins.add(1'000, 1);
    bins.add(900'000'000'000, 2);  // 900 s later: into the last interval
    bins.add(500, 4);              // before the first: into the first
    const auto intervals = bins.intervals();
    REQUIRE(intervals.size() == 3);
    CHECK(intervals[0].bytes == 5);
    CHECK(intervals[2].bytes == 2);
    CHECK(bins.bytes_total() == 7);
}
