// The head of an HTTP/1.x request, as the metrics endpoint (server/metrics_http.hpp) reads it from a peer:
// bounded in size and header count, and decided without ever reading a body. Pure: the peer's bytes in, a
// verdict out; fuzzed (fuzz/fuzz_http_request.cpp).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace speed::http {

struct request_limits {
    std::size_t max_head_bytes = 8192;  // request line and headers, up to and including the blank line
    std::size_t max_headers = 32;
};

struct request_head {
    enum class verdict {
        incomplete,   // no blank line yet, and still within the limits: read more
        complete,     // method and target are set
        bad_request,  // not an HTTP/1.x request head (400)
        too_large,    // head longer than max_head_bytes, or more than max_headers headers (431)
    };
    verdict state = verdict::incomplete;
    std::string method;
    std::string target;  // as sent (origin form), query included
};

// What the bytes received so far make of a request head.
request_head parse_request_head(std::string_view received, const request_limits& limits);

// The response to a complete head for an endpoint that serves only GET `path`: 200, 404 or 405.
int status_for(const request_head& head, std::string_view path);

}  // namespace speed::http
