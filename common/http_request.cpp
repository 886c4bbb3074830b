#include "common/http_request.hpp"

#include <algorithm>

namespace speed::http {

namespace {

bool is_token_char(char c) {
    // RFC 9110's tchar.
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

bool is_target_char(char c) {
    return c > ' ' && c < 0x7f;
}

// The request line: METHOD SP TARGET SP HTTP/1.x
bool parse_request_line(std::string_view line, request_head& head) {
    const auto first_space = line.find(' ');
    if (first_space == std::string_view::npos || first_space == 0) {
        return false;
    }
    const auto method = line.substr(0, first_space);
    const auto rest = line.substr(first_space + 1);
    const auto second_space = rest.find(' ');
    if (second_space == std::string_view::npos || second_space == 0) {
        return false;
    }
    const auto target = rest.substr(0, second_space);
    const auto version = rest.substr(second_space + 1);
    if (!std::all_of(method.begin(), method.end(), is_token_char) ||
        !std::all_of(target.begin(), target.end(), is_target_char) ||
        (version != "HTTP/1.1" && version != "HTTP/1.0")) {
        return false;
    }
    head.method = std::string(method);
    head.target = std::string(target);
    return true;
}

// A header line: NAME ":" value, the name a token.
bool is_header_line(std::string_view line) {
    const auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
        return false;
    }
    const auto name = line.substr(0, colon);
    return std::all_of(name.begin(), name.end(), is_token_char);
}

}  // namespace

request_head parse_request_head(std::string_view received, const request_limits& limits) {
    request_head head;
    const auto end = received.find("\r\n\r\n");
    if (end == std::string_view::npos) {
        head.state = received.size() >= limits.max_head_bytes ? request_head::verdict::too_large
                                                              : request_head::verdict::incomplete;
        // A head that already breaks the rules is refused before the peer can send the rest.
        const auto first_line_end = received.find("\r\n");
        if (first_line_end != std::string_view::npos) {
            request_head probe;
            if (!parse_request_line(received.substr(0, first_line_end), probe)) {
                head.state = request_head::verdict::bad_request;
            }
        }
        return head;
    }
    if (end + 4 > limits.max_head_bytes) {
        head.state = request_head::verdict::too_large;
        return head;
    }
    std::string_view rest = received.substr(0, end + 2);
    const auto line_end = rest.find("\r\n");
    if (!parse_request_line(rest.substr(0, line_end), head)) {
        head = request_head{};
        head.state = request_head::verdict::bad_request;
        return head;
    }
    rest.remove_prefix(line_end + 2);
    std::size_t headers = 0;
    while (!rest.empty()) {
        const auto next = rest.find("\r\n");  // rest always ends with CRLF
        if (++headers > limits.max_headers) {
            head = request_head{};
            head.state = request_head::verdict::too_large;
            return head;
        }
        if (!is_header_line(rest.substr(0, next))) {
            head = request_head{};
            head.state = request_head::verdict::bad_request;
            return head;
        }
        rest.remove_prefix(next + 2);
    }
    head.state = request_head::verdict::complete;
    return head;
}

int status_for(const request_head& head, std::string_view path) {
    if (head.method != "GET") {
        return 405;
    }
    std::string_view target = head.target;
    target = target.substr(0, target.find('?'));
    return target == path ? 200 : 404;
}

}  // namespace speed::http
