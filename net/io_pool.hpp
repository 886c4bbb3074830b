// A pool of io_contexts, one thread each. Data-plane connections are spread over the pool round-robin so a
// multi-stream or multi-client test uses every core; a context per thread keeps each stream's handlers on one
// core without locks.
//
// Each thread proves it is alive: a timer on its context stamps a heartbeat every heartbeat interval, which
// only happens while the thread returns to its event loop. A thread whose heartbeat is old is stuck (a
// handler that never returns), and the control side stops reporting healthy (server/main.cpp, the systemd
// watchdog).
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace speed::net {

class io_pool {
  public:
    static constexpr std::chrono::milliseconds kDefaultHeartbeatInterval{100};

    explicit io_pool(std::size_t threads,
                     std::chrono::steady_clock::duration heartbeat_interval = kDefaultHeartbeatInterval);
    ~io_pool();
    io_pool(const io_pool&) = delete;
    io_pool& operator=(const io_pool&) = delete;

    // Starts the threads; `name` shows up in top/htop (at most 15 characters).
    void start(const std::string& name);
    // Picks the next context round-robin. Thread-safe.
    asio::io_context& next();
    // Context `index` (< size()), for tests that need a particular thread.
    asio::io_context& context(std::size_t index) { return *contexts_[index]; }
    std::size_t size() const { return contexts_.size(); }

    // The threads whose last heartbeat is older than `bound` (empty when all are alive). Thread-safe.
    std::vector<std::size_t> stuck_threads(std::chrono::steady_clock::duration bound) const;

    // Stops every context and joins the threads. Idempotent.
    void stop();
    // Stops every context and waits until `deadline` for the threads to end. False when one is still busy
    // then (a stuck handler): the threads that ended are joined, the rest are left to the process's exit.
    bool stop(std::chrono::steady_clock::time_point deadline);

  private:
    using work_guard = asio::executor_work_guard<asio::io_context::executor_type>;
    void beat(std::size_t index);

    std::chrono::steady_clock::duration heartbeat_interval_;
    std::vector<std::unique_ptr<asio::io_context>> contexts_;
    std::vector<work_guard> guards_;
    // Declared after the contexts: destroyed first.
    std::vector<std::unique_ptr<asio::steady_timer>> heartbeat_timers_;
    std::unique_ptr<std::atomic<std::int64_t>[]> heartbeats_ns_;  // steady_clock, per thread
    std::vector<std::thread> threads_;
    std::mutex finished_mutex_;
    std::condition_variable finished_changed_;
    std::vector<bool> finished_;
    std::atomic<std::size_t> next_{0};
};

std::size_t default_thread_count();

}  // namespace speed::net
