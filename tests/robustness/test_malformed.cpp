// Malformed input against the real speedsrv: every kind ends that connection with an ERROR (or a close) at
// once, and the server carries on serving others.
#include <catch2/catch.hpp>

#include "tests/robustness/abuse.hpp"

using namespace speed;
using namespace speed::testing;
using proto::error_code;

namespace {

struct bad_input {
    std::string what;
    std::vector<std::uint8_t> bytes;
    std::optional<error_code> expected;  // nothing: the server may just close
    bool then_eof = false;               // the client closes its sending side after the bytes
};

std::vector<std::uint8_t> hello_with_version(std::uint16_t version) {
    auto bytes = control_hello();
    bytes[9] = static_cast<std::uint8_t>(version >> 8);
    bytes[10] = static_cast<std::uint8_t>(version);
    return bytes;
}

std::vector<std::uint8_t> truncated(std::vector<std::uint8_t> bytes, std::size_t length) {
    bytes.resize(length);
    return bytes;
}

std::vector<std::uint8_t> with_random_token(proto::connection_kind kind) {
    proto::hello hello;
    hello.kind = kind;
    hello.token.fill(0x5a);
    return proto::encode(hello);
}

// Before and instead of a HELLO.
std::vector<bad_input> handshake_inputs() {
    return {
        {"HELLO of length 0", raw_frame(0x01, 0), error_code::protocol_error},
        {"HELLO one byte over its 256-byte cap", raw_frame(0x01, 257), error_code::protocol_error},
        {"a length of 0xFFFFFFFF", raw_frame(0x01, 0xffffffff), error_code::protocol_error},
        {"an unknown type 0x00", raw_frame(0x00, 0), error_code::protocol_error},
        {"an unknown type 0x7f", raw_frame(0x7f, 4, {1, 2, 3, 4}), error_code::protocol_error},
        {"an unknown type 0xff with a huge length", raw_frame(0xff, 0xfffffff0), error_code::protocol_error},
        {"a WELCOME instead of a HELLO", proto::encode(proto::welcome{}), error_code::protocol_error},
        {"a wrong magic", raw_frame(0x01, 6, {'G', 'E', 'T', ' ', '/', ' '}), error_code::protocol_error},
        {"an HTTP request",
         {'G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P', '/', '1', '.', '1', '\r', '\n', '\r', '\n'},
         error_code::protocol_error},
        {"a TLS ClientHello",
         {0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03},
         error_code::protocol_error},
        {"version 0", hello_with_version(0), error_code::version_mismatch},
        {"version 1 (before UDP path cookies and two-way authentication)", hello_with_version(1),
         error_code::version_mismatch},
        {"the next version", hello_with_version(proto::kProtocolVersion + 1), error_code::version_mismatch},
        {"version 0xFFFF", hello_with_version(0xffff), error_code::version_mismatch},
        {"a truncated HELLO, then EOF", truncated(control_hello(), 20), error_code::protocol_error, true},
        {"a truncated header, then EOF", truncated(control_hello(), 3), error_code::protocol_error, true},
        {"a probe HELLO naming no session", with_random_token(proto::connection_kind::probe),
         error_code::unknown_session},
        {"a data HELLO naming no session", with_random_token(proto::connection_kind::data), std::nullopt},
    };
}

// After WELCOME, on an open session.
std::vector<bad_input> session_inputs() {
    proto::test_request no_streams;
    no_streams.streams = 0;
    proto::test_request too_many_streams;
    too_many_streams.streams = 129;
    proto::test_request too_long;
    too_long.duration_ms = 0xffffffff;
    return {
        {"a frame one byte over 64 KiB", raw_frame(0x10, 65537), error_code::protocol_error},
        {"a length of 0xFFFFFFFF", raw_frame(0x10, 0xffffffff), error_code::protocol_error},
        {"a TEST_REQUEST of length 0", raw_frame(0x10, 0), error_code::protocol_error},
        {"an unknown type", raw_frame(0x2f, 1, {0}), error_code::protocol_error},
        {"an auth type without authentication", raw_frame(0x43, 32, std::vector<std::uint8_t>(32, 0)),
         error_code::protocol_error},
        {"STOP before any test", proto::encode(proto::stop{}), error_code::protocol_error},
        {"a second HELLO", control_hello(), error_code::protocol_error},
        {"a PING on the control connection", proto::encode(proto::ping{1, 2}), error_code::protocol_error},
        {"a SENDER_REPORT out of place", proto::encode(proto::sender_report{}), error_code::protocol_error},
        {"a server's TEST_ACCEPT", proto::encode(proto::test_accept{1, ""}), error_code::protocol_error},
        {"a test with no streams", proto::encode(no_streams), error_code::protocol_error},
        {"a test with 129 streams", proto::encode(too_many_streams), error_code::limit_exceeded},
        {"a test of 49 days", proto::encode(too_long), error_code::limit_exceeded},
        {"garbage after a valid frame", raw_frame(0x12, 3, {1, 2, 3}), error_code::protocol_error},
    };
}

void check_refused(raw_connection& connection, const bad_input& input) {
    INFO(input.what);
    REQUIRE(connection.connected());
    connection.send(input.bytes);
    if (input.then_eof) {
        connection.shutdown_sending();
    }
    if (input.expected) {
        CHECK(error_reply(connection, 3s) == input.expected);
    }
    // Whatever the reply, the connection ends promptly (not at a deadline).
    const auto closed = connection.wait_closed(3s);
    REQUIRE(closed);
    CHECK(*closed < 2s);
}

}  // namespace

TEST_CASE("malformed handshakes: an ERROR and a close, every time", "[robustness][concurrent]") {
    watched_server server({"--handshake-timeout", "2"});
    unsigned host = 0;
    for (const auto& input : handshake_inputs()) {
        raw_connection connection(attacker_address(host++ % 8), server.port());
        check_refused(connection, input);
    }
    SECTION("a truncated header, then silence: closed at the handshake deadline") {
        raw_connection connection(attacker_address(9), server.port());
        connection.send(std::vector<std::uint8_t>{0x01, 0x00, 0x00});
        const auto closed = connection.wait_closed(5s);
        REQUIRE(closed);
        CHECK(*closed >= 1500ms);
        CHECK(*closed < 4s);
    }
    server.check_recovered();
}

TEST_CASE("malformed and out-of-place frames in a session: an ERROR and a close",
          "[robustness][concurrent]") {
    watched_server server({"--handshake-timeout", "2"});
    unsigned host = 0;
    for (const auto& input : session_inputs()) {
        raw_connection connection(attacker_address(host++ % 3), server.port());
        open_session(connection);
        check_refused(connection, input);
    }
    server.check_recovered();
}
