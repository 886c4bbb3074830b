#include "net/io_pool.hpp"

#include <pthread.h>

#include <asio/post.hpp>

namespace speed::net {

namespace {

std::int64_t steady_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
}

}  // namespace

io_pool::io_pool(std::size_t threads, std::chrono::steady_clock::duration heartbeat_interval)
    : heartbeat_interval_(heartbeat_interval) {
    if (threads == 0) {
        threads = 1;
    }
    heartbeats_ns_ = std::make_unique<std::atomic<std::int64_t>[]>(threads);
    for (std::size_t i = 0; i < threads; ++i) {
        // Concurrency hint 1: each context is run by exactly one thread, so Asio can skip internal locking.
        contexts_.push_back(std::make_unique<asio::io_context>(1));
        guards_.emplace_back(asio::make_work_guard(*contexts_.back()));
        heartbeat_timers_.push_back(std::make_unique<asio::steady_timer>(*contexts_.back()));
        heartbeats_ns_[i].store(steady_ns(), std::memory_order_relaxed);
    }
    finished_.assign(threads, false);
}

io_pool::~io_pool() {
    stop();
}

void io_pool::beat(std::size_t index) {
    heartbeats_ns_[index].store(steady_ns(), std::memory_order_relaxed);
    auto& timer = *heartbeat_timers_[index];
    timer.expires_after(heartbeat_interval_);
    timer.async_wait([this, index](const asio::error_code& ec) {
        if (!ec) {
            beat(index);
        }
    });
}

void io_pool::start(const std::string& name) {
    for (std::size_t i = 0; i < contexts_.size(); ++i) {
        // The first beat runs on the thread itself, like every later one.
        asio::post(*contexts_[i], [this, i] { beat(i); });
        threads_.emplace_back([this, i, name] {
            const std::string thread_name = (name + "-" + std::to_string(i)).substr(0, 15);
            pthread_setname_np(pthread_self(), thread_name.c_str());
            contexts_[i]->run();
            std::lock_guard lock(finished_mutex_);
            finished_[i] = true;
            finished_changed_.notify_all();
        });
    }
}

asio::io_context& io_pool::next() {
    const std::size_t index = next_.fetch_add(1, std::memory_order_relaxed) % contexts_.size();
    return *contexts_[index];
}

std::vector<std::size_t> io_pool::stuck_threads(std::chrono::steady_clock::duration bound) const {
    const std::int64_t oldest_fresh =
        steady_ns() - std::chrono::duration_cast<std::chrono::nanoseconds>(bound).count();
    std::vector<std::size_t> stuck;
    for (std::size_t i = 0; i < contexts_.size(); ++i) {
        if (heartbeats_ns_[i].load(std::memory_order_relaxed) < oldest_fresh) {
            stuck.push_back(i);
        }
    }
    return stuck;
}

void io_pool::stop() {
    guards_.clear();
    for (auto& context : contexts_) {
        context->stop();
    }
    for (auto& thread : threads_) {
        if (thread.joinable()) {
            thread.join();
        }
    }
    threads_.clear();
}

bool io_pool::stop(std::chrono::steady_clock::time_point deadline) {
    guards_.clear();
    for (auto& context : contexts_) {
        context->stop();
    }
    std::unique_lock lock(finished_mutex_);
    const bool all = finished_changed_.wait_until(lock, deadline, [this] {
        for (std::size_t i = 0; i < threads_.size(); ++i) {
            if (threads_[i].joinable() && !finished_[i]) {
                return false;
            }
        }
        return true;
    });
    for (std::size_t i = 0; i < threads_.size(); ++i) {
        if (!threads_[i].joinable()) {
            continue;
        }
        if (finished_[i]) {
            threads_[i].join();
        } else {
            threads_[i].detach();  // stuck in a handler: it goes with the process
        }
    }
    return all;
}

std::size_t default_thread_count() {
    const unsigned hardware = std::thread::hardware_concurrency();
    return hardware == 0 ? 1 : hardware;
}

}  // namespace speed::net
