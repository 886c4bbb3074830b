// libFuzzer harness: speedcli's side of iperf3's control protocol (client/iperf3_client_protocol.hpp) driven
// by what an iperf3 server could send, interleaved with the client's own events.
//
// The input is a script of one-byte operations. op % 8 == 4: the test's time is up; 5: this end's results are
// ready; 6: the server closed; anything else: the server sent the next (op / 8) * 16 + 1 bytes of the input.
// Invariants, besides ASan/UBSan finding no memory error or undefined behaviour:
//  - next_step ends: within the bytes fed it answers read_more without a reply;
//  - once a step ends the test (failed, finished), the phase is ended and stays so, and a failure says why;
//  - open_streams asks for exactly the streams the parameters name;
//  - the cookie is a valid iperf3 cookie.
#include <cstddef>
#include <cstdint>
#include <span>

#include "client/iperf3_client_protocol.hpp"
#include "fuzz/fuzz_check.hpp"

using namespace speed;
using kind = client::iperf3_client_step::kind;

namespace {

void check_step(const client::iperf3_client_protocol& c, const client::iperf3_client_step& step,
                const iperf3::parameters& parameters) {
    if (step.what == kind::failed || step.what == kind::finished) {
        FUZZ_CHECK(c.phase() == client::iperf3_client_phase::ended);
    }
    if (step.what == kind::failed) {
        FUZZ_CHECK(!step.reason.empty());
    }
    if (step.what == kind::open_streams) {
        FUZZ_CHECK(step.streams == parameters.streams);
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    iperf3::parameters parameters;
    parameters.streams = 4;
    const std::array<std::uint8_t, 36> random{};
    client::iperf3_client_protocol c(parameters, random);
    FUZZ_CHECK(iperf3::is_cookie(c.cookie()));
    std::size_t at = 0;
    while (at < size && c.phase() != client::iperf3_client_phase::ended) {
        const std::uint8_t op = data[at++];
        client::iperf3_client_step step;
        step.what = kind::read_more;
        switch (op % 8) {
            case 4:
                step = c.time_up();
                break;
            case 5:
                step = c.results_ready(iperf3::results{});
                break;
            case 6:
                step = c.on_closed();
                break;
            default: {
                const std::size_t length = std::min<std::size_t>(size - at, std::size_t{op / 8u} * 16 + 1);
                c.on_bytes(std::span(data + at, length));
                at += length;
                for (std::size_t steps = 0;; ++steps) {
                    FUZZ_CHECK(steps <= size + 8);
                    step = c.next_step();
                    check_step(c, step, parameters);
                    if (c.phase() == client::iperf3_client_phase::ended ||
                        (step.what == kind::read_more && step.reply.empty())) {
                        break;
                    }
                }
                break;
            }
        }
        check_step(c, step, parameters);
    }
    return 0;
}
