// co_spawn with a completion handler that logs: asio::detached would swallow an exception silently.
#pragma once

#include <spdlog/spdlog.h>
#include <asio/co_spawn.hpp>
#include <exception>
#include <string>

namespace speed::net {

// A completion handler for co_spawn that logs an escaping exception under `what` instead of losing it.
inline auto log_if_failed(std::string what) {
    return [what = std::move(what)](std::exception_ptr failure) {
        if (!failure) {
            return;
        }
        try {
            std::rethrow_exception(failure);
        } catch (const std::exception& e) {
            spdlog::error("{}: {}", what, e.what());
        } catch (...) {
            spdlog::error("{}: unknown exception", what);
        }
    };
}

}  // namespace speed::net
