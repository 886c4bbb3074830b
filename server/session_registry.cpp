#include "server/session_registry.hpp"

#include <sys/random.h>

#include <cstring>
#include <stdexcept>

#include "server/session.hpp"

namespace speed::server {

std::size_t token_hash::operator()(const proto::session_token& token) const {
    // Tokens are uniformly random, so any 8 of their bytes are already a good hash.
    std::size_t value = 0;
    std::memcpy(&value, token.data(), sizeof value);
    return value;
}

void session_registry::add(const proto::session_token& token, const std::shared_ptr<session>& s) {
    sessions_[token] = s;
}

void session_registry::remove(const proto::session_token& token) {
    sessions_.erase(token);
}

std::shared_ptr<session> session_registry::find(const proto::session_token& token) const {
    auto it = sessions_.find(token);
    return it == sessions_.end() ? nullptr : it->second.lock();
}

std::vector<std::shared_ptr<session>> session_registry::all() const {
    std::vector<std::shared_ptr<session>> live;
    for (const auto& [token, weak] : sessions_) {
        if (auto s = weak.lock()) {
            live.push_back(std::move(s));
        }
    }
    return live;
}

void fill_random(std::span<std::uint8_t> bytes) {
    std::size_t filled = 0;
    while (filled < bytes.size()) {
        const ssize_t got = ::getrandom(bytes.data() + filled, bytes.size() - filled, 0);
        if (got < 0) {
            if (errno == EINTR) {
                continue;
            }
            throw std::runtime_error("getrandom failed: " + std::string(std::strerror(errno)));
        }
        filled += static_cast<std::size_t>(got);
    }
}

proto::session_token make_session_token() {
    proto::session_token token{};
    fill_random(token);
    return token;
}

}  // namespace speed::server
