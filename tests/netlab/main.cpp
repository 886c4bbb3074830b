// The netlab test runner: Catch2, but every test is reported to ctest as skipped (exit code 77, ctest's
// SKIP_RETURN_CODE) with the reason on stdout when this machine cannot run the namespace lab. Where the lab
// must run (CI sets SPEED_NETLAB_REQUIRED=1), the same reason fails the test instead.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <string_view>

#include "tests/netlab/netlab.hpp"

int main(int argc, char** argv) {
    // Test discovery (--list-test-names-only and friends) must work anywhere.
    bool listing = false;
    for (int i = 1; i < argc; ++i) {
        listing = listing || std::string_view(argv[i]).rfind("--list", 0) == 0;
    }
    if (!listing) {
        if (const std::string reason = speed::netlab::unavailable_reason(); !reason.empty()) {
            speed::netlab::skip_test(reason);
        }
    }
    return Catch::Session().run(argc, argv);
}
