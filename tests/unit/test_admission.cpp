// Admission caps and how client addresses group into hosts.
#include <catch2/catch.hpp>

#include <array>

#include "server/admission.hpp"

using namespace speed::server;

namespace {

host_key v4(std::array<std::uint8_t, 4> address, unsigned prefix = 32) {
    admission_limits limits;
    limits.ipv4_prefix_bits = prefix;
    return make_host_key(address, limits);
}

host_key v6(std::array<std::uint8_t, 16> address, unsigned prefix = 64) {
    admission_limits limits;
    limits.ipv6_prefix_bits = prefix;
    return make_host_key(address, limits);
}

std::array<std::uint8_t, 16> doc_v6(std::uint8_t subnet, std::uint8_t host) {
    // 2001:db8:0:SUBNET::HOST
    return {0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, subnet, 0, 0, 0, 0, 0, 0, 0, host};
}

}  // namespace

TEST_CASE("IPv4 hosts: one address, or a /24 when asked", "[admission]") {
    CHECK(v4({192, 0, 2, 7}) != v4({192, 0, 2, 8}));
    CHECK(v4({192, 0, 2, 7}).to_string() == "192.0.2.7");
    CHECK(v4({192, 0, 2, 7}, 24) == v4({192, 0, 2, 200}, 24));
    CHECK(v4({192, 0, 2, 7}, 24) != v4({192, 0, 3, 7}, 24));
    CHECK(v4({192, 0, 2, 7}, 24).to_string() == "192.0.2.0/24");
    CHECK(v4({10, 255, 2, 7}, 12).to_string() == "10.240.0.0/12");
}

TEST_CASE("IPv6 hosts: one /64", "[admission]") {
    CHECK(v6(doc_v6(1, 1)) == v6(doc_v6(1, 0xff)));
    CHECK(v6(doc_v6(1, 1)) != v6(doc_v6(2, 1)));
    CHECK(v6(doc_v6(1, 1)).to_string() == "2001:db8:0:1::/64");
    CHECK(v6(doc_v6(1, 1), 128) != v6(doc_v6(1, 2), 128));
    CHECK(v6(doc_v6(1, 1), 128).to_string() == "2001:db8:0:1::1");
}

TEST_CASE("IPv4-mapped IPv6 addresses count as IPv4", "[admission]") {
    const std::array<std::uint8_t, 16> mapped{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 0, 2, 7};
    CHECK(v6(mapped) == v4({192, 0, 2, 7}));
    CHECK(v6(mapped) != v4({192, 0, 2, 8}));  // not cut to /64
    CHECK(v6(mapped).to_string() == "192.0.2.7");
}

TEST_CASE("handshake caps: global and per host, given back by the slot", "[admission]") {
    admission_limits limits;
    limits.max_handshakes = 3;
    limits.max_handshakes_per_host = 2;
    admission_control admission(limits);
    const auto a = admission.host_of(std::array<std::uint8_t, 4>{192, 0, 2, 1});
    const auto b = admission.host_of(std::array<std::uint8_t, 4>{192, 0, 2, 2});

    auto a1 = admission.try_enter(admission_control::stage::handshake, a);
    auto a2 = admission.try_enter(admission_control::stage::handshake, a);
    REQUIRE(a1.admitted());
    REQUIRE(a2.admitted());
    auto a3 = admission.try_enter(admission_control::stage::handshake, a);
    CHECK_FALSE(a3.admitted());
    CHECK_THAT(a3.refusal, Catch::Contains("192.0.2.1"));

    auto b1 = admission.try_enter(admission_control::stage::handshake, b);
    REQUIRE(b1.admitted());
    auto b2 = admission.try_enter(admission_control::stage::handshake, b);
    CHECK_FALSE(b2.admitted());  // the global cap of 3
    CHECK_THAT(b2.refusal, Catch::Contains("busy"));
    CHECK(admission.count(admission_control::stage::handshake) == 3);

    a1.granted.release();
    CHECK(admission.count(admission_control::stage::handshake, a) == 1);
    CHECK(admission.try_enter(admission_control::stage::handshake, b).admitted());
}

TEST_CASE("session caps: global and per host", "[admission]") {
    admission_limits limits;
    limits.max_sessions = 2;
    limits.max_sessions_per_host = 1;
    admission_control admission(limits);
    const auto a = admission.host_of(std::array<std::uint8_t, 4>{192, 0, 2, 1});
    const auto b = admission.host_of(std::array<std::uint8_t, 4>{192, 0, 2, 2});
    const auto c = admission.host_of(std::array<std::uint8_t, 4>{192, 0, 2, 3});
    auto first = admission.try_enter(admission_control::stage::session, a);
    REQUIRE(first.admitted());
    const auto again = admission.try_enter(admission_control::stage::session, a);
    CHECK_FALSE(again.admitted());
    CHECK_THAT(again.refusal, Catch::Contains("already runs 1 test from 192.0.2.1"));
    auto second = admission.try_enter(admission_control::stage::session, b);
    REQUIRE(second.admitted());
    const auto third = admission.try_enter(admission_control::stage::session, c);
    CHECK_FALSE(third.admitted());
    CHECK_THAT(third.refusal, Catch::Contains("2 tests running"));
    // Handshakes are counted apart from sessions.
    CHECK(admission.try_enter(admission_control::stage::handshake, a).admitted());
}

TEST_CASE("slots move, and no host state outlives its slots", "[admission]") {
    admission_control admission(admission_limits{});
    const auto a = admission.host_of(std::array<std::uint8_t, 4>{192, 0, 2, 1});
    {
        auto decision = admission.try_enter(admission_control::stage::session, a);
        admission_control::slot moved = std::move(decision.granted);
        CHECK_FALSE(decision.granted.held());
        CHECK(moved.held());
        admission_control::slot assigned;
        assigned = std::move(moved);
        CHECK(admission.count(admission_control::stage::session, a) == 1);
        CHECK(admission.tracked_hosts() == 1);
    }
    CHECK(admission.count(admission_control::stage::session) == 0);
    CHECK(admission.tracked_hosts() == 0);
}
