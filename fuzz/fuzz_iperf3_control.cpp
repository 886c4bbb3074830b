// libFuzzer harness: what an iperf3 peer sends on a control connection (common/iperf3_protocol.hpp): the
// length-prefixed JSON reader, the parameters a client asks for and the results a peer reports.
//
// Invariants, besides ASan/UBSan finding no memory error or undefined behaviour:
//  - the reader yields the same documents however the bytes are split, never one longer than its limit;
//  - accepted parameters are inside iperf3's limits; a refusal says why;
//  - accepted parameters written back as a client would send them read back the same;
//  - results never hold more than twice iperf3's stream limit.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/iperf3_protocol.hpp"
#include "fuzz/fuzz_check.hpp"

using namespace speed;
using nlohmann::json;

namespace {

// Every document in `input`, fed `chunk` bytes at a time; stops at the first bad one.
std::vector<std::string> documents_in_chunks(std::span<const std::uint8_t> input, std::size_t chunk) {
    iperf3::json_reader reader(iperf3::kMaxParametersJson);
    std::vector<std::string> documents;
    for (std::size_t at = 0; at < input.size(); at += chunk) {
        reader.append(input.subspan(at, std::min(chunk, input.size() - at)));
        for (;;) {
            auto next = reader.next();
            if (std::holds_alternative<iperf3::json_reader::need_more>(next)) {
                break;
            }
            if (const auto* failure = std::get_if<iperf3::json_reader::bad>(&next)) {
                FUZZ_CHECK(!failure->reason.empty());
                documents.emplace_back("<bad>");
                return documents;
            }
            documents.push_back(std::get<json>(next).dump());
        }
    }
    return documents;
}

void check_parameters(const json& document) {
    const auto parsed = iperf3::parse_parameters(document);
    if (!parsed) {
        FUZZ_CHECK(!parsed.error().empty() && parsed.error_code() != 0);
        return;
    }
    const auto& p = *parsed;
    FUZZ_CHECK(p.streams >= 1 && p.streams <= iperf3::kMaxStreams);
    FUZZ_CHECK(p.duration_seconds <= iperf3::kMaxDurationSeconds);
    FUZZ_CHECK(p.omit_seconds <= iperf3::kMaxOmitSeconds);
    FUZZ_CHECK(p.block_length <= iperf3::kMaxTcpBlock);
    FUZZ_CHECK(p.socket_buffer <= iperf3::kMaxSocketBuffer);
    FUZZ_CHECK(p.tos <= 255);
    const auto again = iperf3::parse_parameters(iperf3::parameters_json(p));
    FUZZ_CHECK(again.has_value());
    const auto& q = *again;
    FUZZ_CHECK(q.protocol == p.protocol && q.reverse == p.reverse && q.bidirectional == p.bidirectional);
    FUZZ_CHECK(q.streams == p.streams && q.duration_seconds == p.duration_seconds && q.bytes == p.bytes);
    FUZZ_CHECK(q.block_length == p.block_length && q.bitrate == p.bitrate && q.congestion == p.congestion);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> input(data, size);
    const std::vector<std::string> whole = documents_in_chunks(input, input.empty() ? 1 : input.size());
    FUZZ_CHECK(documents_in_chunks(input, 1) == whole);
    FUZZ_CHECK(documents_in_chunks(input, 7) == whole);
    for (const std::string& text : whole) {
        if (text == "<bad>") {
            continue;
        }
        const json document = json::parse(text);
        check_parameters(document);
        const iperf3::results results = iperf3::parse_results(document);
        FUZZ_CHECK(results.streams.size() <= 2 * static_cast<std::size_t>(iperf3::kMaxStreams));
    }
    // The same bytes as one bare document, as the results reader (a larger limit) would see them.
    const json bare = json::parse(input.begin(), input.end(), nullptr, false);
    if (!bare.is_discarded()) {
        check_parameters(bare);
        FUZZ_CHECK(iperf3::parse_results(bare).streams.size() <=
                   2 * static_cast<std::size_t>(iperf3::kMaxStreams));
    }
    return 0;
}
