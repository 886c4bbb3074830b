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

namespace {

std::array<std::uint8_t, 16> v6_in(std::uint8_t byte5, std::uint8_t byte6, std::uint8_t byte7) {
    // 2001:db8:00BB:CCDD::1 with BB = byte5, CC = byte6, DD = byte7
    return {0x20, 0x01, 0x0d, 0xb8, 0, byte5, byte6, byte7, 0, 0, 0, 0, 0, 0, 0, 1};
}

// Opens sessions from `host` until refused; returns how many were admitted (kept in `held`).
std::size_t fill_sessions(admission_control& admission, const host_key& host,
                          std::vector<admission_control::slot>& held) {
    std::size_t admitted = 0;
    for (int i = 0; i < 100; ++i) {
        auto decision = admission.try_enter(admission_control::stage::session, host);
        if (!decision.admitted()) {
            break;
        }
        held.push_back(std::move(decision.granted));
        ++admitted;
    }
    return admitted;
}

// Handshakes from 20 hosts of 203.0.113.0/24 (none with a session); returns how many were admitted.
std::size_t flood_handshakes(admission_control& admission, std::vector<admission_control::slot>& held) {
    std::size_t admitted = 0;
    for (std::uint8_t last = 1; last <= 20; ++last) {
        auto decision =
            admission.try_enter(admission_control::stage::handshake,
                                admission.host_of(std::array<std::uint8_t, 4>{203, 0, 113, last}));
        if (decision.admitted()) {
            held.push_back(std::move(decision.granted));
            ++admitted;
        }
    }
    return admitted;
}

}  // namespace

TEST_CASE("6to4 addresses count as the IPv4 host they embed", "[admission]") {
    // 2002:c000:0207:SUBNET::HOST is 192.0.2.7's 6to4 network.
    const std::array<std::uint8_t, 16> a{0x20, 0x02, 0xc0, 0x00, 0x02, 0x07, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1};
    const std::array<std::uint8_t, 16> b{0x20, 0x02, 0xc0, 0x00, 0x02, 0x07, 0xff, 0xff,
                                         0,    0,    0,    0,    0,    0,    0,    9};
    CHECK(v6(a) == v4({192, 0, 2, 7}));
    CHECK(v6(b) == v4({192, 0, 2, 7}));
    CHECK(v6(a).to_string() == "192.0.2.7");
}

TEST_CASE("networks with aggregate caps: IPv4 /24, IPv6 /56 and /48", "[admission]") {
    const auto four = networks_of(v4({192, 0, 2, 7}));
    REQUIRE(four.count == 1);
    CHECK(four.keys[0].to_string() == "192.0.2.0/24");
    const auto six = networks_of(v6(v6_in(0x12, 0x34, 0x56)));
    REQUIRE(six.count == 2);
    CHECK(six.keys[0].to_string() == "2001:db8:12:3400::/56");
    CHECK(six.keys[1].to_string() == "2001:db8:12::/48");
    // A host prefix wider than the network leaves nothing to aggregate.
    CHECK(networks_of(v4({192, 0, 2, 7}, 16)).count == 0);
}

TEST_CASE("sessions per IPv4 /24 are capped across its hosts", "[admission]") {
    admission_limits limits;
    limits.max_sessions_per_host = 2;
    limits.max_sessions_per_ipv4_24 = 5;
    admission_control admission(limits);
    std::vector<admission_control::slot> held;
    CHECK(fill_sessions(admission, admission.host_of(std::array<std::uint8_t, 4>{192, 0, 2, 1}), held) == 2);
    CHECK(fill_sessions(admission, admission.host_of(std::array<std::uint8_t, 4>{192, 0, 2, 2}), held) == 2);
    const auto third = admission.host_of(std::array<std::uint8_t, 4>{192, 0, 2, 3});
    auto fifth = admission.try_enter(admission_control::stage::session, third);
    CHECK(fifth.admitted());
    const auto refused = admission.try_enter(admission_control::stage::session, third);
    CHECK_FALSE(refused.admitted());
    CHECK_THAT(refused.refusal, Catch::Contains("already runs 5 tests from 192.0.2.0/24"));
    // The next /24 is another network.
    CHECK(admission
              .try_enter(admission_control::stage::session,
                         admission.host_of(std::array<std::uint8_t, 4>{192, 0, 3, 1}))
              .admitted());
}

