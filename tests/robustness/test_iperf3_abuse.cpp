// Misbehaving iperf3 clients (raw connections that open with a valid cookie): junk where the parameters
// belong, a cookie and then silence, parameters over iperf3's 8 KiB, a stray "data connection" with an
// unknown cookie, an upload by bytes ended short of its amount, a --bidir client that opens half its streams.
// Each ends its own connection with iperf3's answer or within its phase's deadline, and the server keeps
// serving speedcli with its descriptors and memory back at the baseline.
#include <sys/socket.h>

#include <catch2/catch.hpp>

#include <string>
#include <thread>

#include "common/iperf3_protocol.hpp"
#include "tests/robustness/abuse.hpp"

using namespace speed;
using namespace speed::testing;

namespace {

// A cookie as iperf3 makes them: 36 characters of [a-z2-7] and a NUL; `seed` makes each one different.
std::vector<std::uint8_t> cookie(char seed) {
    std::vector<std::uint8_t> bytes(iperf3::kCookieSize - 1, static_cast<std::uint8_t>('a'));
    bytes[0] = static_cast<std::uint8_t>(seed);
    bytes.push_back(0);
    return bytes;
}

// Each read on `connection` waits at most `limit`.
void set_receive_timeout(raw_connection& connection, std::chrono::milliseconds limit) {
    timeval timeout{};
    timeout.tv_sec = limit.count() / 1000;
    timeout.tv_usec = limit.count() % 1000 * 1000;
    ::setsockopt(connection.fd(), SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
}

// The bytes the server sends within `limit`, until it closes the connection.
std::vector<std::uint8_t> read_until_closed(raw_connection& connection, std::chrono::milliseconds limit) {
    set_receive_timeout(connection, limit);
    std::vector<std::uint8_t> out;
    std::uint8_t buffer[256];
    for (int reads = 0; reads < 64; ++reads) {
        const ssize_t got = ::recv(connection.fd(), buffer, sizeof buffer, 0);
        if (got <= 0) {
            break;
        }
        out.insert(out.end(), buffer, buffer + got);
    }
    return out;
}

// `count` bytes from the server, or fewer if it closes or `limit` passes for a read.
std::vector<std::uint8_t> read_exactly(raw_connection& connection, std::size_t count,
                                       std::chrono::milliseconds limit) {
    set_receive_timeout(connection, limit);
    std::vector<std::uint8_t> out(count);
    std::size_t got = 0;
    while (got < count) {
        const ssize_t n = ::recv(connection.fd(), out.data() + got, count - got, 0);
        if (n <= 0) {
            break;
        }
        got += static_cast<std::size_t>(n);
    }
    out.resize(got);
    return out;
}

std::vector<std::uint8_t> with(std::vector<std::uint8_t> bytes, const std::vector<std::uint8_t>& more) {
    bytes.insert(bytes.end(), more.begin(), more.end());
    return bytes;
}

const std::uint8_t kParamExchange = iperf3::byte_of(iperf3::state::param_exchange);

}  // namespace

TEST_CASE("iperf3 clients that misbehave end their own connection only", "[robustness][concurrent][iperf3]") {
    // The cases below run one after another against one server and one recovery check at the end (as
    // SECTIONs, each would start a server and run a legitimate test of its own: three times as long).
    watched_server server({"--handshake-timeout", "1"});

    {
        INFO("junk after a valid cookie is refused with iperf3's 'unable to receive parameters'");
        raw_connection connection("127.0.0.1", server.port());
        // A length of 0x6a756e6b ("junk") is far over 8 KiB.
        REQUIRE(connection.send(with(cookie('b'), {'j', 'u', 'n', 'k', 'j', 'u', 'n', 'k'})));
        const auto reply = read_until_closed(connection, 3s);
        auto expected = std::vector<std::uint8_t>{kParamExchange};
        const auto refusal = iperf3::encode_server_error(iperf3::error_code::receive_parameters);
        expected.insert(expected.end(), refusal.begin(), refusal.end());
        CHECK(reply == expected);
    }
    {
        INFO("parameters over 8 KiB are refused before they are read");
        raw_connection connection("127.0.0.1", server.port());
        const std::uint32_t length = iperf3::kMaxParametersJson + 1;
        REQUIRE(connection.send(with(
            cookie('c'), {static_cast<std::uint8_t>(length >> 24), static_cast<std::uint8_t>(length >> 16),
                          static_cast<std::uint8_t>(length >> 8), static_cast<std::uint8_t>(length)})));
        const auto reply = read_until_closed(connection, 3s);
        REQUIRE(reply.size() == 10);
        CHECK(reply[1] == iperf3::byte_of(iperf3::state::server_error));
        CHECK(reply[5] == static_cast<std::uint8_t>(iperf3::error_code::receive_parameters));
    }
    {
        INFO("a cookie then silence ends at the handshake deadline");
        raw_connection connection("127.0.0.1", server.port());
        REQUIRE(connection.send(cookie('d')));
        const auto reply = read_until_closed(connection, 5s);
        // PARAM_EXCHANGE, then SERVER_TERMINATE when the parameters did not come within --handshake-timeout.
        CHECK(reply ==
              std::vector<std::uint8_t>{kParamExchange, iperf3::byte_of(iperf3::state::server_terminate)});
        CHECK(log_shows_within(server.process(), "timed out waiting for the test parameters"));
    }
    {
        INFO("half a cookie then silence is dropped at the handshake deadline");
        raw_connection connection("127.0.0.1", server.port());
        const auto half = cookie('e');
        REQUIRE(connection.send(std::vector<std::uint8_t>(half.begin(), half.begin() + 10)));
        const auto closed = connection.wait_closed(5s);
        CHECK(closed.has_value());
    }
    {
        INFO("three cookie characters then EOF are closed at once, not at the deadline");
        raw_connection connection("127.0.0.1", server.port());
        REQUIRE(connection.send(std::vector<std::uint8_t>{'a', 'b', 'c'}));
        connection.shutdown_sending();
        const auto closed = connection.wait_closed(3s);
        REQUIRE(closed.has_value());
        CHECK(*closed < 900ms);  // --handshake-timeout is 1 s; the close follows the FIN within a poll
    }
    server.check_recovered();
}

namespace {

// A raw iperf3 client's control connection through the parameters `params`, up to CREATE_STREAMS.
raw_connection ask_for_streams(watched_server& server, const std::vector<std::uint8_t>& session_cookie,
                               const nlohmann::json& params) {
    raw_connection control("127.0.0.1", server.port());
    REQUIRE(control.send(session_cookie));
    REQUIRE(read_exactly(control, 1, 3s) == std::vector<std::uint8_t>{kParamExchange});
    REQUIRE(control.send(iperf3::encode_json(params)));
    REQUIRE(read_exactly(control, 1, 3s) ==
            std::vector<std::uint8_t>{iperf3::byte_of(iperf3::state::create_streams)});
    return control;
}

}  // namespace

TEST_CASE(
    "an iperf3 upload by bytes whose client ends it short of its amount fails within the drain deadline",
    "[robustness][concurrent][iperf3]") {
    watched_server server({});
    const auto session_cookie = cookie('f');
    // -n 1M, one stream: the server waits for 1 MiB after TEST_END, and gets 64 KiB.
    raw_connection control = ask_for_streams(
        server, session_cookie,
        nlohmann::json{{"tcp", true}, {"time", 0}, {"num", 1'048'576}, {"parallel", 1}, {"len", 65'536}});
    raw_connection data("127.0.0.1", server.port());
    REQUIRE(data.send(session_cookie));
    REQUIRE(read_exactly(control, 2, 3s) ==
            std::vector<std::uint8_t>{iperf3::byte_of(iperf3::state::test_start),
                                      iperf3::byte_of(iperf3::state::test_running)});
    REQUIRE(data.send(std::vector<std::uint8_t>(65'536, 0x5a)));
    REQUIRE(control.send(std::vector<std::uint8_t>{iperf3::byte_of(iperf3::state::test_end)}));
    // The server gives up 5 s (kResultsTimeout) after TEST_END and says so with SERVER_TERMINATE.
    const auto reply = read_until_closed(control, 8s);
    CHECK(reply == std::vector<std::uint8_t>{iperf3::byte_of(iperf3::state::server_terminate)});
    CHECK(log_shows_within(server.process(), "65536 bytes arrived of the 1048576 the client sent"));
    server.check_recovered();
}

TEST_CASE("an iperf3 --bidir client that opens only its sending streams ends at the stream deadline",
          "[robustness][concurrent][iperf3]") {
    watched_server server({});
    const auto session_cookie = cookie('g');
    raw_connection control =
        ask_for_streams(server, session_cookie,
                        nlohmann::json{{"tcp", true}, {"time", 2}, {"parallel", 2}, {"bidirectional", true}});
    // Two of the four connections --bidir -P 2 asks for; the server's sending streams never come.
    raw_connection first("127.0.0.1", server.port());
    REQUIRE(first.send(session_cookie));
    raw_connection second("127.0.0.1", server.port());
    REQUIRE(second.send(session_cookie));
    // The data connections are due within 5 s (kStreamSetupTimeout) of CREATE_STREAMS.
    const auto reply = read_until_closed(control, 8s);
    CHECK(reply == std::vector<std::uint8_t>{iperf3::byte_of(iperf3::state::server_terminate)});
    CHECK(log_shows_within(server.process(), "not all 2 data connections arrived"));
    server.check_recovered();
}
