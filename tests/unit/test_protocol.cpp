// Golden byte vectors for every message, and malformed input of every kind the decoder must refuse.
#include <catch2/catch.hpp>

#include <cstdio>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>

#include "common/protocol.hpp"
#include "common/wire.hpp"
#include "tests/unit/hex.hpp"

using namespace speed::proto;
using speed::testing::ascii;
using speed::testing::concat;
using speed::testing::from_hex;

namespace {

session_token counting_token() {
    session_token token{};
    for (std::size_t i = 0; i < token.size(); ++i) {
        token[i] = static_cast<std::uint8_t>(i + 1);
    }
    return token;
}

// Encodes `msg`, compares with `golden`, and decodes `golden` back to `msg`.
template <class T>
void check_round_trip(const T& msg, const std::vector<std::uint8_t>& golden) {
    CHECK(encode(msg) == golden);
    const decode_result decoded = decode_frame(golden);
    REQUIRE(decoded.status == decode_status::ok);
    CHECK(decoded.consumed == golden.size());
    REQUIRE(std::holds_alternative<T>(decoded.msg));
    CHECK(std::get<T>(decoded.msg) == msg);
}

decode_result decode(const std::vector<std::uint8_t>& bytes) {
    return decode_frame(bytes);
}

}  // namespace

TEST_CASE("HELLO of a control connection", "[protocol]") {
    hello msg;
    msg.kind = connection_kind::control;
    msg.software = "speedcli 0.1.0";
    check_round_trip(msg, concat({from_hex("01 0000002d  53504454 0002 01"),
                                  from_hex("00000000 00000000 00000000 00000000"),  // token
                                  from_hex("00000000 0000 000e"), ascii("speedcli 0.1.0")}));
}

TEST_CASE("HELLO of a data connection carries token, test and stream", "[protocol]") {
    hello msg;
    msg.kind = connection_kind::data;
    msg.token = counting_token();
    msg.test_id = 0x01020304;
    msg.stream_index = 7;
    check_round_trip(msg, from_hex("01 0000001f  53504454 0002 02"
                                   "0102030405060708090a0b0c0d0e0f10"
                                   "01020304 0007 0000"));
}

TEST_CASE("WELCOME", "[protocol]") {
    welcome msg;
    msg.token = counting_token();
    msg.software = "srv";
    msg.max_streams = 32;
    msg.max_duration_ms = 60000;
    msg.max_bitrate = 10'000'000'000ULL;
    msg.max_bytes = 0x40000000;
    msg.auth_required = true;
    check_round_trip(
        msg, concat({from_hex("02 0000002e  0002 0102030405060708090a0b0c0d0e0f10 0003"), ascii("srv"),
                     from_hex("0020 0000ea60 00000002540be400 0000000040000000 01")}));
}

TEST_CASE("WELCOME with an authentication flag other than 0 or 1 is refused", "[protocol]") {
    auto bytes = encode(welcome{});
    bytes.back() = 2;
    CHECK(decode(bytes).status == decode_status::bad);
}

TEST_CASE("protocol version 2: both sides prove the key and reports are tagged", "[protocol]") {
    CHECK(kProtocolVersion == 2);
}

