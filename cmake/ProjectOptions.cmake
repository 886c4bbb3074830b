# Warnings and build options as INTERFACE targets: every project target links speed::warnings and
# speed::options, third-party code does not.

add_library(speed_warnings INTERFACE)
add_library(speed::warnings ALIAS speed_warnings)
target_compile_options(speed_warnings INTERFACE
    -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Wsign-conversion -Wold-style-cast
    -Wnon-virtual-dtor -Woverloaded-virtual -Wdouble-promotion -Wformat=2
    -Wimplicit-fallthrough -Wcast-align -Wunused)
if(CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # GCC 12 at -O2 reports a false -Wmismatched-new-delete inside Asio's awaitable frames, and a false
    # -Wrestrict on std::string concatenation (GCC PR 105329).
    target_compile_options(speed_warnings INTERFACE -Wno-mismatched-new-delete -Wno-restrict -Wduplicated-cond
                                                    -Wlogical-op -Wuseless-cast)
endif()
if(SPEED_WARNINGS_AS_ERRORS)
    target_compile_options(speed_warnings INTERFACE -Werror)
endif()
if(SPEED_ENABLE_SANITIZERS AND CMAKE_CXX_COMPILER_ID STREQUAL "GNU")
    # GCC 12 with -fsanitize=address at -O2 reports a false -Wmaybe-uninitialized inside libstdc++'s std::regex
    # (std::function moved in _NFA::_M_insert_*), which tests/support/process.cpp uses.
    target_compile_options(speed_warnings INTERFACE -Wno-maybe-uninitialized)
endif()

add_library(speed_options INTERFACE)
add_library(speed::options ALIAS speed_options)
target_compile_features(speed_options INTERFACE cxx_std_20)
if(SPEED_BUILD_FUZZERS)
    if(NOT CMAKE_CXX_COMPILER_ID STREQUAL "Clang")
        message(FATAL_ERROR "SPEED_BUILD_FUZZERS needs clang (libFuzzer): use the 'fuzz' preset or ./scripts/fuzz, "
                            "with the Debian packages clang-14 and libclang-rt-14-dev")
    endif()
    # Coverage for libFuzzer on every project library, with ASan and UBSan; the harnesses link the fuzzer.
    target_compile_options(speed_options INTERFACE -fsanitize=fuzzer-no-link,address,undefined
                                                   -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
    target_link_options(speed_options INTERFACE -fsanitize=address,undefined)
endif()
if(SPEED_ENABLE_SANITIZERS)
    # -O1 -g1 after the build type's -O2 -g: line tables are all the sanitizers' stack traces need, and the
    # build takes half the time, which keeps CI's sanitizer build within its budget.
    target_compile_options(speed_options INTERFACE -O1 -g1 -fsanitize=address,undefined -fno-omit-frame-pointer
                                                   -fno-sanitize-recover=undefined)
    target_link_options(speed_options INTERFACE -fsanitize=address,undefined)
    # For the test programs, which may be built without instrumentation (below) and so cannot ask the compiler
    # (__SANITIZE_ADDRESS__): the programs they test are slower and keep freed memory in quarantine.
    target_compile_definitions(speed_options INTERFACE SPEED_SANITIZED_BUILD=1)
endif()

# Test programs carry the target property SPEED_TEST_PROGRAM, and their optimisation and instrumentation follow
# from it (tests/CMakeLists.txt says which is which):
# - "driver": programs that only start speedsrv, speedcli and netem-tun and talk to them over sockets
#   (integration, robustness and netlab tests, their support library). What they test is compiled elsewhere with
#   the build's optimisation and instrumentation: they compile at -O0 and, in the sanitizer build, without
#   instrumentation (they still link the runtime their libraries need).
# - "unit": programs whose test files instantiate the pure code's templates. -O1 in the release build (they time
#   nothing); -O0 in the sanitizer build, instrumented (the sanitizers miss nothing at -O0, and the unit tests run
#   in seconds either way).
# A generator expression on the options every target links puts these flags after the build type's and the
# sanitizer build's, where the last -O and -fsanitize win. A target's own options come first on the command line:
# `target_compile_options(t PRIVATE -fno-sanitize=all)` was undone by the -fsanitize after it, so from a40e4bf the
# sanitizer build still instrumented the drivers at three times the compile time
# (tests/integration/test_iperf3_clients.cpp: 46.7 CPU s instrumented at -O1, 14.7 uninstrumented at -O1, 9.3
# uninstrumented at -O0; tests/unit/test_protocol.cpp instrumented: 46.1 at -O1, 14.6 at -O0).
set(speed_test_driver "$<STREQUAL:$<TARGET_PROPERTY:SPEED_TEST_PROGRAM>,driver>")
set(speed_unit_test "$<STREQUAL:$<TARGET_PROPERTY:SPEED_TEST_PROGRAM>,unit>")
target_compile_options(speed_options INTERFACE "$<${speed_test_driver}:-O0>")
if(SPEED_ENABLE_SANITIZERS)
    target_compile_options(speed_options INTERFACE "$<${speed_test_driver}:-fno-sanitize=all>"
                                                   "$<${speed_unit_test}:-O0>")
else()
    target_compile_options(speed_options INTERFACE "$<${speed_unit_test}:-O1>")
endif()

# Precompiled headers: the third-party headers most translation units of a target include (Asio, spdlog, Catch2,
# nlohmann-json) are parsed once per target instead of once per file. CI's fresh builds have no compiler cache:
# the ci preset turns this on. Local builds use ccache, which caches a compile with a precompiled header only when
# CCACHE_SLOPPINESS has pch_defines,time_macros (without it they compile, uncached), so the other presets do not.
option(SPEED_PRECOMPILE_HEADERS "Precompile the heavy third-party headers per target (the ci preset turns it on)" OFF)
# The Asio headers that the coroutine code of net/, server/ and client/ includes.
set(SPEED_ASIO_PCH_HEADERS "<asio/awaitable.hpp>" "<asio/co_spawn.hpp>" "<asio/experimental/as_tuple.hpp>"
    "<asio/ip/tcp.hpp>" "<asio/ip/udp.hpp>" "<asio/steady_timer.hpp>" "<asio/use_awaitable.hpp>")
function(speed_precompile_headers target)
    if(SPEED_PRECOMPILE_HEADERS)
        target_precompile_headers(${target} PRIVATE ${ARGN})
    endif()
endfunction()
