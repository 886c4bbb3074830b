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
endif()