TEST_CASE("authentication messages", "[protocol]") {
    auth_challenge challenge;
    for (std::size_t i = 0; i < challenge.nonce.size(); ++i) {
        challenge.nonce[i] = static_cast<std::uint8_t>(0xa0 + i);
    }
    check_round_trip(challenge, from_hex("40 00000020 a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
                                         "b0b1b2b3b4b5b6b7b8b9babbbcbdbebf"));

    // AUTH_RESPONSE: key name, the client's nonce, the client's proof.
    auth_response response;
    response.key_name = "lab";
    for (std::size_t i = 0; i < response.client_nonce.size(); ++i) {
        response.client_nonce[i] = static_cast<std::uint8_t>(0xc0 + i);
    }
    response.mac.fill(0x5a);
    check_round_trip(response, concat({from_hex("41 00000045 0003"), ascii("lab"),
                                       from_hex("c0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
                                                "d0d1d2d3d4d5d6d7d8d9dadbdcdddedf"),
                                       from_hex("5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"
                                                "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a")}));

    // AUTH_OK: the server's proof.
    auth_ok accepted;
    accepted.server_proof.fill(0x3c);
    check_round_trip(
        accepted, from_hex("42 00000020 3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c"));

    test_auth tag;
    tag.mac.fill(0x01);
    check_round_trip(
        tag, from_hex("43 00000020 0101010101010101010101010101010101010101010101010101010101010101"));

    report_auth report_tag;
    report_tag.mac.fill(0x02);
    check_round_trip(
        report_tag, from_hex("44 00000020 0202020202020202020202020202020202020202020202020202020202020202"));
}

namespace {

// A value of every message type that survives a round trip: the default, except where the decoder refuses
// a default field (UDP_SETUP's zero token and port).
template <class M>
M sample(std::type_identity<M> /*type*/) {
    return M{};
}
udp_setup sample(std::type_identity<udp_setup> /*type*/) {
    return udp_setup{.token = 7, .port = 5201, .max_bitrate = 0};
}

}  // namespace

TEST_CASE("every message in the table round-trips under its own type byte and name", "[protocol][table]") {
    std::set<std::uint8_t> ids;
    std::set<std::string_view> names;
    std::size_t entries = 0;
    message_table::for_each([&](auto entry) {
        using E = typename decltype(entry)::type;
        using M = typename E::type;
        ++entries;
        INFO(E::name);
        ids.insert(static_cast<std::uint8_t>(E::id));
        names.insert(E::name);
        CHECK(name_of(E::id) == E::name);
        CHECK(is_report(E::id) == E::is_report);
        const message msg = sample(std::type_identity<M>{});
        CHECK(type_of(msg) == E::id);
        const std::vector<std::uint8_t> frame = encode(msg);
        REQUIRE(frame.size() >= kFrameHeaderSize);
        CHECK(frame[0] == static_cast<std::uint8_t>(E::id));
        const decode_result decoded = decode_frame(frame);
        REQUIRE(decoded.status == decode_status::ok);
        CHECK(decoded.consumed == frame.size());
        REQUIRE(std::holds_alternative<M>(decoded.msg));
        CHECK(std::get<M>(decoded.msg) == std::get<M>(msg));
    });
    CHECK(entries == std::variant_size_v<message>);
    CHECK(entries == 24);
    CHECK(ids.size() == entries);
    CHECK(names.size() == entries);
}

TEST_CASE("a type byte no table entry has is refused by its number", "[protocol][table]") {
    int unknown = 0;
    for (int type = 0; type < 256; ++type) {
        const auto byte = static_cast<std::uint8_t>(type);
        bool known = false;
        message_table::for_each(
            [&](auto entry) { known = known || decltype(entry)::type::id == message_type{byte}; });
        if (known) {
            continue;
        }
        ++unknown;
        const std::vector<std::uint8_t> frame{byte, 0, 0, 0, 0};
        const decode_result decoded = decode_frame(frame);
        CHECK(decoded.status == decode_status::bad);
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", type);
        CHECK(decoded.reason == std::string("unknown message type ") + hex);
        CHECK(name_of(message_type{byte}) == "UNKNOWN");
    }
    CHECK(unknown == 256 - 24);
}

TEST_CASE("the messages REPORT_AUTH follows are the reports that carry figures", "[protocol]") {
    CHECK(is_report(type_id<interval_report>));
    CHECK(is_report(type_id<sender_report>));
    CHECK(is_report(type_id<receiver_report>));
    CHECK(is_report(type_id<self_probe_mark>));  // it decides a self probe's round trip
    CHECK(is_report(type_id<self_probe_samples>));
    CHECK(is_report(type_id<udp_interval_report>));
    CHECK(is_report(type_id<udp_sender_report>));
    CHECK(is_report(type_id<udp_receiver_report>));
    CHECK_FALSE(is_report(type_id<welcome>));
    CHECK_FALSE(is_report(type_id<test_accept>));
    CHECK_FALSE(is_report(type_id<pong>));
    CHECK_FALSE(is_report(type_id<report_auth>));
}

