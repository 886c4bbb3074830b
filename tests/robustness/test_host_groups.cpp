// Per-host caps with real addresses: an IPv4 /24 (with --ipv4-host-prefix 24) and an IPv6 /64 count as one
// host, a neighbouring prefix does not. Runs in a network namespace of its own (root only; otherwise it says
// SKIP), where the addresses can be added to lo without touching the host's network.
#include <catch2/catch.hpp>

#include <poll.h>
#include <sys/socket.h>

#include <string>

#include "tests/robustness/abuse.hpp"

using namespace speed;
using namespace speed::testing;

namespace {

// Opens a session from `source`; true when WELCOMEd, false when told the server is busy (with `refusal`).
bool session_from(const std::string& source, std::uint16_t port, const std::string& server,
                  std::vector<raw_connection>& held, std::string& refusal) {
    raw_connection connection(source, port, server);
    REQUIRE(connection.connected());
    connection.send(control_hello());
    const auto reply = connection.read_frame();
    REQUIRE(reply.status == proto::decode_status::ok);
    if (const auto* error = std::get_if<proto::error>(&reply.msg)) {
        CHECK(error->code == proto::error_code::server_busy);
        refusal = error->message;
        return false;
    }
    held.push_back(std::move(connection));
    return true;
}

// Sends a GET of the page on `connection` and returns the response's first bytes (empty when the server
// closed it unanswered or nothing came within 5 s).
std::string page_answer(raw_connection& connection) {
    const std::string request = "GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    if (!connection.send(std::vector<std::uint8_t>(request.begin(), request.end()))) {
        return {};
    }
    pollfd ready{connection.fd(), POLLIN, 0};
    if (::poll(&ready, 1, 5000) != 1) {
        return {};
    }
    char head[16] = {};
    const auto got = ::recv(connection.fd(), head, sizeof head, 0);
    return got > 0 ? std::string(head, static_cast<std::size_t>(got)) : std::string();
}

}  // namespace

TEST_CASE("IPv4: a /24 is one host when asked, its neighbour another", "[robustness][concurrent][netns]") {
    if (!can_run_network_tests()) {
        return;
    }
    private_network network({"10.9.9.9", "10.1.2.1", "10.1.2.2", "10.1.2.3", "10.1.3.1"});
    server_process server(
        server_launch{{"--ipv4-host-prefix", "24", "--max-sessions-per-host", "2"}, "10.9.9.9", {}});
    std::vector<raw_connection> held;
    std::string refusal;
    CHECK(session_from("10.1.2.1", server.port(), "10.9.9.9", held, refusal));
    CHECK(session_from("10.1.2.2", server.port(), "10.9.9.9", held, refusal));
    CHECK_FALSE(session_from("10.1.2.3", server.port(), "10.9.9.9", held, refusal));
    CHECK_THAT(refusal, Catch::Contains("from 10.1.2.0/24"));
    CHECK(session_from("10.1.3.1", server.port(), "10.9.9.9", held, refusal));
    CHECK(legitimate_test_passes(server.port(), "10.9.9.9"));
}

TEST_CASE("IPv6: a /64 is one host, its neighbour another", "[robustness][concurrent][netns]") {
    if (!can_run_network_tests()) {
        return;
    }
    private_network network(
        {"2001:db8:ff::1", "2001:db8:1::1", "2001:db8:1::2", "2001:db8:1::3", "2001:db8:2::1"});
    server_process server(server_launch{{"--max-sessions-per-host", "2"}, "2001:db8:ff::1", {}});
    std::vector<raw_connection> held;
    std::string refusal;
    CHECK(session_from("2001:db8:1::1", server.port(), "2001:db8:ff::1", held, refusal));
    CHECK(session_from("2001:db8:1::2", server.port(), "2001:db8:ff::1", held, refusal));
    CHECK_FALSE(session_from("2001:db8:1::3", server.port(), "2001:db8:ff::1", held, refusal));
    CHECK_THAT(refusal, Catch::Contains("from 2001:db8:1::/64"));
    CHECK(session_from("2001:db8:2::1", server.port(), "2001:db8:ff::1", held, refusal));
    CHECK(legitimate_test_passes(server.port(), "2001:db8:ff::1"));
}

TEST_CASE("IPv6: a /64's browser test connections count as one host's and its neighbour's as another's",
          "[robustness][netns]") {
    if (!can_run_network_tests()) {
        return;
    }
    private_network network({"2001:db8:ff::1", "2001:db8:1::1", "2001:db8:1::2", "2001:db8:2::1"});
    server_process server(server_launch{
        {"--http-port", "0", "--http-max-connections-per-host", "1", "--http-request-timeout", "60"},
        "2001:db8:ff::1",
        {}});
    REQUIRE(server.http_port() != 0);
    raw_connection held("2001:db8:1::1", server.http_port(), "2001:db8:ff::1");
    REQUIRE(held.connected());
    // Another address of the same /64 is closed at accept, unanswered (it is accepted after `held`: the
    // server takes connections in the order they were made).
    raw_connection same_64("2001:db8:1::2", server.http_port(), "2001:db8:ff::1");
    CHECK(page_answer(same_64).empty());
    // The neighbouring /64 is another host: served.
    raw_connection neighbour("2001:db8:2::1", server.http_port(), "2001:db8:ff::1");
    CHECK(page_answer(neighbour).rfind("HTTP/1.1 200", 0) == 0);
}
