// Caps that keep one client (or one network) from holding a public server: sessions end (echo requests count
// as tests, --max-session-time), trickle tests are refused (--min-bitrate), aggregate caps per IPv4 /24, part
// of the handshake pool kept for live sessions, the byte cap holds for clients that never send STOP, data and
// probe connections only from the session's address; and the smaller hardening items that can be reached
// from the wire (congestion names, log escaping, root).
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include <atomic>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/integration/client_json.hpp"
#include "tests/robustness/abuse.hpp"

using namespace speed;
using namespace speed::testing;

namespace {

// The next frame within `limit`, which must be there.
proto::message next_frame(raw_connection& connection, std::chrono::milliseconds limit = 3s) {
    const auto frame = connection.read_frame(limit);
    REQUIRE(frame.status == proto::decode_status::ok);
    return frame.msg;
}

// A control session from `source`: its WELCOME.
proto::welcome session_from(raw_connection& control) {
    REQUIRE(control.connected());
    return open_session(control);
}

proto::hello data_hello(const proto::welcome& welcome, std::uint32_t test_id) {
    proto::hello hello;
    hello.kind = proto::connection_kind::data;
    hello.token = welcome.token;
    hello.test_id = test_id;
    return hello;
}

// Whether a session from `source` is WELCOMEd (kept open in `held`); otherwise the refusal's text.
bool try_session(const std::string& source, std::uint16_t port, std::vector<raw_connection>& held,
                 std::string& refusal) {
    raw_connection connection(source, port);
    REQUIRE(connection.connected());
    REQUIRE(connection.send(control_hello()));
    const auto reply = next_frame(connection);
    if (const auto* error = std::get_if<proto::error>(&reply)) {
        CHECK(error->code == proto::error_code::server_busy);
        refusal = error->message;
        return false;
    }
    REQUIRE(std::holds_alternative<proto::welcome>(reply));
    held.push_back(std::move(connection));
    return true;
}

// Reads a data connection until the server closes or resets it (or `limit` passes); the payload bytes.
std::uint64_t count_until_closed(int fd, std::chrono::milliseconds limit) {
    std::vector<std::uint8_t> buffer(1 << 20);
    timeval timeout{0, 200'000};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    const auto deadline = steady_clock::now() + limit;
    std::uint64_t total = 0;
    while (steady_clock::now() < deadline) {
        const ssize_t n = ::recv(fd, buffer.data(), buffer.size(), 0);
        if (n > 0) {
            total += static_cast<std::uint64_t>(n);
        } else if (n == 0 || errno != EAGAIN) {
            break;
        }
    }
    return total;
}

std::string first_line_of(const std::string& path) {
    std::ifstream file(path);
    std::string line;
    std::getline(file, line);
    return line;
}

}  // namespace

TEST_CASE("UDP echo requests count as tests: they cannot keep a session open",
          "[robustness][concurrent][caps]") {
    server_process server({"--max-tests-per-session", "3", "--idle-timeout", "2"});
    raw_connection control(attacker_address(900), server.port());
    session_from(control);
    // One echo request every 0.5 s, well within the idle timeout: the old server answered each forever.
    std::optional<proto::error> ended;
    int answered = 0;
    for (int i = 0; i < 8 && !ended; ++i) {
        REQUIRE(control.send(proto::udp_echo_request{}));
        const auto reply = next_frame(control);
        if (const auto* error = std::get_if<proto::error>(&reply)) {
            ended = *error;
        } else {
            REQUIRE(std::holds_alternative<proto::udp_setup>(reply));
            ++answered;
            std::this_thread::sleep_for(500ms);
        }
    }
    REQUIRE(ended);
    CHECK(answered == 3);
    CHECK(ended->code == proto::error_code::limit_exceeded);
    CHECK_THAT(ended->message, Catch::Contains("at most 3 tests per session"));
    CHECK(control.wait_closed(3s));
}

TEST_CASE("a session is cut at --max-session-time whatever it does", "[robustness][concurrent][caps]") {
    server_process server(
        {"--max-session-time", "2", "--idle-timeout", "30", "--max-tests-per-session", "100"});
    raw_connection control(attacker_address(901), server.port());
    const auto started = steady_clock::now();
    session_from(control);
    std::optional<proto::error> ended;
    for (int i = 0; i < 20 && !ended; ++i) {
        REQUIRE(control.send(proto::udp_echo_request{}));
        const auto reply = next_frame(control);
        if (const auto* error = std::get_if<proto::error>(&reply)) {
            ended = *error;
        } else {
            std::this_thread::sleep_for(400ms);  // a new echo request before each idle deadline
        }
    }
    const auto lasted = std::chrono::duration_cast<std::chrono::milliseconds>(steady_clock::now() - started);
    REQUIRE(ended);
    CHECK(ended->code == proto::error_code::timeout);
    CHECK_THAT(ended->message, Catch::Contains("--max-session-time"));
    // The cap is 2 s; the session had answered echo requests until then (at most 20 x 0.4 s = 8 s of them).
    INFO("session lasted " << lasted.count() << " ms");
    CHECK(lasted >= 1500ms);
    CHECK(lasted < 6s);
}

TEST_CASE("speedcli -b below the server's minimum bitrate is refused with exit 4",
          "[robustness][concurrent][caps]") {
    server_process server;
    const auto run = run_client(
        {"127.0.0.1", "-p", std::to_string(server.port()), "-t", "0.5", "-b", "50k", "--pings", "0"});
    CHECK(run.process.exit_code == 4);
    CHECK_THAT(run.process.err, Catch::Contains("below this server's minimum of 100.0 kbit/s"));
}

TEST_CASE("sessions per IPv4 /24 are capped across its addresses", "[robustness][concurrent][caps]") {
    server_process server({"--max-sessions-per-host", "1", "--max-sessions-per-ipv4-24", "3"});
    std::vector<raw_connection> held;
    std::string refusal;
    CHECK(try_session("127.0.5.1", server.port(), held, refusal));
    CHECK(try_session("127.0.5.2", server.port(), held, refusal));
    CHECK(try_session("127.0.5.3", server.port(), held, refusal));
    CHECK_FALSE(try_session("127.0.5.4", server.port(), held, refusal));
    CHECK_THAT(refusal, Catch::Contains("already runs 3 tests from 127.0.5.0/24"));
    CHECK(try_session("127.0.6.1", server.port(), held, refusal));
}

TEST_CASE("a handshake flood from other hosts does not shut out a live session's probe connection",
          "[robustness][concurrent][caps]") {
    server_process server({"--max-handshakes", "8", "--max-handshakes-per-host", "8",
                           "--max-handshakes-per-network", "100", "--handshake-timeout", "10"});
    raw_connection control("127.0.8.1", server.port());
    const auto welcome = session_from(control);
    // Connections that never send their HELLO, from hosts without a session: they hold handshake places.
    std::vector<raw_connection> flood;
    for (unsigned i = 0; i < 12; ++i) {
        flood.emplace_back(attacker_address(920 + i), server.port());
    }
    std::size_t refused = 0;
    for (auto& connection : flood) {
        if (error_reply(connection, 300ms) == proto::error_code::server_busy) {
            ++refused;
        }
    }
    CHECK(refused == 6);  // 8 handshakes, a quarter of them kept for hosts with a session
    raw_connection probe("127.0.8.1", server.port());
    proto::hello hello;
    hello.kind = proto::connection_kind::probe;
    hello.token = welcome.token;
    REQUIRE(probe.send(hello));
    REQUIRE(probe.send(proto::ping{7, 1234}));
    const auto reply = next_frame(probe);
    REQUIRE(std::holds_alternative<proto::pong>(reply));
    CHECK(std::get<proto::pong>(reply).sequence == 7);
}

TEST_CASE("data and probe connections from another address than the session's are refused",
          "[robustness][concurrent][caps]") {
    server_process server;
    raw_connection control("127.0.9.1", server.port());
    const auto welcome = session_from(control);
    proto::test_request request;
    request.dir = proto::direction::download;
    request.duration_ms = 500;
    REQUIRE(control.send(request));
    const auto accept = next_frame(control);
    REQUIRE(std::holds_alternative<proto::test_accept>(accept));
    const auto test_id = std::get<proto::test_accept>(accept).test_id;

    raw_connection foreign_data("127.0.9.2", server.port());
    REQUIRE(foreign_data.send(data_hello(welcome, test_id)));
    CHECK(error_reply(foreign_data) == proto::error_code::unknown_session);
    // The test did not start with the foreign stream.
    CHECK(control.read_frame(500ms).status == proto::decode_status::need_more);

    raw_connection foreign_probe("127.0.9.2", server.port());
    proto::hello probe_hello;
    probe_hello.kind = proto::connection_kind::probe;
    probe_hello.token = welcome.token;
    REQUIRE(foreign_probe.send(probe_hello));
    CHECK(error_reply(foreign_probe) == proto::error_code::unknown_session);

    // The same token from the session's own address is taken.
    raw_connection own_data("127.0.9.1", server.port());
    REQUIRE(own_data.send(data_hello(welcome, test_id)));
    CHECK(std::holds_alternative<proto::streams_ready>(next_frame(control)));
    control.close();
    own_data.close();
    server.stop();
    CHECK_THAT(server.log(), Catch::Contains("data connection from 127.0.9.2") &&
                                 Catch::Contains("2 data or probe connections from another address refused"));
}

TEST_CASE("the byte cap (--max-bytes) holds within 1.25x for a client that never sends STOP",
          "[robustness][concurrent][caps]") {
    constexpr std::uint64_t kMaxBytes = 8 * 1024 * 1024;
    server_process server({"--max-bytes", "8M"});
    for (const std::uint32_t duration_ms : {100U, 2'000U}) {
        raw_connection control(attacker_address(940 + duration_ms / 100), server.port());
        const auto welcome = session_from(control);
        proto::test_request request;
        request.dir = proto::direction::download;
        request.duration_ms = duration_ms;
        REQUIRE(control.send(request));
        const auto accept = next_frame(control);
        REQUIRE(std::holds_alternative<proto::test_accept>(accept));
        raw_connection data(attacker_address(940 + duration_ms / 100), server.port());
        REQUIRE(data.send(data_hello(welcome, std::get<proto::test_accept>(accept).test_id)));
        REQUIRE(std::holds_alternative<proto::streams_ready>(next_frame(control)));
        // Read everything the server sends until it gives up on the STOP that never comes.
        const std::uint64_t received = count_until_closed(data.fd(), 20s);
        WARN(duration_ms << " ms test: received " << received << " bytes, cap " << kMaxBytes);
        CHECK(received <= kMaxBytes * 5 / 4);
        CHECK(received >= kMaxBytes / 2);  // it did send: the client's window got its data
        const auto reply = control.read_frame(5s);
        REQUIRE(reply.status == proto::decode_status::ok);
        REQUIRE(std::holds_alternative<proto::error>(reply.msg));
        CHECK_THAT(std::get<proto::error>(reply.msg).message, Catch::Contains("STOP"));
    }
}

TEST_CASE("a congestion control the kernel does not allow is refused as unsupported",
          "[robustness][concurrent][caps]") {
    // A name the kernel has but does not allow unprivileged processes: as root, the old server set it.
    std::istringstream available(first_line_of("/proc/sys/net/ipv4/tcp_available_congestion_control"));
    const std::string allowed =
        " " + first_line_of("/proc/sys/net/ipv4/tcp_allowed_congestion_control") + " ";
    std::string name;
    std::string candidate;
    while (available >> candidate) {
        if (allowed.find(" " + candidate + " ") == std::string::npos) {
            name = candidate;
        }
    }
    if (name.empty()) {
        WARN("every available congestion control is allowed here; using a name the kernel does not have");
        name = "nosuchcc";
    }
    server_process server;
    raw_connection control(attacker_address(960), server.port());
    session_from(control);
    proto::test_request request;
    request.dir = proto::direction::download;
    request.duration_ms = 500;
    request.congestion = name;
    REQUIRE(control.send(request));
    const auto reply = next_frame(control);
    REQUIRE(std::holds_alternative<proto::error>(reply));
    CHECK(std::get<proto::error>(reply).code == proto::error_code::unsupported);
    CHECK_THAT(std::get<proto::error>(reply).message, Catch::Contains("'" + name + "' is not available"));
}

TEST_CASE("peer-chosen text is escaped in the server's log", "[robustness][concurrent][caps]") {
    server_process server;
    {
        raw_connection control(attacker_address(961), server.port());
        proto::hello hello;
        hello.software = "evil\x1b[31m\n2026-01-01T00:00:00.000 info forged";
        REQUIRE(control.send(hello));
        REQUIRE(std::holds_alternative<proto::welcome>(next_frame(control)));
        REQUIRE(control.send(proto::error{proto::error_code::internal, "bye\r\nforged line"}));
        control.wait_closed(3s);
    }
    server.stop();
    const std::string log = server.log();
    CHECK_THAT(log, Catch::Contains("evil\\x1b[31m\\x0a2026-01-01T00:00:00.000 info forged") &&
                        Catch::Contains("bye\\x0d\\x0aforged line"));
    CHECK_THAT(log,
               !Catch::Contains("\n2026-01-01T00:00:00.000 info forged") && !Catch::Contains("\x1b[31m"));
}

TEST_CASE("speedsrv refuses to run as root without --allow-root", "[robustness][concurrent][caps]") {
    if (::geteuid() != 0) {
        WARN("not root: nothing to refuse");
        return;
    }
    const auto refused = run_process({speedsrv_path(), "--bind", "127.0.0.1", "--port", "0"}, 5s);
    CHECK(refused.exit_code == 1);
    CHECK_THAT(refused.err, Catch::Contains("refusing to run as root") && Catch::Contains("--allow-root"));
    server_process allowed;  // with --allow-root (tests/support adds it for root)
    CHECK(allowed.running());
}
