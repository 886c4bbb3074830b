// speedcli's exit codes, documented in README.md. tests/integration/test_errors.cpp keeps its own copy on
// purpose: it checks them as a black-box contract.
#pragma once

namespace speed::client {

inline constexpr int kExitOk = 0;
inline constexpr int kExitTestFailed = 1;   // the test started but failed: lost connection, timeout, bad data
inline constexpr int kExitUsage = 2;        // invalid command line
inline constexpr int kExitUnreachable = 3;  // name not resolved, connection refused or timed out
inline constexpr int kExitRefused = 4;      // the server refused: busy, limits, version, authentication

}  // namespace speed::client
