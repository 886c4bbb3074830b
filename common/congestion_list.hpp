// The kernel's list of congestion controls a process may choose (/proc/sys/net/ipv4/
// tcp_allowed_congestion_control: names separated by spaces, a newline at the end). A client's choice is
// checked against it before setsockopt(TCP_CONGESTION): with CAP_NET_ADMIN the kernel would otherwise load
// the module "tcp_<name>" on the client's word.
#pragma once

#include <string_view>

namespace speed {

// Whether `name` is one of the names in `list` (whitespace-separated). An empty name is never listed.
bool congestion_listed(std::string_view list, std::string_view name);

}  // namespace speed
