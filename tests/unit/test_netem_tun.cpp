// netem-tun's pure parts: the delay line's order and bounds, the seeded loss, the --path syntax.
#include <catch2/catch.hpp>

#include <cstring>
#include <string>

#include "tools/netem-tun/delay_line.hpp"
#include "tools/netem-tun/path_spec.hpp"
#include "tools/netem-tun/seeded_loss.hpp"

using namespace speed::netem;

namespace {

// Queues a packet whose bytes spell `text`.
void push(delay_line& line, const std::string& text, std::int64_t release_ns) {
    auto buffer = line.tail_buffer();
    REQUIRE(buffer.size() >= text.size());
    std::memcpy(buffer.data(), text.data(), text.size());
    line.commit(text.size(), release_ns);
}

std::string pop(delay_line& line) {
    const auto bytes = line.front();
    std::string text(reinterpret_cast<const char*>(bytes.data()), bytes.size());
    line.pop();
    return text;
}

}  // namespace

TEST_CASE("a delay line releases packets in arrival order at their release times", "[unit][netem]") {
    delay_line line(4, 16);
    CHECK(line.empty());
    CHECK_FALSE(line.next_release_ns());
    push(line, "first", 1'000);
    push(line, "second", 2'000);
    push(line, "third-longer", 3'000);
    CHECK(line.size() == 3);
    CHECK(line.next_release_ns() == 1'000);
    CHECK(pop(line) == "first");
    CHECK(line.next_release_ns() == 2'000);
    CHECK(pop(line) == "second");
    CHECK(pop(line) == "third-longer");
    CHECK(line.empty());
}

TEST_CASE("a delay line never lets a packet overtake the one before it", "[unit][netem]") {
    delay_line line(4, 8);
    push(line, "a", 5'000);
    push(line, "b", 4'000);  // an earlier release time is raised to the previous packet's
    CHECK(pop(line) == "a");
    CHECK(line.next_release_ns() == 5'000);
    CHECK(pop(line) == "b");
    // Once empty, the next packet's own time counts again.
    push(line, "c", 10);
    CHECK(line.next_release_ns() == 10);
}

TEST_CASE("a delay line holds at most its capacity and reuses its slots around the ring", "[unit][netem]") {
    delay_line line(3, 8);
    // Five rounds of three packets each: the ring wraps around four times.
    for (int round = 0; round < 5; ++round) {
        const std::int64_t base = round * 100;
        for (int k = 0; k < 3; ++k) {
            push(line, std::to_string(base + k), base + k);
        }
        CHECK(line.full());
        CHECK_THROWS_AS(line.commit(1, base + 4), std::logic_error);
        for (int k = 0; k < 3; ++k) {
            CHECK(pop(line) == std::to_string(base + k));
        }
    }
    CHECK_THROWS_AS(line.pop(), std::logic_error);
    CHECK_THROWS_AS(line.commit(9, 0), std::logic_error);  // longer than a slot
    CHECK_THROWS_AS(delay_line(0, 8), std::invalid_argument);
}

TEST_CASE("seeded loss drops the configured share of many packets", "[unit][netem]") {
    constexpr int kPackets = 1'000'000;
    for (const double probability : {0.001, 0.01, 0.05, 0.5}) {
        seeded_loss loss(probability, 42);
        int dropped = 0;
        for (int i = 0; i < kPackets; ++i) {
            dropped += loss.drop() ? 1 : 0;
        }
        // Binomial standard deviation sqrt(n p (1-p)); five of them is a bound a correct generator keeps.
        const double expected = probability * kPackets;
        const double sigma = std::sqrt(expected * (1.0 - probability));
        INFO("p = " << probability << ": dropped " << dropped);
        CHECK(std::abs(dropped - expected) < 5.0 * sigma);
    }
}

TEST_CASE("seeded loss is reproducible, differs between seeds, and honours 0 and 100 %", "[unit][netem]") {
    const auto pattern = [](double probability, std::uint64_t seed) {
        seeded_loss loss(probability, seed);
        std::string bits;
        for (int i = 0; i < 2'000; ++i) {
            bits += loss.drop() ? '1' : '0';
        }
        return bits;
    };
    CHECK(pattern(0.1, 7) == pattern(0.1, 7));
    CHECK(pattern(0.1, 7) != pattern(0.1, 8));
    CHECK(pattern(0.0, 7) == std::string(2'000, '0'));
    CHECK(pattern(1.0, 7) == std::string(2'000, '1'));
    CHECK(direction_seed(7, 0) != direction_seed(7, 1));
    // Golden values: SplitMix64's first outputs for seed 0 (from its reference implementation) decide the
    // first drops of a 50 % loss: 0xe220a8397b1dcdaf >= 2^63 passes, 0x6e789e6aa1b965f4 < 2^63 drops.
    seeded_loss half(0.5, 0);
    CHECK_FALSE(half.drop());
    CHECK(half.drop());
}

TEST_CASE("netem-tun's --path option parses DEVICE:DELAY_MS[:LOSS_PERCENT]", "[unit][netem]") {
    std::string error;
    auto spec = parse_path_spec("tun-up:20", &error);
    REQUIRE(spec);
    CHECK(spec->device == "tun-up");
    CHECK(spec->delay_ns == 20'000'000);
    CHECK(spec->loss_probability == 0.0);

    spec = parse_path_spec("t0:0.25:1.5", &error);
    REQUIRE(spec);
    CHECK(spec->delay_ns == 250'000);
    CHECK(spec->loss_probability == Approx(0.015));

    for (const char* bad : {"", "tun0", "tun0:", ":5", "tun0:x", "tun0:-1", "tun0:20001", "tun0:5:101",
                            "tun0:5:-1", "tun0:5:1:2", "a-name-longer-than-15:5"}) {
        INFO(bad);
        error.clear();
        CHECK_FALSE(parse_path_spec(bad, &error));
        CHECK_FALSE(error.empty());
    }
}
