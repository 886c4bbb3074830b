// Per-host caps with real addresses: an IPv4 /24 (with --ipv4-host-prefix 24) and an IPv6 /64 count as one
// host, a neighbouring prefix does not. Runs in a network namespace of its own (root only; otherwise it says
// SKIP), where the addresses can be added to lo without touching the host's network.
#include <catch2/catch.hpp>

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
