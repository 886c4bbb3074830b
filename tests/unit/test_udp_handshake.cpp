// The UDP handshake's decisions (common/udp_handshake.hpp): the listener's verdict on a datagram at the
// shared port, a server stream's path validation with its 1:1 credit, and a client stream's cookie echo.
#include <catch2/catch.hpp>

#include <array>
#include <cstdint>
#include <limits>
#include <optional>
#include <span>
#include <vector>

#include "common/udp_handshake.hpp"
#include "common/udp_wire.hpp"

using namespace speed::udp;

namespace {

constexpr std::uint64_t kToken = 0x0102030405060708;
constexpr std::uint64_t kCookie = 0x1122334455667788;

std::vector<std::uint8_t> datagram(datagram_type type, std::size_t bytes, std::uint64_t cookie = 0) {
    std::vector<std::uint8_t> out(std::max(bytes, kHandshakeSize));
    write_handshake(out, {type, 3, kToken, 9, 10}, cookie);
    out.resize(bytes);
    return out;
}

// The listener's verdict with a token table of one live token, whose owner is as given.
struct listener_probe {
    std::optional<hello_owner> owner;
    std::vector<std::uint64_t> tokens_asked;

    hello_verdict judge(const std::vector<std::uint8_t>& bytes) {
        return judge_listener_datagram(bytes, [this](std::uint64_t token) {
            tokens_asked.push_back(token);
            return token == kToken ? owner : std::nullopt;
        });
    }
};

}  // namespace

// ---- the listener ----

TEST_CASE("the listener passes a HELLO of 36 bytes with a live token from the control peer",
          "[udp][handshake]") {
    listener_probe listener{hello_owner{true, 0}, {}};
    const auto verdict = listener.judge(datagram(datagram_type::hello, kHandshakeSize));
    CHECK(verdict.drop == hello_drop::none);
    REQUIRE(verdict.hello);
    CHECK(verdict.hello->stream == 3);
    CHECK(verdict.hello->token == kToken);
    CHECK(listener.tokens_asked == std::vector<std::uint64_t>{kToken});
}

TEST_CASE("the listener drops what is not a HELLO as malformed without looking the token up",
          "[udp][handshake]") {
    listener_probe listener{hello_owner{true, 0}, {}};
    for (const auto type : {datagram_type::data, datagram_type::hello_ack, datagram_type::feedback,
                            datagram_type::ping, datagram_type::pong}) {
        const auto verdict = listener.judge(datagram(type, 1472));
        CHECK(verdict.drop == hello_drop::malformed);
        CHECK_FALSE(verdict.hello);
    }
    // 27 bytes: not even a header.
    const auto short_header = listener.judge(datagram(datagram_type::hello, kHeaderSize - 1));
    CHECK(short_header.drop == hello_drop::malformed);
    CHECK_FALSE(short_header.hello);
    CHECK(listener.tokens_asked.empty());
}

TEST_CASE("the listener drops a HELLO one byte shorter than a cookie needs as malformed",
          "[udp][handshake]") {
    listener_probe listener{hello_owner{true, 0}, {}};
    const auto verdict = listener.judge(datagram(datagram_type::hello, kHandshakeSize - 1));
    CHECK(verdict.drop == hello_drop::malformed);
    CHECK(verdict.hello.has_value());  // a HELLO, but too short for an answer
    CHECK(listener.judge(datagram(datagram_type::hello, kHeaderSize)).drop == hello_drop::malformed);
}

TEST_CASE("the listener drops a HELLO with a token nobody owns", "[udp][handshake]") {
    listener_probe listener{std::nullopt, {}};
    CHECK(listener.judge(datagram(datagram_type::hello, kHandshakeSize)).drop == hello_drop::unknown_token);
    CHECK(listener.tokens_asked == std::vector<std::uint64_t>{kToken});
}

TEST_CASE("the listener drops a live token's HELLO from another address, before judging its length",
          "[udp][handshake]") {
    listener_probe listener{hello_owner{false, 0}, {}};
    CHECK(listener.judge(datagram(datagram_type::hello, kHandshakeSize)).drop == hello_drop::wrong_address);
    CHECK(listener.judge(datagram(datagram_type::hello, kHeaderSize)).drop == hello_drop::wrong_address);
    listener.owner->hellos_passed = kMaxHellosPerToken;
    CHECK(listener.judge(datagram(datagram_type::hello, kHandshakeSize)).drop == hello_drop::wrong_address);
}

