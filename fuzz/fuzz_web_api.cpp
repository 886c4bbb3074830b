// libFuzzer harness: the browser test's request path and query parsing (common/web_api.hpp), the parts of a
// request speedsrv reads itself (RESTinio parses the HTTP). The input is "PATH?QUERY".
//
// Invariants: a session endpoint's id is a session id and lies inside the path; a download's bytes never
// exceed the maximum; nothing reads past the input.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "common/web_api.hpp"
#include "fuzz/fuzz_check.hpp"

using namespace speed;

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);
    const std::size_t question = input.find('?');
    const std::string_view path = input.substr(0, question);
    const std::string_view query =
        question == std::string_view::npos ? std::string_view() : input.substr(question + 1);
    const auto route = web::parse_route(path);
    if (!route.id.empty()) {
        FUZZ_CHECK(web::is_session_id(route.id));
        FUZZ_CHECK(route.id.data() >= path.data() &&
                   route.id.data() + route.id.size() <= path.data() + path.size());
    }
    for (const std::uint64_t max : {std::uint64_t{0}, std::uint64_t{67108864}, ~std::uint64_t{0}}) {
        if (const auto bytes = web::parse_download_bytes(query, max)) {
            FUZZ_CHECK(*bytes <= max);
        }
    }
    return 0;
}
