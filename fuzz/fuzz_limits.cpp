// libFuzzer harness: the server's parameter validator and test budget (common/limits.hpp), with the server's
// limits and the client's request both taken from the input.
//
// Input: limits (max_streams u16, max_duration_ms u32, max_omit_ms u32, min_interval_ms u32, max_bitrate
// u64, max_bytes u64, max_tests_per_session u32), a budget probe (elapsed ns u64, bytes u64), then a
// TEST_REQUEST payload. Invariants: an accepted request is within every limit; the sender's rate never
// exceeds the request or a cap; per-stream pacing is 0 only for an unlimited rate; the budget check never
// trips UBSan (float-to-integer conversions, overflow) and always lets a paced sender through.
#include <cstddef>
#include <cstdint>
#include <span>

#include "common/limits.hpp"
#include "common/protocol.hpp"
#include "common/wire.hpp"
#include "fuzz/fuzz_check.hpp"

using namespace speed;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    wire::reader in(std::span<const std::uint8_t>(data, size));
    server_limits limits;
    limits.max_streams = in.u16();
    limits.max_duration_ms = in.u32();
    limits.max_omit_ms = in.u32();
    limits.min_interval_ms = in.u32();
    limits.max_bitrate = in.u64();
    limits.max_bytes = in.u64();
    limits.max_tests_per_session = in.u32();
    const auto elapsed_ns = static_cast<std::int64_t>(in.u64());
    const std::uint64_t bytes = in.u64();
    if (!in.ok()) {
        return 0;
    }
    const std::size_t header_and_probe = 2 + 4 * 3 + 8 * 2 + 4 + 8 * 2;
    std::vector<std::uint8_t> frame{static_cast<std::uint8_t>(proto::type_id<proto::test_request>), 0, 0, 0,
                                    0};
    const std::size_t payload = size - header_and_probe;
    frame[3] = static_cast<std::uint8_t>(payload >> 8);
    frame[4] = static_cast<std::uint8_t>(payload);
    frame.insert(frame.end(), data + header_and_probe, data + size);
    if (payload > 0xffff) {
        return 0;
    }
    const auto decoded = proto::decode_frame(frame);
    if (decoded.status != proto::decode_status::ok) {
        return 0;
    }
    const auto& request = std::get<proto::test_request>(decoded.msg);

    // UDP tests have a cap of their own (max_udp_bitrate); TCP's is max_bitrate.
    const bool udp = request.proto == proto::transport::udp;
    const std::uint64_t cap = udp ? limits.max_udp_bitrate : limits.max_bitrate;
    const auto refusal = validate_request(request, limits);
    if (!refusal) {
        FUZZ_CHECK(request.streams >= 1);
        FUZZ_CHECK(request.streams <= limits.max_streams);
        FUZZ_CHECK(request.streams <= proto::kMaxStreams);
        FUZZ_CHECK(request.duration_ms >= kMinDurationMs);
        FUZZ_CHECK(request.duration_ms <= limits.max_duration_ms);
        FUZZ_CHECK(request.omit_ms <= limits.max_omit_ms);
        FUZZ_CHECK(request.interval_ms == 0 || request.interval_ms >= limits.min_interval_ms);
        FUZZ_CHECK(cap == 0 || request.bitrate <= cap);
    } else {
        FUZZ_CHECK(!refusal->message.empty());
    }

    const std::uint64_t rate = sender_bitrate(request, limits);
    FUZZ_CHECK(request.bitrate == 0 || rate <= request.bitrate);
    FUZZ_CHECK(cap == 0 || rate <= cap);
    FUZZ_CHECK(rate != 0 || (request.bitrate == 0 && cap == 0 && limits.max_bytes == 0));
    if (udp) {
        const std::uint64_t server_cap = server_rate_cap(request, limits);
        FUZZ_CHECK(cap == 0 || (server_cap != 0 && server_cap <= cap));
        FUZZ_CHECK(request.bitrate == 0 || server_cap == 0 || rate <= server_cap);
    }
    const std::uint64_t pacing = per_stream_pacing(rate, request.streams);
    FUZZ_CHECK((pacing == 0) == (rate == 0 || request.streams == 0));

    const test_budget budget = test_budget::for_test(request, limits);
    (void)budget.check(elapsed_ns, bytes);
    // A sender exactly at the agreed rate is always within the budget.
    if (budget.bits_per_second != 0 && budget.max_bytes == 0 && elapsed_ns > 0 &&
        elapsed_ns < 1'000'000'000'000) {
        const double seconds = static_cast<double>(elapsed_ns) / 1e9;
        const double paced = static_cast<double>(budget.bits_per_second) / 8.0 * seconds;
        if (paced < 1e18) {
            FUZZ_CHECK(!budget.check(elapsed_ns, static_cast<std::uint64_t>(paced)));
        }
    }
    return 0;
}