TEST_CASE("malformed authentication messages are refused", "[protocol]") {
    SECTION("a truncated nonce") {
        CHECK(decode(from_hex("40 00000001 00")).status == decode_status::bad);
    }
    SECTION("a key name longer than 64 bytes") {
        auto bytes = concat({from_hex("41 00000081 0041"), std::vector<std::uint8_t>(65, 'k'),
                             std::vector<std::uint8_t>(64, 0)});
        CHECK(decode(bytes).status == decode_status::bad);
    }
    SECTION("a tag one byte short, and one byte too many") {
        CHECK(decode(concat({from_hex("43 0000001f"), std::vector<std::uint8_t>(31, 0)})).status ==
              decode_status::bad);
        CHECK(decode(concat({from_hex("43 00000021"), std::vector<std::uint8_t>(33, 0)})).status ==
              decode_status::bad);
    }
    SECTION("AUTH_RESPONSE without its client nonce (the version 1 layout)") {
        auto bytes = concat({from_hex("41 00000025 0003"), ascii("lab"), std::vector<std::uint8_t>(32, 0)});
        CHECK(decode(bytes).status == decode_status::bad);
    }
    SECTION("AUTH_OK without its proof, or a proof one byte short") {
        CHECK(decode(from_hex("42 00000000")).status == decode_status::bad);
        CHECK(decode(concat({from_hex("42 0000001f"), std::vector<std::uint8_t>(31, 0)})).status ==
              decode_status::bad);
    }
    SECTION("REPORT_AUTH one byte too long") {
        CHECK(decode(concat({from_hex("44 00000021"), std::vector<std::uint8_t>(33, 0)})).status ==
              decode_status::bad);
    }
}

TEST_CASE("ERROR", "[protocol]") {
    error msg{error_code::server_busy, "busy"};
    check_round_trip(msg, concat({from_hex("03 00000008  0003 0004"), ascii("busy")}));
}

TEST_CASE("ERROR codes outside the defined range are refused", "[protocol]") {
    // Golden frames: code 0, 11 (one past shutting_down) and 0xffff, each with the message "x".
    for (const char* code : {"0000", "000b", "ffff"}) {
        const auto bytes = from_hex(std::string("03 00000005 ") + code + " 0001 78");
        CHECK(decode_frame(bytes).status == decode_status::bad);
    }
    // The first and last defined codes decode.
    CHECK(decode_frame(from_hex("03 00000005 0001 0001 78")).status == decode_status::ok);
    CHECK(decode_frame(from_hex("03 00000005 000a 0001 78")).status == decode_status::ok);
}

TEST_CASE("TEST_REQUEST", "[protocol]") {
    test_request msg;
    msg.dir = direction::upload;
    msg.proto = transport::tcp;
    msg.streams = 4;
    msg.duration_ms = 10000;
    msg.omit_ms = 2000;
    msg.interval_ms = 500;
    msg.bitrate = 100'000'000;
    msg.udp_payload_bytes = 0;
    msg.congestion = "bbr";
    check_round_trip(msg, concat({from_hex("10 00000021  02 01 0004 00002710 000007d0 000001f4"
                                           "0000000005f5e100 00000000 0003"),
                                  ascii("bbr")}));
}

