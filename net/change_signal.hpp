// "Something changed", from any thread to one coroutine waiting on the control executor (a stream or flow
// attached, ended, failed, received its first byte).
//
// The waiting side owns the signal, and with it the timer, an io object of the control context. Notifiers
// (streams and flows on data-plane threads) hold only a weak reference: their last handlers may run after the
// session that owned the group has gone, and must not keep a control-context timer alive past its context.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/awaitable.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>
#include <memory>

#include "net/clock.hpp"

namespace speed::net {

class change_signal {
  public:
    explicit change_signal(const asio::any_io_executor& control) : timer_(control) {}

    // Any thread: wakes wait() on `control`, if the signal still exists when the wake-up runs there.
    static void notify(const std::weak_ptr<change_signal>& signal, const asio::any_io_executor& control) {
        asio::post(control, [signal] {
            if (auto alive = signal.lock()) {
                alive->pending_ = true;
                alive->timer_.cancel();
            }
        });
    }

    // Control executor: waits until notified or `deadline`; true when something changed since the last wait.
    asio::awaitable<bool> wait(clock::time_point deadline) {
        if (!pending_) {
            timer_.expires_at(deadline);
            co_await timer_.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
        }
        const bool changed = pending_;
        pending_ = false;
        co_return changed;
    }

  private:
    asio::steady_timer timer_;
    bool pending_ = false;
};

}  // namespace speed::net
