#include "server/session_registry.hpp"

#include <cstring>
#include <stdexcept>

#include "net/random.hpp"
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

proto::session_token make_session_token() {
    proto::session_token token{};
    net::fill_random(token);
    return token;
}

}  // namespace speed::server
