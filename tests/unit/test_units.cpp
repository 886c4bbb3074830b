#include <catch2/catch.hpp>

#include "common/units.hpp"

TEST_CASE("placeholder") {
    CHECK(speed::units::format_bits_per_second(941.2e6) == "941.2 Mbit/s");
}
