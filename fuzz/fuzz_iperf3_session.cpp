// libFuzzer harness: the iperf3 front-end's state machine (server/iperf3_session_protocol.hpp) driven by what
// an iperf3 client could send, interleaved with the front-end's own events.
//
// The input is a script of one-byte operations. op % 8 == 4: the data connections attached; 5: the test
// stopped; 6: the client closed; anything else: the client sent the next (op / 8) * 16 + 1 bytes of the
// input. Invariants, besides ASan/UBSan finding no memory error or undefined behaviour:
//  - next_step ends: within the bytes fed it answers read_more without a reply;
//  - once a step ends the session (end_session, finished), the phase is ended and stays so;
//  - a refusal sent to the client is exactly SERVER_ERROR, a code and errno 0;
//  - start_streams asks for 1..128 data connections and a request inside the server's caps;
//  - every deadline is positive while the session lives, and bounded by the longest test plus a grace.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "fuzz/fuzz_check.hpp"
#include "server/iperf3_session_protocol.hpp"

using namespace speed;
using namespace speed::server;

namespace {

void check_step(const iperf3_session_protocol& p, const iperf3_step& step, const server_limits& limits) {
    if (step.what == iperf3_step::kind::end_session || step.what == iperf3_step::kind::finished) {
        FUZZ_CHECK(p.phase() == iperf3_phase::ended);
    }
    if (step.what == iperf3_step::kind::end_session) {
        FUZZ_CHECK(!step.reason.empty());
        FUZZ_CHECK(step.reply.empty() || (step.reply.size() == 9 && step.reply[0] == 0xfe));
    }
    if (step.what == iperf3_step::kind::start_streams) {
        FUZZ_CHECK(step.data_connections >= 1 && step.data_connections <= limits.max_streams);
        FUZZ_CHECK(!validate_request(step.request, limits).has_value());
    }
    if (p.phase() != iperf3_phase::ended) {
        FUZZ_CHECK(p.read_timeout().count() > 0);
        FUZZ_CHECK(p.read_timeout().count() <=
                   limits.max_omit_ms + 2 * std::int64_t{limits.max_duration_ms} + 60'000);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    server_limits limits;
    limits.max_streams = 16;
    iperf3_session_protocol p(limits, iperf3_timeouts{});
    std::size_t at = 0;
    bool over = false;
    while (at < size && !over) {
        const std::uint8_t op = data[at++];
        iperf3_step step;
        step.what = iperf3_step::kind::read_more;
        switch (op % 8) {
            case 4:
                step = p.streams_attached();
                break;
            case 5:
                step = p.test_stopped(iperf3::results{});
                break;
            case 6:
                step = p.on_closed();
                break;
            default: {
                const std::size_t length = std::min<std::size_t>(size - at, std::size_t{op / 8u} * 16 + 1);
                p.on_bytes(std::span(data + at, length));
                at += length;
                // Each step consumes at least one byte or changes phase, so this many steps always suffice.
                for (std::size_t steps = 0;; ++steps) {
                    FUZZ_CHECK(steps <= size + 8);
                    step = p.next_step();
                    check_step(p, step, limits);
                    if (p.phase() == iperf3_phase::ended ||
                        (step.what == iperf3_step::kind::read_more && step.reply.empty())) {
                        break;
                    }
                }
                break;
            }
        }
        check_step(p, step, limits);
        over = p.phase() == iperf3_phase::ended;
    }
    return 0;
}
