// libFuzzer harness: the frame decoder (common/protocol.cpp) and the frame buffer that feeds it.
//
// Invariants, besides ASan/UBSan finding no memory error or undefined behaviour:
//  - ok: the frame fits the input and the budget, and the message re-encodes to exactly the bytes it came
//    from (every field is read and written one way only), except a HELLO of another version, which decodes
//    to its version number alone;
//  - need-more: asks for more than it has, never more than a header plus the budget;
//  - bad: says why;
//  - the frame buffer yields the same frames however the bytes are split.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "common/frame_buffer.hpp"
#include "common/protocol.hpp"
#include "fuzz/fuzz_check.hpp"

using namespace speed::proto;

namespace {

void check_one(std::span<const std::uint8_t> input, std::uint32_t budget) {
    const decode_result result = decode_frame(input, budget);
    switch (result.status) {
        case decode_status::ok: {
            FUZZ_CHECK(result.consumed >= kFrameHeaderSize);
            FUZZ_CHECK(result.consumed <= input.size());
            FUZZ_CHECK(result.consumed - kFrameHeaderSize <= budget);
            const auto* greeting = std::get_if<hello>(&result.msg);
            if (greeting == nullptr || greeting->version == kProtocolVersion) {
                const std::vector<std::uint8_t> again = encode(result.msg);
                FUZZ_CHECK(again.size() == result.consumed);
                FUZZ_CHECK(std::equal(again.begin(), again.end(), input.begin()));
            }
            break;
        }
        case decode_status::need_more:
            FUZZ_CHECK(result.bytes_needed > input.size());
            FUZZ_CHECK(result.bytes_needed <= kFrameHeaderSize + std::size_t{budget});
            break;
        case decode_status::bad:
            FUZZ_CHECK(!result.reason.empty());
            break;
    }
}

// Decodes every frame of `input` through a frame_buffer, committing `chunk` bytes at a time.
std::vector<message> frames_in_chunks(std::span<const std::uint8_t> input, std::size_t chunk) {
    frame_buffer buffer;
    std::vector<message> frames;
    std::size_t offset = 0;
    while (offset < input.size()) {
        const std::size_t n = std::min(chunk, input.size() - offset);
        auto space = buffer.prepare(n);
        std::copy_n(input.begin() + static_cast<std::ptrdiff_t>(offset), n, space.begin());
        buffer.commit(n);
        offset += n;
        for (;;) {
            decode_result result = buffer.next();
            if (result.status == decode_status::ok) {
                frames.push_back(std::move(result.msg));
                continue;
            }
            if (result.status == decode_status::bad) {
                return frames;
            }
            break;
        }
    }
    return frames;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::uint8_t> input(data, size);
    // The three budgets the server reads frames with: HELLO, probe connections, established connections.
    for (const std::uint32_t budget : {kMaxHelloPayload, std::uint32_t{64}, kMaxFramePayload}) {
        check_one(input, budget);
    }
    if (size > 0) {
        const std::size_t chunk = 1 + data[0] % 97;
        FUZZ_CHECK(frames_in_chunks(input, chunk) == frames_in_chunks(input, size));
    }
    return 0;
}