TEST_CASE("small control messages", "[protocol]") {
    check_round_trip(test_accept{0x0a0b0c0d, ""}, from_hex("11 00000006 0a0b0c0d 0000"));
    check_round_trip(test_accept{1, "bbr"}, concat({from_hex("11 00000009 00000001 0003"), ascii("bbr")}));
    check_round_trip(streams_ready{}, from_hex("12 00000000"));
    check_round_trip(stop{stop_reason::window_complete}, from_hex("13 00000001 01"));
    check_round_trip(stop{stop_reason::aborted}, from_hex("13 00000001 02"));
    check_round_trip(ping{5, 0x1122334455667788ULL}, from_hex("20 0000000c 00000005 1122334455667788"));
    check_round_trip(pong{5, 0x1122334455667788ULL, 25000},
                     from_hex("21 00000014 00000005 1122334455667788 00000000000061a8"));
}

TEST_CASE("INTERVAL_REPORT", "[protocol]") {
    interval_report msg;
    msg.index = 3;
    msg.start_ns = 1'000'000'000;
    msg.end_ns = 2'000'000'000;
    msg.omitted = true;
    msg.stream_bytes = {1, 0x0100000000ULL};
    check_round_trip(msg, from_hex("14 00000027  00000003 000000003b9aca00 0000000077359400 01"
                                   "0002 0000000000000001 0000000100000000"));
}

TEST_CASE("SENDER_REPORT", "[protocol]") {
    sender_report msg;
    stream_sender_stats s;
    s.bytes_sent = 42;
    s.has_tcp_info = true;
    s.retransmits = 3;
    s.rtt_us = 250;
    s.rttvar_us = 40;
    s.cwnd_bytes = 65536;
    msg.streams = {s};
    msg.rtt_samples_us = {250, 1000};
    check_round_trip(msg, from_hex("15 00000025  0001 000000000000002a 01 00000003 000000fa 00000028 00010000"
                                   "0002 000000fa 000003e8"));
}

TEST_CASE("SELF_PROBE_MARK", "[protocol]") {
    check_round_trip(self_probe_mark{3, 7, 0x0102030405ULL},
                     from_hex("17 0000000e  0003 00000007 0000000102030405"));
    CHECK(decode_frame(from_hex("17 0000000d  0003 00000007 00000001020304")).status == decode_status::bad);
    CHECK(decode_frame(from_hex("17 0000000f  0003 00000007 0000000102030405 00")).status ==
          decode_status::bad);
}

TEST_CASE("SELF_PROBE_SAMPLES", "[protocol]") {
    self_probe_samples msg;
    msg.sent = 3;
    msg.dropped = 1;
    msg.samples = {{100'000, 1'500}, {200'000, 2'500}};
    check_round_trip(msg,
                     from_hex("18 0000001a  00000003 00000001 0002 000186a0 000005dc 00030d40 000009c4"));
    check_round_trip(self_probe_samples{}, from_hex("18 0000000a  00000000 00000000 0000"));
    // A sample cut short, a count beyond what the frame holds, a trailing byte.
    CHECK(decode_frame(from_hex("18 00000011  00000003 00000001 0001 000186a0 0005dc")).status ==
          decode_status::bad);
    CHECK(decode_frame(from_hex("18 00000012  00000003 00000001 0002 000186a0 000005dc")).status ==
          decode_status::bad);
    CHECK(decode_frame(from_hex("18 0000000b  00000000 00000000 0000 00")).status == decode_status::bad);
}

TEST_CASE("SELF_PROBE_SAMPLES carries at most kMaxSelfProbes samples", "[protocol]") {
    self_probe_samples msg;
    msg.samples.resize(kMaxSelfProbes + 1, {1, 2});
    const auto bytes = encode(msg);
    CHECK(bytes.size() == 5 + 10 + std::size_t{kMaxSelfProbes} * 8);
    const decode_result decoded = decode_frame(bytes);
    REQUIRE(decoded.status == decode_status::ok);
    CHECK(std::get<self_probe_samples>(decoded.msg).samples.size() == kMaxSelfProbes);

    // A count one over the cap is refused even when the bytes are there.
    const std::uint32_t over = kMaxSelfProbes + 1;
    std::vector<std::uint8_t> frame;
    speed::wire::writer out(frame);
    out.u8(static_cast<std::uint8_t>(type_id<self_probe_samples>));
    out.u32(10 + over * 8);
    out.u32(0);
    out.u32(0);
    out.u16(static_cast<std::uint16_t>(over));
    for (std::uint32_t i = 0; i < over; ++i) {
        out.u32(1);
        out.u32(2);
    }
    CHECK(decode_frame(frame).status == decode_status::bad);
}

