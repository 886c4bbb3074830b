#include <catch2/catch.hpp>

#include "common/congestion_list.hpp"

using speed::congestion_listed;

TEST_CASE("congestion names are matched whole against the kernel's allowed list", "[congestion]") {
    const char* proc = "reno bbr\n";  // as /proc/sys/net/ipv4/tcp_allowed_congestion_control reads
    CHECK(congestion_listed(proc, "reno"));
    CHECK(congestion_listed(proc, "bbr"));
    CHECK_FALSE(congestion_listed(proc, "cubic"));
    CHECK_FALSE(congestion_listed(proc, "bb"));     // a prefix of a name
    CHECK_FALSE(congestion_listed(proc, "bbr\n"));  // a name with the separator
    CHECK_FALSE(congestion_listed(proc, "reno bbr"));
    CHECK_FALSE(congestion_listed(proc, ""));
    CHECK_FALSE(congestion_listed("", "reno"));
    CHECK_FALSE(congestion_listed("\n", "reno"));
    CHECK(congestion_listed("  cubic\treno  ", "reno"));
    CHECK(congestion_listed("cubic", "cubic"));
}
