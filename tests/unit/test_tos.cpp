// -S/--tos and --dscp as iperf3 reads them (common/tos.hpp).
#include <catch2/catch.hpp>

#include "common/tos.hpp"

using namespace speed;

TEST_CASE("a TOS byte is read in decimal, hex or octal", "[unit][tos]") {
    CHECK(tos::parse_tos("184") == std::uint8_t{184});
    CHECK(tos::parse_tos("0xb8") == std::uint8_t{184});
    CHECK(tos::parse_tos("0XB8") == std::uint8_t{184});
    CHECK(tos::parse_tos("0270") == std::uint8_t{184});
    CHECK(tos::parse_tos("0") == std::uint8_t{0});
    CHECK(tos::parse_tos("255") == std::uint8_t{255});
    CHECK_FALSE(tos::parse_tos("256"));
    CHECK_FALSE(tos::parse_tos("-1"));
    CHECK_FALSE(tos::parse_tos("0x"));
    CHECK_FALSE(tos::parse_tos("09"));
    CHECK_FALSE(tos::parse_tos(""));
    CHECK(tos::parse_tos("abc").error() == "'abc' is not a TOS byte (0-255, decimal, 0x hex or 0 octal)");
}

TEST_CASE("a DSCP is a code point or its name, shifted into the TOS byte", "[unit][tos]") {
    CHECK(tos::parse_dscp("EF") == std::uint8_t{184});
    CHECK(tos::parse_dscp("ef") == std::uint8_t{184});
    CHECK(tos::parse_dscp("46") == std::uint8_t{184});
    CHECK(tos::parse_dscp("AF41") == std::uint8_t{136});
    CHECK(tos::parse_dscp("af11") == std::uint8_t{40});
    CHECK(tos::parse_dscp("CS1") == std::uint8_t{32});
    CHECK(tos::parse_dscp("cs7") == std::uint8_t{224});
    CHECK(tos::parse_dscp("VA") == std::uint8_t{176});
    CHECK(tos::parse_dscp("LE") == std::uint8_t{4});
    CHECK(tos::parse_dscp("63") == std::uint8_t{252});
    CHECK(tos::parse_dscp("0x2e") == std::uint8_t{184});
    CHECK_FALSE(tos::parse_dscp("64"));
    CHECK_FALSE(tos::parse_dscp("AF44"));
    CHECK(tos::parse_dscp("best").error() ==
          "'best' is not a DSCP code point (0-63, or EF, AF11-AF43, CS0-CS7, VA, LE)");
}
