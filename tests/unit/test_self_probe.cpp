// Self probes on the load connections: matching a probe to the payload byte that answers it, with exact
// values in both orders of the mark and the byte.
#include <catch2/catch.hpp>

#include "common/self_probe.hpp"

using namespace speed::latency;

TEST_CASE("a self probe whose mark arrives first completes on the read that carries its byte",
          "[self_probe]") {
    self_probe_matcher m;
    CHECK_FALSE(m.bytes_read(1000, 5));  // before any probe: nothing to time
    REQUIRE(m.idle());
    REQUIRE(m.next_number() == 0);
    m.probe_sent(100);
    CHECK_FALSE(m.idle());
    CHECK_FALSE(m.bytes_read(500, 150));  // bytes 1000..1499
    CHECK_FALSE(m.mark(0, 2000));         // byte 2000 not read yet
    CHECK_FALSE(m.bytes_read(500, 200));  // 1500..1999: still not
    auto sample = m.bytes_read(1, 270);   // byte 2000
    REQUIRE(sample);
    CHECK(sample->sent_ns == 100);
    CHECK(sample->rtt_ns == 170);
    CHECK(m.idle());
    CHECK(m.next_number() == 1);
    CHECK_FALSE(m.bytes_read(10, 300));  // completed once only
    CHECK(m.dropped() == 0);
}

TEST_CASE("a self probe whose mark arrives after its byte was read takes that read's time", "[self_probe]") {
    self_probe_matcher m;
    m.bytes_read(1000, 5);
    m.probe_sent(100);
    CHECK_FALSE(m.bytes_read(500, 150));   // 1000..1499
    CHECK_FALSE(m.bytes_read(500, 200));   // 1500..1999
    CHECK_FALSE(m.bytes_read(1000, 260));  // 2000..2999
    CHECK_FALSE(m.bytes_read(1000, 330));  // 3000..3999
    auto sample = m.mark(0, 1999);         // the last byte of the second read
    REQUIRE(sample);
    CHECK(sample->rtt_ns == 100);
    m.probe_sent(400);
    CHECK(m.next_number() == 2);
    CHECK_FALSE(m.bytes_read(10, 410));  // 4000..4009
    sample = m.mark(1, 4000);            // the first byte read since the probe
    REQUIRE(sample);
    CHECK(sample->sent_ns == 400);
    CHECK(sample->rtt_ns == 10);
    CHECK(m.dropped() == 0);
}

TEST_CASE("self probe marks that cannot be matched are dropped, never guessed", "[self_probe]") {
    self_probe_matcher m;
    m.bytes_read(1000, 5);
    m.probe_sent(100);
    CHECK_FALSE(m.mark(7, 1000));  // not the outstanding probe: ignored
    CHECK_FALSE(m.idle());
    CHECK_FALSE(m.mark(0, 999));  // a byte read before the probe was sent: impossible
    CHECK(m.idle());
    CHECK(m.dropped() == 1);
    CHECK_FALSE(m.mark(0, 1000));  // a second mark for the dropped probe: ignored

    // A probe never answered is given up after the timeout, and the next one gets the next number.
    m.probe_sent(200);
    m.expire(200);  // not older than 200
    CHECK_FALSE(m.idle());
    m.expire(201);
    CHECK(m.idle());
    CHECK(m.dropped() == 2);
    m.probe_sent(300);
    CHECK(m.next_number() == 3);
    CHECK_FALSE(m.mark(1, 5000));  // the late mark of the given-up probe
    CHECK_FALSE(m.idle());
}

TEST_CASE("a self probe read past its bounded history is dropped", "[self_probe]") {
    self_probe_matcher m;
    m.probe_sent(0);
    for (std::size_t i = 0; i < self_probe_matcher::kMaxHistory + 10; ++i) {
        CHECK_FALSE(m.bytes_read(1, static_cast<std::int64_t>(i + 1)));
    }
    // Byte kMaxHistory - 1 is the last one remembered: its read was the kMaxHistory-th, at time kMaxHistory.
    auto sample = m.mark(0, self_probe_matcher::kMaxHistory - 1);
    REQUIRE(sample);
    CHECK(sample->rtt_ns == static_cast<std::int64_t>(self_probe_matcher::kMaxHistory));
    m.probe_sent(1'000'000);
    for (std::size_t i = 0; i < self_probe_matcher::kMaxHistory + 10; ++i) {
        m.bytes_read(1, 1'000'000);
    }
    CHECK_FALSE(m.mark(1, m.read_offset() - 1));  // read, but after the history filled up
    CHECK(m.idle());
    CHECK(m.dropped() == 1);
}
