#include "common/congestion_list.hpp"

namespace speed {

bool congestion_listed(std::string_view list, std::string_view name) {
    constexpr std::string_view kSpace = " \t\n";
    if (name.empty()) {
        return false;
    }
    std::size_t at = list.find_first_not_of(kSpace);
    while (at != std::string_view::npos) {
        const std::size_t end = list.find_first_of(kSpace, at);
        const std::string_view entry = list.substr(at, end == std::string_view::npos ? list.npos : end - at);
        if (entry == name) {
            return true;
        }
        at = end == std::string_view::npos ? end : list.find_first_not_of(kSpace, end);
    }
    return false;
}

}  // namespace speed