TEST_CASE("sessions per IPv6 /56 and per /48 are capped across their /64s", "[admission]") {
    admission_limits limits;
    limits.max_sessions_per_host = 2;
    limits.max_sessions_per_ipv6_56 = 3;
    limits.max_sessions_per_ipv6_48 = 5;
    admission_control admission(limits);
    std::vector<admission_control::slot> held;
    // Two /64s of one /56 (2001:db8:1:100::/56): 3 sessions in all.
    CHECK(fill_sessions(admission, admission.host_of(v6_in(1, 1, 0)), held) == 2);
    auto third = admission.try_enter(admission_control::stage::session, admission.host_of(v6_in(1, 1, 0xff)));
    REQUIRE(third.admitted());
    held.push_back(std::move(third.granted));
    const auto full_56 =
        admission.try_enter(admission_control::stage::session, admission.host_of(v6_in(1, 1, 2)));
    CHECK_FALSE(full_56.admitted());
    CHECK_THAT(full_56.refusal, Catch::Contains("from 2001:db8:1:100::/56"));
    // Another /56 of the same /48 takes the /48 to its cap of 5.
    CHECK(fill_sessions(admission, admission.host_of(v6_in(1, 2, 0)), held) == 2);
    const auto full_48 =
        admission.try_enter(admission_control::stage::session, admission.host_of(v6_in(1, 3, 0)));
    CHECK_FALSE(full_48.admitted());
    CHECK_THAT(full_48.refusal, Catch::Contains("from 2001:db8:1::/48"));
    // Another /48 is free.
    CHECK(
        admission.try_enter(admission_control::stage::session, admission.host_of(v6_in(2, 0, 0))).admitted());
    held.clear();
    CHECK(admission.tracked_networks() == 0);
    CHECK(admission.tracked_hosts() == 0);
}

TEST_CASE("handshakes per network are capped across its hosts", "[admission]") {
    admission_limits limits;
    limits.max_handshakes_per_host = 2;
    limits.max_handshakes_per_network = 3;
    admission_control admission(limits);
    std::vector<admission_control::slot> held;
    for (const std::uint8_t last : std::array<std::uint8_t, 3>{1, 1, 2}) {
        auto decision = admission.try_enter(admission_control::stage::handshake,
                                            admission.host_of(std::array<std::uint8_t, 4>{192, 0, 2, last}));
        REQUIRE(decision.admitted());
        held.push_back(std::move(decision.granted));
    }
    const auto refused = admission.try_enter(admission_control::stage::handshake,
                                             admission.host_of(std::array<std::uint8_t, 4>{192, 0, 2, 3}));
    CHECK_FALSE(refused.admitted());
    CHECK_THAT(refused.refusal, Catch::Contains("192.0.2.0/24"));
}

TEST_CASE("part of the handshake pool is kept for hosts with a live session", "[admission]") {
    admission_limits limits;
    limits.max_handshakes = 8;
    limits.max_handshakes_per_host = 8;
    limits.max_handshakes_per_network = 8;
    admission_control admission(limits);
    CHECK(limits.handshakes_reserved() == 2);  // a quarter by default
    const auto client = admission.host_of(std::array<std::uint8_t, 4>{198, 51, 100, 1});
    auto session = admission.try_enter(admission_control::stage::session, client);
    REQUIRE(session.admitted());
    // A flood from hosts without a session takes all but the reserved handshakes.
    std::vector<admission_control::slot> flood;
    CHECK(flood_handshakes(admission, flood) == 6);
    // The session's host still gets its data and probe connections in.
    auto data = admission.try_enter(admission_control::stage::handshake, client);
    auto probe = admission.try_enter(admission_control::stage::handshake, client);
    CHECK(data.admitted());
    CHECK(probe.admitted());
    CHECK_FALSE(admission.try_enter(admission_control::stage::handshake, client).admitted());  // all 8 used

    limits.reserved_handshakes = 0;
    admission_control unreserved(limits);
    std::vector<admission_control::slot> held;
    CHECK(flood_handshakes(unreserved, held) == 8);
}

TEST_CASE("HTTP connections per host: capped by host, given back once on close", "[admission]") {
    connections_per_host counts(2);
    const auto a = v4({192, 0, 2, 1});
    const auto b = v4({192, 0, 2, 2});
    const auto in_a_64 = v6(doc_v6(1, 1));
    const auto same_64 = v6(doc_v6(1, 0xff));

    CHECK(counts.allows(a));
    counts.opened(1, a);
    CHECK(counts.allows(a));
    counts.opened(2, a);
    CHECK_FALSE(counts.allows(a));
    CHECK(counts.count(a) == 2);
    // Another host is not held by the first's connections.
    CHECK(counts.allows(b));
    counts.opened(3, b);
    CHECK(counts.count(b) == 1);
    // Addresses of one IPv6 /64 are one host.
    counts.opened(4, in_a_64);
    counts.opened(5, same_64);
    CHECK_FALSE(counts.allows(same_64));
    CHECK(counts.count(in_a_64) == 2);
    CHECK(counts.open() == 5);
    CHECK(counts.tracked_hosts() == 3);

    // An id reported open twice counts once; a close reported twice, or of an id never opened, frees nothing
    // of anyone else's.
    counts.opened(3, b);
    CHECK(counts.count(b) == 1);
    counts.closed(1);
    counts.closed(1);
    counts.closed(99);
    CHECK(counts.count(a) == 1);
    CHECK(counts.allows(a));
    CHECK(counts.open() == 4);

    for (std::uint64_t id = 2; id <= 5; ++id) {
        counts.closed(id);
    }
    CHECK(counts.open() == 0);
    CHECK(counts.tracked_hosts() == 0);
    CHECK(counts.count(a) == 0);
}