TEST_CASE("the listener passes 512 HELLOs per token and drops the 513th as excess", "[udp][handshake]") {
    CHECK(judge_hello(kHandshakeSize, hello_owner{true, 511}) == hello_drop::none);
    CHECK(judge_hello(kHandshakeSize, hello_owner{true, 512}) == hello_drop::excess);
    // Too short is malformed even beyond the budget.
    CHECK(judge_hello(kHandshakeSize - 1, hello_owner{true, 512}) == hello_drop::malformed);

    // As udp_listener counts: a passed HELLO adds one to the owner's count.
    listener_probe listener{hello_owner{true, 0}, {}};
    std::uint64_t passed = 0;
    std::uint64_t excess = 0;
    for (int i = 0; i < 600; ++i) {
        const auto drop = listener.judge(datagram(datagram_type::hello, kHandshakeSize)).drop;
        if (drop == hello_drop::none) {
            ++passed;
            ++listener.owner->hellos_passed;
        } else if (drop == hello_drop::excess) {
            ++excess;
        }
    }
    CHECK(passed == 512);
    CHECK(excess == 88);
}

// ---- a server stream ----

TEST_CASE("server path: one 64-byte HELLO allows exactly one HELLO_ACK of 36 bytes, not a second",
          "[udp][handshake]") {
    server_path path(kCookie, 64);
    CHECK(path.credit_bytes() == 64);
    CHECK(path.answer_cookie() == kCookie);
    CHECK(path.may_send(kHandshakeSize));
    CHECK(path.sent_unvalidated_bytes() == 36);
    CHECK_FALSE(path.may_send(kHandshakeSize));  // 72 > 64
    CHECK(path.sent_unvalidated_bytes() == 36);
    CHECK_FALSE(path.established());
}

TEST_CASE("server path: a 36-byte HELLO allows one 36-byte answer, and each further 36 bytes one more",
          "[udp][handshake]") {
    server_path path(kCookie, kHandshakeSize);
    CHECK(path.may_send(kHandshakeSize));
    CHECK_FALSE(path.may_send(kHandshakeSize));
    CHECK_FALSE(path.may_send(1));
    path.on_datagram(35);
    CHECK_FALSE(path.may_send(kHandshakeSize));  // 72 > 71
    path.on_datagram(1);
    CHECK(path.may_send(kHandshakeSize));
    CHECK(path.credit_bytes() == 72);
    CHECK(path.sent_unvalidated_bytes() == 72);
}

TEST_CASE(
    "server path: a wrong cookie and cookie 0 do not validate the path, the exact cookie does, for good",
    "[udp][handshake]") {
    server_path path(kCookie, kHandshakeSize);
    CHECK_FALSE(path.on_hello(0));
    CHECK_FALSE(path.on_hello(kCookie + 1));
    CHECK_FALSE(path.on_hello(kCookie ^ (std::uint64_t{1} << 63)));
    CHECK_FALSE(path.established());
    CHECK(path.answer_cookie() == kCookie);

    CHECK(path.on_hello(kCookie));
    CHECK(path.established());
    CHECK(path.answer_cookie() == 0);     // tells the client its echo arrived
    CHECK_FALSE(path.on_hello(kCookie));  // validated once
    CHECK_FALSE(path.on_hello(kCookie + 1));
    CHECK(path.established());
    // A valid path sends without the 1:1 bound, and its credit no longer counts.
    CHECK(path.may_send(65507));
    CHECK(path.may_send(65507));
    CHECK(path.sent_unvalidated_bytes() == 0);
    path.on_datagram(1000);
    CHECK(path.credit_bytes() == 36);
}

TEST_CASE("server path: a cookie of 0 validates nothing, not even an echo of 0", "[udp][handshake]") {
    server_path path(0, kHandshakeSize);
    CHECK_FALSE(path.on_hello(0));
    CHECK_FALSE(path.established());
}

TEST_CASE("server path: the credit stops at the largest number instead of wrapping", "[udp][handshake]") {
    constexpr auto kMax = std::numeric_limits<std::uint64_t>::max();
    server_path path(kCookie, std::numeric_limits<std::size_t>::max());
    path.on_datagram(std::numeric_limits<std::size_t>::max());
    CHECK(path.credit_bytes() == kMax);
    CHECK(path.may_send(std::numeric_limits<std::size_t>::max()));
    CHECK_FALSE(path.may_send(1));
    CHECK(path.sent_unvalidated_bytes() == kMax);
}

// ---- a client stream ----

TEST_CASE("client path: echoes the server's cookie and is established by the confirmation",
          "[udp][handshake]") {
    client_path path;
    CHECK(path.echo_cookie() == 0);
    CHECK(path.on_hello_ack(kCookie) == client_path::ack_effect::echo_now);
    CHECK(path.echo_cookie() == kCookie);
    CHECK(path.on_hello_ack(kCookie) == client_path::ack_effect::none);          // the same cookie again
    CHECK(path.on_hello_ack(kCookie + 1) == client_path::ack_effect::echo_now);  // a newer one replaces it
    CHECK(path.echo_cookie() == kCookie + 1);
    CHECK_FALSE(path.established());
    CHECK(path.on_hello_ack(0) == client_path::ack_effect::established);
    CHECK(path.established());
    CHECK(path.on_hello_ack(0) == client_path::ack_effect::none);
    CHECK(path.on_hello_ack(kCookie + 2) == client_path::ack_effect::none);
    CHECK(path.echo_cookie() == kCookie + 1);
    CHECK_FALSE(path.on_data());
}