TEST_CASE("RECEIVER_REPORT", "[protocol]") {
    receiver_report msg;
    msg.window_ns = 10'000'000'000ULL;
    msg.omitted_ns = 0;
    msg.omitted_bytes = 0;
    msg.stream_bytes = {1000};
    check_round_trip(msg, from_hex("16 00000022  00000002540be400 0000000000000000 0000000000000000"
                                   "0001 00000000000003e8"));
}

TEST_CASE("a frame split anywhere asks for more bytes, never reads past the input", "[protocol]") {
    const auto whole = encode(ping{1, 2});
    for (std::size_t cut = 0; cut < whole.size(); ++cut) {
        const std::vector<std::uint8_t> part(whole.begin(), whole.begin() + static_cast<std::ptrdiff_t>(cut));
        const auto result = decode(part);
        CHECK(result.status == decode_status::need_more);
        CHECK(result.bytes_needed == (cut < kFrameHeaderSize ? kFrameHeaderSize : whole.size()));
    }
}

TEST_CASE("two frames back to back decode one at a time", "[protocol]") {
    auto bytes = encode(ping{1, 2});
    const auto second = encode(stop{});
    bytes.insert(bytes.end(), second.begin(), second.end());
    const auto first = decode(bytes);
    REQUIRE(first.status == decode_status::ok);
    CHECK(std::holds_alternative<ping>(first.msg));
    const std::vector<std::uint8_t> rest(bytes.begin() + static_cast<std::ptrdiff_t>(first.consumed),
                                         bytes.end());
    CHECK(std::holds_alternative<stop>(decode(rest).msg));
}

TEST_CASE("oversized frames are refused from the header alone", "[protocol]") {
    SECTION("one byte over the limit") {
        const auto result = decode(from_hex("14 00010001"));
        CHECK(result.status == decode_status::bad);
        CHECK_THAT(result.reason, Catch::Contains("65537") && Catch::Contains("65536"));
    }
    SECTION("0xFFFFFFFF") {
        CHECK(decode(from_hex("14 ffffffff")).status == decode_status::bad);
    }
    SECTION("exactly the limit is only need-more") {
        CHECK(decode(from_hex("14 00010000")).status == decode_status::need_more);
    }
    SECTION("a HELLO budget") {
        CHECK(decode_frame(from_hex("01 00000101"), kMaxHelloPayload).status == decode_status::bad);
    }
    SECTION("length 0 for a message that has fields") {
        const auto result = decode(from_hex("20 00000000"));
        CHECK(result.status == decode_status::bad);
        CHECK_THAT(result.reason, Catch::Contains("truncated PING"));
    }
}

TEST_CASE("HELLO with the wrong magic or another version", "[protocol]") {
    SECTION("wrong magic: an HTTP request is not a client") {
        const auto result = decode(from_hex("01 00000006 474554202f20"));
        CHECK(result.status == decode_status::bad);
        CHECK_THAT(result.reason, Catch::Contains("magic"));
    }
    SECTION("another version decodes to its version number only") {
        const auto result = decode(from_hex("01 0000000a 53504454 0063 ffffffff"));
        REQUIRE(result.status == decode_status::ok);
        CHECK(std::get<hello>(result.msg).version == 99);
    }
    SECTION("unknown connection kind") {
        auto bytes = encode(hello{});
        bytes[11] = 9;
        CHECK(decode(bytes).status == decode_status::bad);
    }
    SECTION("software string longer than its limit") {
        hello msg;
        msg.software = std::string(kMaxSoftwareLength, 'x');
        auto bytes = encode(msg);
        CHECK(decode(bytes).status == decode_status::ok);
        // Claim one more byte of string and supply it: over the limit.
        bytes[4] = static_cast<std::uint8_t>(bytes[4] + 1);
        bytes[kFrameHeaderSize + 30] = static_cast<std::uint8_t>(kMaxSoftwareLength + 1);
        bytes.push_back('x');
        CHECK(decode(bytes).status == decode_status::bad);
    }
}

