#include "tests/support/iperf3.hpp"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <regex>

#include "tests/support/process.hpp"

namespace speed::testing {

const std::string& iperf3_binary() {
    static const std::string path = [] {
        const char* chosen = std::getenv("SPEED_IPERF3");
        return std::string(chosen != nullptr && *chosen != '\0' ? chosen : "/usr/bin/iperf3");
    }();
    return path;
}

std::optional<iperf3_version> parse_iperf3_version(const std::string& version_output) {
    static const std::regex first_line("^iperf ([0-9]+)\\.([0-9]+)(\\.([0-9]+))?");
    std::smatch match;
    if (!std::regex_search(version_output, match, first_line)) {
        return std::nullopt;
    }
    return iperf3_version{std::stoi(match[1].str()), std::stoi(match[2].str()),
                          match[4].matched ? std::stoi(match[4].str()) : 0};
}

std::optional<iperf3_version> iperf3_binary_version() {
    static const std::optional<iperf3_version> version = []() -> std::optional<iperf3_version> {
        if (::access(iperf3_binary().c_str(), X_OK) != 0) {
            return std::nullopt;
        }
        const process_result run = run_process({iperf3_binary(), "--version"}, std::chrono::seconds(10));
        return parse_iperf3_version(run.out);
    }();
    return version;
}

bool have_iperf3() {
    if (::access(iperf3_binary().c_str(), X_OK) != 0) {
        std::printf("SKIP: %s is not an executable iperf3 (install Debian's iperf3, or set SPEED_IPERF3)\n",
                    iperf3_binary().c_str());
        std::fflush(stdout);
        return false;
    }
    if (!iperf3_binary_version()) {
        std::printf("SKIP: %s --version names no iperf3 version\n", iperf3_binary().c_str());
        std::fflush(stdout);
        return false;
    }
    return true;
}

bool iperf3_at_least(const iperf3_version& version) {
    const auto own = iperf3_binary_version();
    return own && *own >= version;
}

bool skip_unless_iperf3_at_least(const iperf3_version& version, const std::string& why) {
    if (iperf3_at_least(version)) {
        return true;
    }
    const auto own = iperf3_binary_version().value_or(iperf3_version{});
    std::printf("SKIP: %s is iperf3 %d.%d.%d: %s\n", iperf3_binary().c_str(), own.major, own.minor, own.patch,
                why.c_str());
    std::fflush(stdout);
    return false;
}

}  // namespace speed::testing
