// Text a peer chose (its software string, an ERROR message, a key name) made safe to write into a log: a
// client must not be able to forge log lines (newlines) or drive an operator's terminal (ANSI escapes).
#pragma once

#include <string>
#include <string_view>

namespace speed {

// `text` with every byte outside printable ASCII (0x20..0x7e) written as \xNN and each backslash doubled, so
// the result is one line of printable ASCII and the original bytes can be read back from it.
std::string escape_for_log(std::string_view text);

}  // namespace speed
