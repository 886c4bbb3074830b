#include <catch2/catch.hpp>

#include <algorithm>

#include "common/frame_buffer.hpp"

using namespace speed::proto;

namespace {
void feed(frame_buffer& buffer, const std::vector<std::uint8_t>& bytes) {
    auto space = buffer.prepare(bytes.size());
    std::copy(bytes.begin(), bytes.end(), space.begin());
    buffer.commit(bytes.size());
}
}  // namespace

TEST_CASE("frames arriving one byte at a time come out whole", "[frame_buffer]") {
    frame_buffer buffer;
    const auto frame = encode(ping{7, 42});
    for (std::size_t i = 0; i + 1 < frame.size(); ++i) {
        feed(buffer, {frame[i]});
        CHECK(buffer.next().status == decode_status::need_more);
    }
    feed(buffer, {frame.back()});
    const auto result = buffer.next();
    REQUIRE(result.status == decode_status::ok);
    CHECK(std::get<ping>(result.msg) == ping{7, 42});
    CHECK(buffer.buffered() == 0);
}

TEST_CASE("several frames in one read come out in order", "[frame_buffer]") {
    frame_buffer buffer;
    std::vector<std::uint8_t> bytes;
    for (std::uint32_t i = 0; i < 3; ++i) {
        encode(ping{i, i * 10}, bytes);
    }
    bytes.push_back(0x20);  // the first byte of a fourth frame
    feed(buffer, bytes);
    for (std::uint32_t i = 0; i < 3; ++i) {
        const auto result = buffer.next();
        REQUIRE(result.status == decode_status::ok);
        CHECK(std::get<ping>(result.msg).sequence == i);
    }
    CHECK(buffer.next().status == decode_status::need_more);
    CHECK(buffer.buffered() == 1);
}

TEST_CASE("an oversized frame is bad before its payload arrives", "[frame_buffer]") {
    frame_buffer buffer;
    feed(buffer, {0x20, 0x00, 0x00, 0x01, 0x00});
    CHECK(buffer.next(64).status == decode_status::bad);
}

TEST_CASE("the buffer reuses its space instead of growing with traffic", "[frame_buffer]") {
    frame_buffer buffer;
    const auto frame = encode(ping{1, 2});
    for (int i = 0; i < 10000; ++i) {
        feed(buffer, frame);
        REQUIRE(buffer.next().status == decode_status::ok);
    }
    CHECK(buffer.buffered() == 0);
    CHECK(buffer.prepare(0).size() < 4096);
}
