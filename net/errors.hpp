// How a session fails. Every failure that ends a session (a timeout, a malformed frame, a peer's ERROR, a
// lost connection) is a session_error with a protocol error code and a sentence for the user or the log;
// nothing else is thrown across a session boundary.
#pragma once

#include <stdexcept>
#include <string>

#include "common/protocol.hpp"

namespace speed::net {

class session_error : public std::runtime_error {
  public:
    session_error(proto::error_code code, const std::string& message, bool from_peer = false)
        : std::runtime_error(message), code_(code), from_peer_(from_peer) {}

    proto::error_code code() const { return code_; }
    // True when the peer sent this as an ERROR frame (so there is no point sending it back).
    bool from_peer() const { return from_peer_; }

  private:
    proto::error_code code_;
    bool from_peer_;
};

}  // namespace speed::net
