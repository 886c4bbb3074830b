// Two coroutines side by side with asio's awaitable_operators `&&`: when one fails, `&&` cancels the other,
// and when that one then ends with an error of its own (the cancellation), `&&` throws
// asio::multiple_exceptions holding its *first operand's* failure, which may be that cancellation: the peer's
// ERROR or a deadline would be reported as "multiple exceptions". Wrapping each operand in noting_failure()
// and rethrowing with first_failure::rethrow() reports the failure that came first instead.
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

namespace speed::net {

class first_failure {
  public:
    void note(std::exception_ptr failure) {
        if (!first_) {
            first_ = std::move(failure);
        }
    }
    // The failure noted first, or nothing.
    std::exception_ptr first() const { return first_; }
    // The failure noted first, else the exception being handled: call it only inside a catch block.
    [[noreturn]] void rethrow() const {
        if (first_) {
            std::rethrow_exception(first_);
        }
        throw;
    }

  private:
    std::exception_ptr first_;
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