TEST_CASE("malformed payloads are refused with a reason", "[protocol]") {
    SECTION("unknown message type") {
        const auto result = decode(from_hex("7f 00000000"));
        CHECK(result.status == decode_status::bad);
        CHECK_THAT(result.reason, Catch::Contains("0x7f"));
    }
    SECTION("trailing bytes") {
        const auto result = decode(from_hex("11 00000007 0a0b0c0d 0000 ff"));
        CHECK(result.status == decode_status::bad);
        CHECK_THAT(result.reason, Catch::Contains("trailing"));
    }
    SECTION("a stream count larger than the bytes present") {
        CHECK(
            decode(from_hex("16 0000001a 0000000000000000 0000000000000000 0000000000000000 0080")).status ==
            decode_status::bad);
    }
    SECTION("a stream count above the protocol maximum") {
        CHECK(
            decode(from_hex("16 0000001a 0000000000000000 0000000000000000 0000000000000000 ffff")).status ==
            decode_status::bad);
    }
    SECTION("a boolean that is neither 0 nor 1") {
        CHECK(decode(from_hex("14 00000017 00000000 0000000000000000 0000000000000000 02 0000")).status ==
              decode_status::bad);
    }
    SECTION("an interval that ends before it starts") {
        CHECK(decode(from_hex("14 00000017 00000000 0000000000000002 0000000000000001 00 0000")).status ==
              decode_status::bad);
    }
    SECTION("unknown direction, transport and stop reason") {
        auto request = encode(test_request{});
        request[kFrameHeaderSize] = 3;
        CHECK(decode(request).status == decode_status::bad);
        request[kFrameHeaderSize] = 1;
        request[kFrameHeaderSize + 1] = 0;
        CHECK(decode(request).status == decode_status::bad);
        CHECK(decode(from_hex("13 00000001 00")).status == decode_status::bad);
    }
    SECTION("an error string that runs past the payload") {
        CHECK(decode(from_hex("03 00000005 0001 0009 41")).status == decode_status::bad);
    }
}

TEST_CASE("tokens compare by value and print only a prefix", "[protocol]") {
    const auto a = counting_token();
    auto b = a;
    CHECK(tokens_equal(a, b));
    b[15] ^= 1;
    CHECK_FALSE(tokens_equal(a, b));
    CHECK(token_prefix(a) == "01020304");
}

TEST_CASE("big-endian put and get: most significant byte first, any width up to 8", "[protocol][wire]") {
    std::array<std::uint8_t, 8> bytes{};
    speed::wire::put_big_endian(bytes.data(), 0x0102030405060708ULL, 8);
    CHECK(bytes == std::array<std::uint8_t, 8>{1, 2, 3, 4, 5, 6, 7, 8});
    CHECK(speed::wire::get_big_endian(bytes.data(), 8) == 0x0102030405060708ULL);
    CHECK(speed::wire::get_big_endian(bytes.data() + 6, 2) == 0x0708U);

    bytes.fill(0xee);
    speed::wire::put_big_endian(bytes.data() + 1, 0xAABBCCDDU, 4);  // only the low 4 bytes, only 4 written
    CHECK(bytes == std::array<std::uint8_t, 8>{0xee, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xee, 0xee});
    CHECK(speed::wire::get_big_endian(bytes.data() + 1, 4) == 0xAABBCCDDU);
    speed::wire::put_big_endian(bytes.data(), 0x1234, 1);  // the low byte only
    CHECK(bytes[0] == 0x34);
}
