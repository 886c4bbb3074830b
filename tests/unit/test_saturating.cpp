// common/saturating.hpp: sums and differences of peer-chosen numbers stop at the type's range.
#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>

#include "common/saturating.hpp"

using speed::saturating_add;
using speed::saturating_sub;

TEST_CASE("saturating arithmetic stops at the range instead of overflowing", "[unit][saturating]") {
    constexpr auto most = std::numeric_limits<std::int64_t>::max();
    constexpr auto least = std::numeric_limits<std::int64_t>::min();
    constexpr auto most_unsigned = std::numeric_limits<std::uint64_t>::max();
    CHECK(saturating_add(std::int64_t{2}, std::int64_t{3}) == 5);
    CHECK(saturating_add(most, std::int64_t{1}) == most);
    CHECK(saturating_add(least, std::int64_t{-1}) == least);
    CHECK(saturating_sub(least, std::int64_t{1}) == least);
    CHECK(saturating_sub(most, std::int64_t{-1}) == most);
    CHECK(saturating_add(std::uint64_t{2}, std::uint64_t{3}) == 5);
    CHECK(saturating_add(most_unsigned - 1, std::uint64_t{1}) == most_unsigned);
    CHECK(saturating_add(most_unsigned, most_unsigned) == most_unsigned);
}
