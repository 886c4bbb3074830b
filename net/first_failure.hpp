// Two coroutines side by side with asio's awaitable_operators `&&`: when one fails, `&&` cancels the other,
// and when that one then ends with an error of its own (the cancellation), `&&` throws
// asio::multiple_exceptions holding its *first operand's* failure, which may be that cancellation: the peer's
// ERROR or a deadline would be reported as "multiple exceptions". Wrapping each operand in noting_failure()
// and rethrowing with first_failure::rethrow() reports the peer's ERROR if one was read, else the failure
// that came first.
//
//     net::first_failure failure;
//     try {
//         result = co_await (net::noting_failure(a(), failure) && net::noting_failure(b(), failure));
//     } catch (...) {
//         failure.rethrow();
//     }
#pragma once

#include <asio/awaitable.hpp>
#include <exception>
#include <utility>

#include "net/errors.hpp"

namespace speed::net {

class first_failure {
  public:
    void note(std::exception_ptr failure) {
        if (!peer_ && from_peer(failure)) {
            peer_ = failure;
        }
        if (!first_) {
            first_ = std::move(failure);
        }
    }
    // The peer's ERROR if either operand read one, else the failure noted first, or nothing. The peer's
    // reason wins over a local failure that came a moment earlier: a server writes ERROR and then closes the
    // data connections, and the reset can overtake the ERROR.
    std::exception_ptr first() const { return peer_ ? peer_ : first_; }
    // The same, else the exception being handled: call it only inside a catch block.
    [[noreturn]] void rethrow() const {
        if (const auto failure = first()) {
            std::rethrow_exception(failure);
        }
        throw;
    }

  private:
    static bool from_peer(const std::exception_ptr& failure) {
        try {
            std::rethrow_exception(failure);
        } catch (const session_error& e) {
            return e.from_peer();
        } catch (...) {
            return false;
        }
    }
    std::exception_ptr first_;
    std::exception_ptr peer_;
};

template <class T>
asio::awaitable<T> noting_failure(asio::awaitable<T> operation, first_failure& failure) {
    try {
        co_return co_await std::move(operation);
    } catch (...) {
        failure.note(std::current_exception());
        throw;
    }
}

inline asio::awaitable<void> noting_failure(asio::awaitable<void> operation, first_failure& failure) {
    try {
        co_await std::move(operation);
    } catch (...) {
        failure.note(std::current_exception());
        throw;
    }
}

}  // namespace speed::net
