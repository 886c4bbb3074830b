#include "client/server_list.hpp"

#include <charconv>
#include <nlohmann/json.hpp>

namespace speed::client {

namespace {

result<std::uint16_t> port_of(std::string_view text) {
    unsigned value = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || ec != std::errc() || end != text.data() + text.size() || value == 0 ||
        value > 65535) {
        return failure{"'" + std::string(text) + "' is not a port (1-65535)"};
    }
    return static_cast<std::uint16_t>(value);
}

std::string_view trimmed(std::string_view text) {
    const auto first = text.find_first_not_of(" \t\r");
    if (first == std::string_view::npos) {
        return {};
    }
    const auto last = text.find_last_not_of(" \t\r");
    return text.substr(first, last - first + 1);
}

// "host", "host:port", "[v6]:port", "[v6]" or a bare IPv6 address (more than one colon: no port).
result<server_address> address_of(std::string_view text, std::uint16_t default_port) {
    text = trimmed(text);
    if (text.empty()) {
        return failure{"an empty server name"};
    }
    if (text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos || close == 1) {
            return failure{"'" + std::string(text) + "' opens a [ for an IPv6 address and does not close it"};
        }
        const std::string host(text.substr(1, close - 1));
        const std::string_view rest = text.substr(close + 1);
        if (rest.empty()) {
            return server_address{host, default_port};
        }
        if (rest.front() != ':') {
            return failure{"'" + std::string(text) + "': after ] comes :PORT or nothing"};
        }
        auto port = port_of(rest.substr(1));
        if (!port) {
            return failure{port.error()};
        }
        return server_address{host, *port};
    }
    const auto colon = text.find(':');
    if (colon == std::string_view::npos || text.find(':', colon + 1) != std::string_view::npos) {
        if (text.find_first_of(" \t") != std::string_view::npos) {
            return failure{"'" + std::string(text) + "' is not one server name"};
        }
        return server_address{std::string(text), default_port};
    }
    auto port = port_of(text.substr(colon + 1));
    if (!port) {
        return failure{port.error()};
    }
    if (colon == 0) {
        return failure{"'" + std::string(text) + "' names a port but no host"};
    }
    return server_address{std::string(text.substr(0, colon)), *port};
}

result<std::vector<server_address>> from_json(std::string_view text, std::uint16_t default_port) {
    const auto document = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (document.is_discarded() || !document.is_array()) {
        return failure{"a server list that starts with [ must be a JSON array"};
    }
    std::vector<server_address> servers;
    for (const auto& entry : document) {
        if (entry.is_string()) {
            auto address = address_of(entry.get<std::string>(), default_port);
            if (!address) {
                return failure{address.error()};
            }
            servers.push_back(std::move(*address));
        } else if (entry.is_object() && entry.contains("host") && entry["host"].is_string()) {
            server_address address{entry["host"].get<std::string>(), default_port};
            if (entry.contains("port")) {
                if (!entry["port"].is_number_unsigned() || entry["port"].get<std::uint64_t>() == 0 ||
                    entry["port"].get<std::uint64_t>() > 65535) {
                    return failure{"server " + address.host + ": \"port\" is not a port (1-65535)"};
                }
                address.port = entry["port"].get<std::uint16_t>();
            }
            servers.push_back(std::move(address));
        } else {
            return failure{"each server in a JSON list is \"host[:port]\" or {\"host\": ..., \"port\": ...}"};
        }
    }
    return servers;
}

// A JSON array opens with [ and then a string, an object or its end; a line "[2001:db8::1]:5201" opens with
// [ and then an address.
bool looks_like_json(std::string_view text) {
    text = trimmed(text);
    if (!text.starts_with('[')) {
        return false;
    }
    const auto next = text.find_first_not_of(" \t\r\n", 1);
    return next != std::string_view::npos && (text[next] == '"' || text[next] == '{' || text[next] == ']');
}

}  // namespace

result<std::vector<server_address>> parse_server_list(std::string_view text, std::uint16_t default_port) {
    std::vector<server_address> servers;
    if (looks_like_json(text)) {
        auto parsed = from_json(text, default_port);
        if (!parsed) {
            return parsed;
        }
        servers = std::move(*parsed);
    } else {
        std::size_t line_number = 0;
        std::size_t start = 0;
        while (start <= text.size()) {
            const auto end = text.find('\n', start);
            std::string_view line =
                text.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
            ++line_number;
            start = end == std::string_view::npos ? text.size() + 1 : end + 1;
            if (const auto hash = line.find('#'); hash != std::string_view::npos) {
                line = line.substr(0, hash);
            }
            if (trimmed(line).empty()) {
                continue;
            }
            auto address = address_of(line, default_port);
            if (!address) {
                return failure{"line " + std::to_string(line_number) + ": " + address.error()};
            }
            servers.push_back(std::move(*address));
        }
    }
    if (servers.empty()) {
        return failure{"the list names no server"};
    }
    if (servers.size() > kMaxServers) {
        return failure{"the list names " + std::to_string(servers.size()) + " servers; at most " +
                       std::to_string(kMaxServers) + " are timed"};
    }
    return servers;
}

std::optional<std::size_t> nearest(const std::vector<server_candidate>& candidates) {
    std::optional<std::size_t> best;
    for (std::size_t i = 0; i < candidates.size(); ++i) {
        if (candidates[i].rtt_ms && (!best || *candidates[i].rtt_ms < *candidates[*best].rtt_ms)) {
            best = i;
        }
    }
    return best;
}

}  // namespace speed::client
