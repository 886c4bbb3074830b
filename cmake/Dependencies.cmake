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

# RESTinio (header-only, standalone Asio) serves speedsrv --http-port (server/web_server.cpp). Its CMake target
# is not used: it defines ASIO_DISABLE_STD_STRING_VIEW, which would give the translation units that include
# RESTinio another Asio than the rest of the program. Its two libraries are linked here instead.
find_path(RESTINIO_INCLUDE_DIR NAMES restinio/all.hpp)
find_library(HTTP_PARSER_LIBRARY NAMES http_parser)
if(NOT RESTINIO_INCLUDE_DIR OR NOT HTTP_PARSER_LIBRARY)
    message(FATAL_ERROR "RESTinio not found: install the Debian package 'librestinio-dev' (it brings "
                        "libhttp-parser-dev).")
endif()
add_library(speed_restinio INTERFACE)
add_library(speed::restinio ALIAS speed_restinio)
target_include_directories(speed_restinio SYSTEM INTERFACE ${RESTINIO_INCLUDE_DIR})
target_link_libraries(speed_restinio INTERFACE speed::asio fmt::fmt ${HTTP_PARSER_LIBRARY})

# Chart.js 3 (minified) from Debian's libjs-chart.js (MIT licence): embedded by speedcli --report and served by
# speedsrv --http-port; nothing is downloaded.
set(SPEED_CHART_JS /usr/share/javascript/chart.js/chart.min.js CACHE FILEPATH
    "Chart.js 3 (minified) that speedcli --report and speedsrv --http-port embed (Debian: libjs-chart.js)")
if(NOT EXISTS "${SPEED_CHART_JS}")
    message(FATAL_ERROR "${SPEED_CHART_JS} not found: install libjs-chart.js (or set SPEED_CHART_JS)")
endif()

# speed_embed_files(OUT_VARIABLE NAMESPACE "name|file|kind" ...): a C++ source per file defining
# `NAMESPACE::name` with its bytes (cmake/embed_file.cmake; kind "inline" or "page"). The sources go to
# OUT_VARIABLE. "file" may be several files joined by "+": their bytes one after the other (the browser test's
# style is the --report page's followed by its own).
function(speed_embed_files out_variable namespace)
    set(sources)
    foreach(asset IN LISTS ARGN)
        string(REPLACE "|" ";" asset "${asset}")
        list(GET asset 0 name)
        list(GET asset 1 input)
        list(GET asset 2 kind)
        set(output "${CMAKE_CURRENT_BINARY_DIR}/embedded_${name}.cpp")
        string(REPLACE "+" ";" inputs "${input}")
        add_custom_command(
            OUTPUT "${output}"
            COMMAND ${CMAKE_COMMAND} -DINPUT=${input} -DOUTPUT=${output} -DNAME=${name} -DNAMESPACE=${namespace}
                    -DKIND=${kind} -P ${PROJECT_SOURCE_DIR}/cmake/embed_file.cmake
            DEPENDS ${inputs} ${PROJECT_SOURCE_DIR}/cmake/embed_file.cmake
            COMMENT "Embedding ${input}"
            VERBATIM)
        list(APPEND sources "${output}")
    endforeach()
    set(${out_variable} ${sources} PARENT_SCOPE)
endfunction()
