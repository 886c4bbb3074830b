# Every dependency comes from a Debian 12 package. When one is missing, say which package provides it.

find_package(Threads REQUIRED)

macro(speed_require_package name debian_package)
    find_package(${name} ${ARGN} QUIET)
    if(NOT ${name}_FOUND)
        message(FATAL_ERROR "${name} not found: install the Debian package '${debian_package}' "
                            "(sudo apt-get install ${debian_package}), or run ./scripts/test which does it for you.")
    endif()
endmacro()

# Standalone Asio ships no CMake config: find the header and wrap it in an INTERFACE target.
find_path(ASIO_INCLUDE_DIR NAMES asio.hpp)
if(NOT ASIO_INCLUDE_DIR)
    message(FATAL_ERROR "standalone Asio (asio.hpp) not found: install the Debian package 'libasio-dev'.")
endif()
add_library(speed_asio INTERFACE)
add_library(speed::asio ALIAS speed_asio)
target_include_directories(speed_asio SYSTEM INTERFACE ${ASIO_INCLUDE_DIR})
# ASIO_HAS_CO_AWAIT lets clang 14 tools (clang-tidy, libFuzzer builds) see the coroutine support g++ 12 detects.
# ASIO_DISABLE_STD_ALIGNED_ALLOC: Asio 1.22 decides between aligned_alloc/free and operator new/delete per
# translation unit, depending on whether a libstdc++ header came first; two units deciding differently hand memory
# from one allocator to the other (ASan: alloc-dealloc-mismatch, then a double free). One choice for all units.
target_compile_definitions(speed_asio INTERFACE ASIO_STANDALONE ASIO_NO_DEPRECATED ASIO_HAS_CO_AWAIT=1
                                                ASIO_DISABLE_STD_ALIGNED_ALLOC)
target_link_libraries(speed_asio INTERFACE Threads::Threads)

# libcrypto for HMAC-SHA256 and constant-time comparison (authentication, common/auth.cpp).
find_package(OpenSSL QUIET COMPONENTS Crypto)
if(NOT OpenSSL_FOUND)
    message(FATAL_ERROR "OpenSSL libcrypto not found: install the Debian package 'libssl-dev' "
                        "(sudo apt-get install libssl-dev), or run ./scripts/test which does it for you.")
endif()

speed_require_package(CLI11 libcli11-dev CONFIG)
speed_require_package(fmt libfmt-dev CONFIG)
speed_require_package(spdlog libspdlog-dev CONFIG)
speed_require_package(nlohmann_json nlohmann-json3-dev 3 CONFIG)
if(SPEED_BUILD_TESTS)
    speed_require_package(Catch2 catch2 2 CONFIG)
endif()
