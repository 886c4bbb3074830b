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
    }
}
