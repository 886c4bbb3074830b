// Bufferbloat grade, trimmed mean and responsiveness (RPM) with exact vectors.
#include <catch2/catch.hpp>

#include <vector>

#include "common/latency.hpp"

using namespace speed::latency;

TEST_CASE("bufferbloat grades follow DSLReports' bands, lower bound inclusive", "[latency]") {
    CHECK(grade_for_increase(0.0) == bufferbloat_grade::a_plus);
    CHECK(grade_for_increase(4.999) == bufferbloat_grade::a_plus);
    CHECK(grade_for_increase(5.0) == bufferbloat_grade::a);
    CHECK(grade_for_increase(29.999) == bufferbloat_grade::a);
    CHECK(grade_for_increase(30.0) == bufferbloat_grade::b);
    CHECK(grade_for_increase(59.999) == bufferbloat_grade::b);
    CHECK(grade_for_increase(60.0) == bufferbloat_grade::c);
    CHECK(grade_for_increase(199.999) == bufferbloat_grade::c);
    CHECK(grade_for_increase(200.0) == bufferbloat_grade::d);
    CHECK(grade_for_increase(399.999) == bufferbloat_grade::d);
    CHECK(grade_for_increase(400.0) == bufferbloat_grade::f);
    CHECK(grade_for_increase(5000.0) == bufferbloat_grade::f);
    CHECK(name_of(bufferbloat_grade::a_plus) == "A+");
    CHECK(name_of(bufferbloat_grade::f) == "F");
}

TEST_CASE("the 95 % single-sided trimmed mean drops the slowest 5 %", "[latency]") {
    std::vector<double> samples(19, 10.0);
    samples.push_back(1000.0);  // 20 samples: the one outlier is the top 5 %
    CHECK(trimmed_mean_95(samples) == 10.0);
    CHECK(trimmed_mean_95(std::vector<double>{}) == 0.0);
    // With 10 samples, ceil(9.5) = 10 are kept: nothing is dropped.
    CHECK(trimmed_mean_95(std::vector<double>{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}) == 5.5);
}

TEST_CASE("responsiveness is 60000 / RTT, averaged over foreign and self probes", "[latency]") {
    CHECK(rpm_for_rtt(10.0) == 6000.0);
    CHECK(rpm_for_rtt(0.0) == 0.0);

    const std::vector<double> foreign(20, 10.0);  // 6000 RPM
    const std::vector<double> self(20, 20.0);     // 3000 RPM
    auto both = responsiveness_of(foreign, self);
    REQUIRE(both);
    CHECK(both->foreign_rpm == 6000.0);
    CHECK(both->self_rpm == 3000.0);
    CHECK(both->rpm == 4500.0);

    auto foreign_only = responsiveness_of(foreign, {});
    REQUIRE(foreign_only);
    CHECK(foreign_only->rpm == 6000.0);
    CHECK_FALSE(foreign_only->self_rpm);

    CHECK_FALSE(responsiveness_of({}, {}));
}

TEST_CASE("a probe's network round trip removes the client's wait and the server's hold", "[latency]") {
    probe_timing timing;
    timing.sent_ns = 1'000'000;
    timing.read_ns = 1'900'000;  // 0.9 ms in the application
    timing.client_wait_ns = 150'000;
    timing.server_hold_ns = 250'000;
    auto trip = round_trip_of(timing);
    CHECK(trip.application_ms == 0.9);
    CHECK(trip.network_ms == Approx(0.5).epsilon(1e-12));

    SECTION("without a kernel stamp only the server's hold comes off") {
        timing.client_wait_ns.reset();
        CHECK(round_trip_of(timing).network_ms == Approx(0.65).epsilon(1e-12));
    }
    SECTION("implausible figures are not subtracted") {
        timing.client_wait_ns = -5;         // a wall-clock step backwards
        timing.server_hold_ns = 2'000'000;  // more than the whole round trip
        trip = round_trip_of(timing);
        CHECK(trip.network_ms == Approx(0.9).epsilon(1e-12));
        CHECK_FALSE(trip.client_wait_removed);
        CHECK_FALSE(trip.server_hold_removed);
        CHECK(trip.server_hold_rejected);
    }
    SECTION("the corrections that were made are recorded") {
        CHECK(trip.client_wait_removed);
        CHECK(trip.server_hold_removed);
        CHECK_FALSE(trip.server_hold_rejected);
    }
}

