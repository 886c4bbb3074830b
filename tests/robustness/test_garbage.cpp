// Random garbage on hundreds of connections at once: each is closed within the handshake deadline, a
// legitimate client completes its test meanwhile, and the server's descriptors and memory come back.
#include <catch2/catch.hpp>

#include <random>
#include <thread>

#include "tests/robustness/abuse.hpp"

using namespace speed;
using namespace speed::testing;

namespace {

constexpr unsigned kConnections = 300;
constexpr unsigned kHosts = 20;  // 15 connections each: under the default 16 per host in handshake
constexpr std::uint32_t kSeed = 20261122;

std::vector<std::uint8_t> random_bytes(std::mt19937& random, std::size_t length) {
    std::vector<std::uint8_t> bytes(length);
    for (auto& byte : bytes) {
        byte = static_cast<std::uint8_t>(random());
    }
    return bytes;
}

// One of: pure garbage; a control HELLO then garbage (a session that receives junk); a data or probe HELLO
// with a made-up token then garbage; a valid frame header with a random type and length then garbage.
std::vector<std::uint8_t> garbage_for(unsigned index, std::mt19937& random) {
    const std::size_t length = 1 + random() % 2048;
    std::vector<std::uint8_t> bytes;
    switch (index % 4) {
        case 0:
            break;
        case 1:
            bytes = control_hello();
            break;
        case 2: {
            proto::hello hello;
            hello.kind = index % 8 == 2 ? proto::connection_kind::data : proto::connection_kind::probe;
            for (auto& b : hello.token) {
                b = static_cast<std::uint8_t>(random());
            }
            bytes = proto::encode(hello);
            break;
        }
        case 3:
            bytes = raw_frame(static_cast<std::uint8_t>(random()), static_cast<std::uint32_t>(random()));
            break;
    }
    const auto junk = random_bytes(random, length);
    bytes.insert(bytes.end(), junk.begin(), junk.end());
    return bytes;
}

}  // namespace

TEST_CASE("random garbage on 300 connections at once", "[robustness]") {
    watched_server server({"--handshake-timeout", "2", "--idle-timeout", "2"});
    INFO("seed " << kSeed);
    std::mt19937 random(kSeed);
    std::vector<raw_connection> connections;
    connections.reserve(kConnections);
    for (unsigned i = 0; i < kConnections; ++i) {
        connections.emplace_back(attacker_address(100 + i % kHosts), server.port());
        REQUIRE(connections.back().connected());
    }
    const auto sent_at = steady_clock::now();
    for (unsigned i = 0; i < kConnections; ++i) {
        connections[i].send(garbage_for(i, random));
    }
    // A legitimate client from its own address while the garbage is being dealt with.
    CHECK(legitimate_test_passes(server.port()));

    // Every connection ends by the handshake (or idle) deadline of 2 s, plus slack for a loaded machine.
    const auto deadline = sent_at + 6s;
    unsigned still_open = 0;
    for (auto& connection : connections) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(deadline - steady_clock::now());
        if (!connection.wait_closed(std::max(left, std::chrono::milliseconds(0)))) {
            ++still_open;
        }
    }
    CHECK(still_open == 0);
    connections.clear();
    server.check_recovered();

    // The log says what happened without one line per bad connection: a burst, then counts. The next bad
    // connection after the flood (the bucket has refilled meanwhile) reports how many lines were held back.
    raw_connection late(attacker_address(99), server.port());
    late.send(raw_frame(0x7f, 0));
    REQUIRE(late.wait_closed(3s));
    std::this_thread::sleep_for(100ms);
    const std::string log = server.process().log();
    std::size_t handshake_lines = 0;
    for (std::size_t at = log.find("during handshake"); at != std::string::npos;
         at = log.find("during handshake", at + 1)) {
        ++handshake_lines;
    }
    CHECK(handshake_lines >= 20);
    CHECK(handshake_lines < 100);
    CHECK_THAT(log, Catch::Contains("similar messages suppressed"));
}
