#include "net/io_pool.hpp"

#include <pthread.h>

namespace speed::net {

io_pool::io_pool(std::size_t threads) {
    if (threads == 0) {
        threads = 1;
    }
    for (std::size_t i = 0; i < threads; ++i) {
        // Concurrency hint 1: each context is run by exactly one thread, so Asio can skip internal locking.
        contexts_.push_back(std::make_unique<asio::io_context>(1));
        guards_.emplace_back(asio::make_work_guard(*contexts_.back()));
    }
}

io_pool::~io_pool() {
    stop();
}

void io_pool::start(const std::string& name) {
    for (std::size_t i = 0; i < contexts_.size(); ++i) {
        threads_.emplace_back([this, i, name] {
            const std::string thread_name = (name + "-" + std::to_string(i)).substr(0, 15);
            pthread_setname_np(pthread_self(), thread_name.c_str());
            contexts_[i]->run();
        });
    }
}

asio::io_context& io_pool::next() {
    const std::size_t index = next_.fetch_add(1, std::memory_order_relaxed) % contexts_.size();
    return *contexts_[index];
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

std::size_t default_thread_count() {
    const unsigned hardware = std::thread::hardware_concurrency();
    return hardware == 0 ? 1 : hardware;
}

}  // namespace speed::net
