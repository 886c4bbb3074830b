#include "client/auth.hpp"

#include "config/key_file.hpp"
#include "net/errors.hpp"
#include "net/random.hpp"

namespace speed::client {

result<auth::key> load_client_key(const std::string& path, const std::string& name) {
    auto loaded = config::load_key_file(path);
    if (!loaded) {
        return failure{std::move(loaded).error()};
    }
    auto& keys = *loaded;
    if (name.empty()) {
        if (keys.size() != 1) {
            return failure{"key file " + path + " holds " + std::to_string(keys.size()) +
                           " keys: choose one with --auth-key-name"};
        }
        return std::move(keys.front());
    }
    if (const auth::key* chosen = auth::find_key(keys, name)) {
        return *chosen;
    }
    return failure{"key file " + path + " has no key named '" + name + "'"};
}

namespace {

// Tells the server why the session ends here, then ends it.
asio::awaitable<void> refuse(net::control_channel& control, std::string reason) {
    co_await control.send_error_quietly(proto::error_code::auth_failed, reason);
    throw net::session_error(proto::error_code::auth_failed, reason);
}

}  // namespace

asio::awaitable<void> authenticate(net::control_channel& control, const proto::welcome& welcome,
                                   client_auth& state, net::clock::time_point deadline) {
    auth::client_handshake handshake(state.key);
    switch (handshake.on_welcome(welcome, control.last_frame())) {
        case auth::client_handshake::next_step::go_on:
            co_return;
        case auth::client_handshake::next_step::refuse_no_key: {
            const std::string reason = "the client has no key (speedcli --auth-key)";
            co_await control.send_error_quietly(proto::error_code::auth_failed, reason);
            throw net::session_error(proto::error_code::auth_failed,
                                     "the server requires authentication: pass --auth-key FILE");
        }
        case auth::client_handshake::next_step::refuse_downgrade: {
            const std::string reason =
                "the server does not ask for authentication although the client has a key (--auth-key): it "
                "cannot prove that it holds the key, so the client refuses it";
            co_await refuse(control, reason);
            co_return;  // refuse() always throws
        }
        case auth::client_handshake::next_step::authenticate:
            break;
    }
    const auto challenge = co_await control.expect<proto::auth_challenge>(deadline, "AUTH_CHALLENGE");
    proto::auth_nonce client_nonce{};
    net::fill_random(client_nonce);
    const proto::auth_response response = handshake.on_challenge(challenge, client_nonce);
    co_await control.write(response, deadline);
    const auto accepted = co_await control.expect<proto::auth_ok>(deadline, "AUTH_OK");
    if (!handshake.server_proven(accepted)) {
        const std::string reason =
            "the server's AUTH_OK does not prove that it holds the key '" + state.key->name() + "': refused";
        co_await refuse(control, reason);
    }
    control.check_read_reports(handshake.report_checker());
    state.nonces = handshake.nonces();
    state.active = true;
}

asio::awaitable<void> send_test_request(net::control_channel& control, client_auth& state,
                                        const proto::test_request& request, net::clock::time_point deadline) {
    co_await control.write(request, deadline);
    ++state.requests;
    if (state.active) {
        const proto::test_auth tag{auth::test_mac(*state.key, state.nonces, state.requests, request)};
        co_await control.write(tag, deadline);
    }
}

}  // namespace speed::client
