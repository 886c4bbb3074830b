#include "client/auth.hpp"

#include "net/errors.hpp"
#include "net/key_file.hpp"

namespace speed::client {

std::variant<auth::key, std::string> load_client_key(const std::string& path, const std::string& name) {
    auto loaded = net::load_key_file(path);
    if (auto* failure = std::get_if<std::string>(&loaded)) {
        return *failure;
    }
    auto& keys = std::get<std::vector<auth::key>>(loaded);
    if (name.empty()) {
        if (keys.size() != 1) {
            return "key file " + path + " holds " + std::to_string(keys.size()) +
                   " keys: choose one with --auth-key-name";
        }
        return std::move(keys.front());
    }
    if (const auth::key* chosen = auth::find_key(keys, name)) {
        return *chosen;
    }
    return "key file " + path + " has no key named '" + name + "'";
}

asio::awaitable<void> authenticate(net::control_channel& control, const proto::welcome& welcome,
                                   client_auth& state, net::clock::time_point deadline) {
    if (!welcome.auth_required) {
        co_return;  // a key the server does not ask for is simply not used
    }
    if (state.key == nullptr) {
        const std::string reason = "the client has no key (speedcli --auth-key)";
        co_await control.send_error_quietly(proto::error_code::auth_failed, reason);
        throw net::session_error(proto::error_code::auth_failed,
                                 "the server requires authentication: pass --auth-key FILE");
    }
    const auto challenge = co_await control.expect<proto::auth_challenge>(deadline, "AUTH_CHALLENGE");
    state.nonce = challenge.nonce;
    const proto::auth_response response{state.key->name(), auth::session_mac(*state.key, state.nonce)};
    co_await control.write(response, deadline);
    co_await control.expect<proto::auth_ok>(deadline, "AUTH_OK");
    state.active = true;
}

asio::awaitable<void> send_test_request(net::control_channel& control, client_auth& state,
                                        const proto::test_request& request, net::clock::time_point deadline) {
    co_await control.write(request, deadline);
    ++state.requests;
    if (state.active) {
        const proto::test_auth tag{auth::test_mac(*state.key, state.nonce, state.requests, request)};
        co_await control.write(tag, deadline);
    }
}

}  // namespace speed::client
