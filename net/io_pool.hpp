// A pool of io_contexts, one thread each. Data-plane connections are spread over the pool round-robin so a
// multi-stream or multi-client test uses every core; a context per thread keeps each stream's handlers on one
// core without locks.
#pragma once

#include <asio/any_io_executor.hpp>
#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <atomic>
#include <cstddef>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace speed::net {

class io_pool {
  public:
    explicit io_pool(std::size_t threads);
    ~io_pool();
    io_pool(const io_pool&) = delete;
    io_pool& operator=(const io_pool&) = delete;

    // Starts the threads; `name` shows up in top/htop (at most 15 characters).
    void start(const std::string& name);
    // Picks the next context round-robin. Thread-safe.
    asio::io_context& next();
    std::size_t size() const { return contexts_.size(); }
    // Stops every context and joins the threads. Idempotent.
    void stop();

  private:
    using work_guard = asio::executor_work_guard<asio::io_context::executor_type>;
    std::vector<std::unique_ptr<asio::io_context>> contexts_;
    std::vector<work_guard> guards_;
    std::vector<std::thread> threads_;
    std::atomic<std::size_t> next_{0};
};

std::size_t default_thread_count();

}  // namespace speed::net