// A misbehaving server must not be able to drive the headline RTT towards zero.
TEST_CASE("the server's hold is capped at what is physically plausible", "[latency]") {
    probe_timing timing;
    timing.sent_ns = 0;
    timing.read_ns = 30'000'000;  // 30 ms in the application

    timing.server_hold_ns = kMostServerHoldNs;  // 10 ms: believed
    CHECK(round_trip_of(timing).network_ms == 20.0);
    timing.server_hold_ns = kMostServerHoldNs + 1;  // more than any working server holds a probe
    auto trip = round_trip_of(timing);
    CHECK(trip.network_ms == 30.0);
    CHECK(trip.server_hold_rejected);

    // Whatever is removed must leave at least kLeastNetworkRoundTripNs.
    timing.read_ns = 5'000'000;
    timing.server_hold_ns = 5'000'000 - kLeastNetworkRoundTripNs;
    CHECK(round_trip_of(timing).network_ms == 0.002);
    timing.server_hold_ns = 5'000'000 - kLeastNetworkRoundTripNs + 1;
    CHECK(round_trip_of(timing).network_ms == 5.0);
    timing.client_wait_ns = 4'999'000;  // would leave 1 us
    trip = round_trip_of(timing);
    CHECK_FALSE(trip.client_wait_removed);
    CHECK(trip.network_ms == 5.0);
}

TEST_CASE("the stable part of a window is its last 4 s, at most its second half", "[latency]") {
    constexpr std::int64_t s = 1'000'000'000;
    const time_span ten = stable_part({100 * s, 110 * s});
    CHECK(ten.from_ns == 106 * s);
    CHECK(ten.to_ns == 110 * s);
    const time_span four = stable_part({0, 4 * s});
    CHECK(four.from_ns == 2 * s);
    CHECK(four.to_ns == 4 * s);
    const time_span none = stable_part({5 * s, 5 * s});
    CHECK(none.from_ns == 5 * s);
    CHECK(none.to_ns == 5 * s);
}

TEST_CASE("RPM from a known series uses only the stable part of the window", "[latency]") {
    constexpr std::int64_t ms = 1'000'000;
    // Probes every 100 ms over a 10 s window: 10 ms round trips while the queue fills (the first 6 s), then a
    // standing queue: 50 ms. Averaging every sample would give 60000 / 26 = 2308 RPM; the draft's figure is
    // the working conditions': 60000 / 50 = 1200.
    std::vector<double> rtt;
    std::vector<std::int64_t> sent;
    for (int i = 0; i < 100; ++i) {
        sent.push_back(i * 100 * ms);
        rtt.push_back(i < 60 ? 10.0 : 50.0);
    }
    const time_span window{0, 10'000 * ms};
    const time_span stable = stable_part(window);
    const auto foreign = samples_in(rtt, sent, stable);
    CHECK(foreign.size() == 40);  // sent at 6.0 s .. 9.9 s
    // In-band samples without times, at the same period: the last 40 % of the series.
    const std::vector<double> in_band(rtt.begin(), rtt.end());
    const auto self = last_share(in_band, window, stable);
    CHECK(self.size() == 40);
    const auto rpm = responsiveness_of(foreign, self);
    REQUIRE(rpm);
    CHECK(rpm->rpm == 1200.0);
    const auto everything = responsiveness_of(rtt, rtt);
    REQUIRE(everything);
    CHECK(everything->rpm > 2000.0);  // what the old rule reported
}

TEST_CASE("share_in: the samples of a regular series without times that stand for part of its window",
          "[latency]") {
    // Ten samples over 0..10 s: sample i stands for (i + 0.5) s.
    const std::vector<double> values{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    const time_span window{0, 10'000'000'000};
    CHECK(share_in(values, window, {2'000'000'000, 5'000'000'000}) == std::vector<double>{2, 3, 4});
    CHECK(share_in(values, window, {2'600'000'000, 5'400'000'000}) == std::vector<double>{3, 4});
    // A part that ends the window takes what last_share takes.
    CHECK(share_in(values, window, {6'000'000'000, 10'000'000'000}) ==
          last_share(values, window, {6'000'000'000, 10'000'000'000}));
    // Parts beyond the window are cut to it; an empty window or part has none.
    CHECK(share_in(values, window, {-5'000'000'000, 1'000'000'000}) == std::vector<double>{0});
    CHECK(share_in(values, window, {9'000'000'000, 20'000'000'000}) == std::vector<double>{9});
    CHECK(share_in(values, window, {4'000'000'000, 4'000'000'000}).empty());
    CHECK(share_in(values, {5, 5}, {0, 10}).empty());
    CHECK(share_in({}, window, window).empty());
}
