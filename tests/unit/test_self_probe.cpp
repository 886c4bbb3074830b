// Self probes on the load connections: matching a probe to the payload byte that answers it, with exact
// values in both orders of the mark and the byte.
#include <catch2/catch.hpp>

#include "common/self_probe.hpp"

using namespace speed::latency;

TEST_CASE("a self probe whose mark arrives first completes on the read that carries its byte",
          "[self_probe]") {
    self_probe_matcher m;
    CHECK(m.bytes_read(1000, 5).empty());  // before any probe: nothing to time
    REQUIRE(m.can_send());
    REQUIRE(m.next_number() == 0);
    m.probe_sent(100);
    CHECK(m.in_flight() == 1);
    CHECK(m.bytes_read(500, 150).empty());      // bytes 1000..1499
    CHECK_FALSE(m.mark(0, 2000));               // byte 2000 not read yet
    CHECK(m.bytes_read(500, 200).empty());      // 1500..1999: still not
    const auto samples = m.bytes_read(1, 270);  // byte 2000
    REQUIRE(samples.size() == 1);
    CHECK(samples[0].sent_ns == 100);
    CHECK(samples[0].rtt_ns == 170);
    CHECK(m.in_flight() == 0);
    CHECK(m.next_number() == 1);
    CHECK(m.bytes_read(10, 300).empty());  // completed once only
    CHECK(m.dropped() == 0);
}

TEST_CASE("a self probe whose mark arrives after its byte was read takes that read's time", "[self_probe]") {
    self_probe_matcher m;
    m.bytes_read(1000, 5);
    m.probe_sent(100);
    CHECK(m.bytes_read(500, 150).empty());   // 1000..1499
    CHECK(m.bytes_read(500, 200).empty());   // 1500..1999
    CHECK(m.bytes_read(1000, 260).empty());  // 2000..2999
    CHECK(m.bytes_read(1000, 330).empty());  // 3000..3999
    auto sample = m.mark(0, 1999);           // the last byte of the second read
    REQUIRE(sample);
    CHECK(sample->rtt_ns == 100);
    m.probe_sent(400);
    CHECK(m.next_number() == 2);
    CHECK(m.bytes_read(10, 410).empty());  // 4000..4009
    sample = m.mark(1, 4000);              // the first byte read since the probe
    REQUIRE(sample);
    CHECK(sample->sent_ns == 400);
    CHECK(sample->rtt_ns == 10);
    CHECK(m.dropped() == 0);
}

TEST_CASE("several self probes in flight on one connection, marks early and late", "[self_probe]") {
    self_probe_matcher m;
    m.probe_sent(0);                       // probe 0: 0 bytes read so far
    CHECK(m.bytes_read(100, 10).empty());  // 0..99
    m.probe_sent(20);                      // probe 1: 100 read
    CHECK(m.bytes_read(100, 30).empty());  // 100..199
    m.probe_sent(40);                      // probe 2: 200 read
    CHECK_FALSE(m.mark(1, 350));           // early: byte 350 is not read yet
    CHECK(m.bytes_read(100, 50).empty());  // 200..299
    auto late = m.mark(0, 150);            // late: byte 150 was read at 30
    REQUIRE(late);
    CHECK(late->sent_ns == 0);
    CHECK(late->rtt_ns == 30);
    CHECK_FALSE(m.mark(2, 360));              // early too; the same read completes probes 1 and 2
    const auto both = m.bytes_read(100, 70);  // 300..399
    REQUIRE(both.size() == 2);
    CHECK(both[0].sent_ns == 20);
    CHECK(both[0].rtt_ns == 50);
    CHECK(both[1].sent_ns == 40);
    CHECK(both[1].rtt_ns == 30);
    CHECK(m.in_flight() == 0);

    for (std::size_t i = 0; i < self_probe_matcher::kMaxInFlight; ++i) {
        m.probe_sent(100);
    }
    CHECK_FALSE(m.can_send());
    m.probe_sent(101);  // over the bound: not taken
    CHECK(m.in_flight() == self_probe_matcher::kMaxInFlight);
    CHECK(m.next_number() == 3 + self_probe_matcher::kMaxInFlight);
}

TEST_CASE("self probe marks that cannot be matched are dropped, never guessed", "[self_probe]") {
    self_probe_matcher m;
    m.bytes_read(1000, 5);
    m.probe_sent(100);
    CHECK_FALSE(m.mark(7, 1000));  // not an outstanding probe: ignored
    CHECK(m.in_flight() == 1);
    CHECK_FALSE(m.mark(0, 999));  // a byte read before the probe was sent: impossible
    CHECK(m.in_flight() == 0);
    CHECK(m.dropped() == 1);
    CHECK_FALSE(m.mark(0, 1000));  // a second mark for the dropped probe: ignored

    // Probes never answered are given up after the timeout, oldest first.
    m.probe_sent(200);
    m.probe_sent(300);
    m.expire(200);  // none older than 200
    CHECK(m.in_flight() == 2);
    m.expire(301);
    CHECK(m.in_flight() == 0);
    CHECK(m.dropped() == 3);
    m.probe_sent(400);
    CHECK(m.next_number() == 4);
    CHECK_FALSE(m.mark(1, 5000));  // the late mark of a given-up probe
    CHECK(m.in_flight() == 1);
}

TEST_CASE("a self probe read past its bounded history is dropped", "[self_probe]") {
    self_probe_matcher m;
    m.probe_sent(0);
    for (std::size_t i = 0; i < self_probe_matcher::kMaxHistory + 10; ++i) {
        CHECK(m.bytes_read(1, static_cast<std::int64_t>(i + 1)).empty());
    }
    m.probe_sent(1'000'000);  // sent after the history filled up
    // Byte kMaxHistory - 1 is the last one remembered: its read was the kMaxHistory-th, at time kMaxHistory.
    auto sample = m.mark(0, self_probe_matcher::kMaxHistory - 1);
    REQUIRE(sample);
    CHECK(sample->rtt_ns == static_cast<std::int64_t>(self_probe_matcher::kMaxHistory));
    // Probe 1's reads were never remembered (the history had no room when it was sent): not guessed.
    m.bytes_read(1, 1'000'001);
    CHECK_FALSE(m.mark(1, m.read_offset() - 1));
    CHECK(m.in_flight() == 0);
    CHECK(m.dropped() == 1);
    // With nothing outstanding the history starts again.
    m.probe_sent(2'000'000);
    m.bytes_read(1, 2'000'005);
    sample = m.mark(2, m.read_offset() - 1);
    REQUIRE(sample);
    CHECK(sample->rtt_ns == 5);
}
