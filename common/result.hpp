// The one error shape of pure code: a value, or the text that says why there is none.
//
// Pure code never throws (docs/architecture.md), so a function that can fail returns `result<T>`: either a T
// or a `failure` whose text is fit for a log line or an ERROR frame. It is a small std::expected<T,
// std::string> (C++23; GCC 12 has none): `return value;` succeeds, `return failure{"why"};` fails, callers
// test it like a pointer and read `*r` or `r.error()`.
#pragma once

#include <string>
#include <type_traits>
#include <utility>
#include <variant>

namespace speed {

// Why a result holds no value (the counterpart of std::unexpected). `code` is for failures a protocol puts on
// the wire as a number besides the text (iperf3's error codes); 0 where there is none.
struct failure {
    std::string text;
    int code = 0;
};

template <class T>
class [[nodiscard]] result {
  public:
    using value_type = T;

    // Any value a T can be made from succeeds (so `return hello{...};` works for a result<message>).
    template <class U = T>
    requires(std::is_constructible_v<T, U&&> && !std::is_same_v<std::remove_cvref_t<U>, failure> &&
             !std::is_same_v<std::remove_cvref_t<U>, result>) result(U&& value)
        : state_(std::in_place_index<0>, std::forward<U>(value)) {}
    result(failure why) : state_(std::in_place_index<1>, std::move(why)) {}

    bool has_value() const { return state_.index() == 0; }
    explicit operator bool() const { return has_value(); }

    // Only when has_value().
    T& operator*() & { return *std::get_if<0>(&state_); }
    const T& operator*() const& { return *std::get_if<0>(&state_); }
    T&& operator*() && { return std::move(*std::get_if<0>(&state_)); }
    T* operator->() { return std::get_if<0>(&state_); }
    const T* operator->() const { return std::get_if<0>(&state_); }

    // Only when !has_value().
    const std::string& error() const& { return std::get_if<1>(&state_)->text; }
    std::string&& error() && { return std::move(std::get_if<1>(&state_)->text); }
    int error_code() const { return std::get_if<1>(&state_)->code; }

    // As std::expected: equal to a value when it holds an equal one.
    template <class U>
    requires(!std::is_same_v<std::remove_cvref_t<U>, result>) friend bool operator==(const result& r,
                                                                                     const U& value) {
        return r.has_value() && *r == value;
    }

  private:
    std::variant<T, failure> state_;
};

}  // namespace speed
