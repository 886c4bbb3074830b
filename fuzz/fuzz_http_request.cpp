// libFuzzer harness: the metrics endpoint's HTTP request head parser (common/http_request.hpp), fed the input
// whole and in every prefix a slow peer could have sent so far.
//
// Invariants: a complete head has a method and a target and fits the limits; a head refused at some prefix is
// never accepted once more bytes arrive (the endpoint closes at the first refusal); nothing reads past the
// input.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/http_request.hpp"
#include "fuzz/fuzz_check.hpp"

using namespace speed;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    http::request_limits limits;
    limits.max_head_bytes = 256;
    limits.max_headers = 4;
    bool refused = false;
    for (std::size_t length = 0; length <= input.size(); ++length) {
        const auto head = http::parse_request_head(input.substr(0, length), limits);
        if (head.state == http::request_head::verdict::complete) {
            FUZZ_CHECK(!refused);
            FUZZ_CHECK(!head.method.empty() && !head.target.empty());
            FUZZ_CHECK(head.method.size() + head.target.size() < limits.max_head_bytes);
            const int status = http::status_for(head, "/metrics");
            FUZZ_CHECK(status == 200 || status == 404 || status == 405);
            break;  // the endpoint stops reading at the first complete head
        }
        if (head.state != http::request_head::verdict::incomplete) {
            refused = true;
            break;
        }
    }
    return 0;
}
