// Loading a key file (format in common/auth.hpp) for speedsrv --auth-keys and speedcli --auth-key.
#pragma once

#include <string>
#include <vector>

#include "common/auth.hpp"
#include "common/result.hpp"

namespace speed::config {

// Reads and parses the key file at `path` after checking that it is private, as ssh does for its keys: a
// regular file, owned by the user running the program (or root), with no permission bits for group or others
// (e.g. mode 0600 or 0400). Returns the keys or a sentence for the user.
result<std::vector<auth::key>> load_key_file(const std::string& path);

}  // namespace speed::config
