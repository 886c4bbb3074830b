// speedcli's side of authentication (docs/protocol.md, "Authentication"): proves the --auth-key to a server
// that requires one and makes the server prove it too, tags every test request so it cannot be altered or
// replayed, and has the control channel check the tag of every report the server sends.
#pragma once

#include <asio/awaitable.hpp>
#include <cstdint>
#include <optional>
#include <string>

#include "common/auth.hpp"
#include "common/protocol.hpp"
#include "common/result.hpp"
#include "net/clock.hpp"
#include "net/control_channel.hpp"

namespace speed::client {

// Loads --auth-key FILE (checked like ssh keys: private to its owner) and picks the key called `name`, or the
// only key when `name` is empty. Returns the key or a sentence for the user.
result<auth::key> load_client_key(const std::string& path, const std::string& name);

// One session's authentication state.
struct client_auth {
    const auth::key* key = nullptr;  // --auth-key; null without one
    bool active = false;             // both sides proved the key
    auth::session_nonces nonces{};
    std::uint32_t requests = 0;  // TEST_REQUESTs sent in this session
};

// Right after WELCOME, while control.last_frame() still holds its bytes. With a key: reads AUTH_CHALLENGE,
// answers with a fresh nonce of its own and the key's proof, checks the server's proof in AUTH_OK, and has
// `control` check every report's tag from then on. Throws session_error(auth_failed) (after telling the
// server) when the server requires a key and there is none, when a client with a key meets a server that
// asks for none (no silent downgrade), when the server refuses the key, and when the server's proof is
// wrong.
asio::awaitable<void> authenticate(net::control_channel& control, const proto::welcome& welcome,
                                   client_auth& state, net::clock::time_point deadline);

// Sends a TEST_REQUEST followed, on an authenticated session, by its TEST_AUTH.
asio::awaitable<void> send_test_request(net::control_channel& control, client_auth& state,
                                        const proto::test_request& request, net::clock::time_point deadline);

}  // namespace speed::client
