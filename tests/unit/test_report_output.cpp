// speedcli's report outputs: the raw latency series of the JSON document (docs/json.md, "series").
#include <catch2/catch.hpp>

#include "client/output.hpp"

using namespace speed::client;
using json = nlohmann::ordered_json;

namespace {

latency_report three_probes(std::int64_t zero_ns) {
    latency_report latency;
    latency.rtt_ms = {0.0414, 1.25, 0.0496};
    latency.application_rtt_ms = {0.1014, 1.3, 0.112};
    latency.sent_ns = {1'000'000'000, 1'050'013'400, 1'100'021'000};
    latency.lost_sent_ns = {1'150'000'000};
    latency.zero_ns = zero_ns;
    latency.sent = 4;
    latency.lost = 1;
    return latency;
}

}  // namespace

TEST_CASE("A latency object lists every probe's send time and round trips, to the microsecond",
          "[unit][output][series]") {
    const json series = latency_json(three_probes(0))["series"];
    // Zero 0: the times count from the first probe sent.
    CHECK(series.dump() ==
          R"({"t":[0.0,0.050013,0.100021],"rtt_ms":[0.041,1.25,0.05],"application_rtt_ms":[0.101,1.3,0.112],)"
          R"("lost_t":[0.15]})");
}

TEST_CASE("A loaded series counts its times from the direction's receiver time 0", "[unit][output][series]") {
    const json series = latency_json(three_probes(500'000'000))["series"];
    CHECK(series["t"].dump() == "[0.5,0.550013,0.600021]");
    CHECK(series["lost_t"].dump() == "[0.65]");
}

TEST_CASE("A series without send times (UDP idle probes) has null times and its round trips",
          "[unit][output][series]") {
    latency_report latency;
    latency.rtt_ms = {0.2, 0.3};
    latency.sent = 2;
    const json series = latency_json(latency)["series"];
    CHECK(series.dump() == R"({"t":null,"rtt_ms":[0.2,0.3],"application_rtt_ms":[],"lost_t":[]})");
}

TEST_CASE("A lost probe sent before the first answered one is the series' zero", "[unit][output][series]") {
    latency_report latency = three_probes(0);
    latency.lost_sent_ns = {900'000'000};
    const json series = latency_json(latency)["series"];
    CHECK(series["t"].dump() == "[0.1,0.150013,0.200021]");
    CHECK(series["lost_t"].dump() == "[0.0]");
}