TEST_CASE("client path: the first DATA establishes the path when the confirmation was lost",
          "[udp][handshake]") {
    client_path path;
    CHECK(path.on_hello_ack(kCookie) == client_path::ack_effect::echo_now);
    CHECK(path.on_data());
    CHECK(path.established());
    CHECK_FALSE(path.on_data());
    CHECK(path.on_hello_ack(0) == client_path::ack_effect::none);
}

TEST_CASE("a whole handshake: 36 bytes each way until the echo, then the confirmation", "[udp][handshake]") {
    client_path client;
    // The client's first HELLO (cookie 0) reaches the listener, which creates the stream with its credit.
    const auto first = datagram(datagram_type::hello, kHandshakeSize, client.echo_cookie());
    listener_probe listener{hello_owner{true, 0}, {}};
    REQUIRE(listener.judge(first).drop == hello_drop::none);
    server_path server(kCookie, first.size());
    REQUIRE(server.may_send(kHandshakeSize));
    REQUIRE(client.on_hello_ack(server.answer_cookie()) == client_path::ack_effect::echo_now);
    // The echo reaches the stream's own socket.
    server.on_datagram(kHandshakeSize);
    CHECK(server.on_hello(client.echo_cookie()));
    REQUIRE(server.may_send(kHandshakeSize));
    CHECK(client.on_hello_ack(server.answer_cookie()) == client_path::ack_effect::established);
    CHECK(server.credit_bytes() == 72);
    CHECK(server.sent_unvalidated_bytes() == 36);
}

// ---- iperf3's UDP connect at the same port ----

namespace {

struct iperf3_probe {
    std::optional<iperf3_connect_owner> owner;
    int asked = 0;

    hello_verdict judge(std::span<const std::uint8_t> bytes) {
        return judge_listener_datagram(
            bytes,
            [](std::uint64_t) {
                return std::optional<hello_owner>(hello_owner{true, 0});
            },
            [this] {
                ++asked;
                return owner;
            });
    }
};

constexpr std::array<std::uint8_t, 4> kConnect{0x39, 0x38, 0x37, 0x36};
constexpr std::array<std::uint8_t, 4> kLegacyConnect{0x15, 0xcd, 0x5b, 0x07};

}  // namespace

TEST_CASE("the listener passes an iperf3 connect to the session from its address that waits for streams",
          "[udp][handshake][iperf3]") {
    iperf3_probe listener;
    listener.owner = iperf3_connect_owner{2, 1};
    const auto verdict = listener.judge(kConnect);
    CHECK(verdict.drop == hello_drop::none);
    CHECK(verdict.iperf3_connect == speed::iperf3::udp_connect::current);
    CHECK_FALSE(verdict.hello);
    CHECK(listener.judge(kLegacyConnect).iperf3_connect == speed::iperf3::udp_connect::legacy);
    CHECK(listener.asked == 2);
}

TEST_CASE("the listener drops an iperf3 connect with no waiting session, or beyond its streams",
          "[udp][handshake][iperf3]") {
    iperf3_probe listener;
    CHECK(listener.judge(kConnect).drop == hello_drop::unknown_token);
    listener.owner = iperf3_connect_owner{2, 2};
    CHECK(listener.judge(kConnect).drop == hello_drop::excess);
    listener.owner = iperf3_connect_owner{0, 0};
    CHECK(listener.judge(kLegacyConnect).drop == hello_drop::excess);
}

TEST_CASE("a HELLO and an iperf3 connect are never taken for one another", "[udp][handshake][iperf3]") {
    iperf3_probe listener;
    listener.owner = iperf3_connect_owner{1, 0};
    // A HELLO is judged as one, and the iperf3 sessions are not asked.
    const auto hello = listener.judge(datagram(datagram_type::hello, kHandshakeSize));
    CHECK(hello.drop == hello_drop::none);
    CHECK(hello.hello);
    CHECK(hello.iperf3_connect == speed::iperf3::udp_connect::none);
    // The connect's bytes at the start of a longer datagram, or 4 other bytes: neither.
    std::vector<std::uint8_t> longer(kConnect.begin(), kConnect.end());
    longer.push_back(0);
    const auto padded = listener.judge(longer);
    CHECK(padded.drop == hello_drop::malformed);
    CHECK(padded.iperf3_connect == speed::iperf3::udp_connect::none);
    const std::array<std::uint8_t, 4> other{0x01, 0x01, 0x00, 0x00};
    CHECK(listener.judge(other).drop == hello_drop::malformed);
    CHECK(listener.asked == 0);
}
