// The IP TOS byte speedcli marks its data with (-S/--tos, --dscp), as iperf3 reads those flags.
#pragma once

#include <cstdint>
#include <string_view>

#include "common/result.hpp"

namespace speed::tos {

// -S: the whole TOS byte, 0-255, in decimal, hex (0x..) or octal (0..), as iperf3 and C read numbers.
result<std::uint8_t> parse_tos(std::string_view text);

// --dscp: a DSCP code point, 0-63 or its name (EF, VA, CS0-CS7, AF11-AF43, LE; any case), as the TOS byte
// it makes (the code point in its upper six bits, ECN 0).
result<std::uint8_t> parse_dscp(std::string_view text);

}  // namespace speed::tos
