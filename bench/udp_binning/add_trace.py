#!/usr/bin/env python3
"""Adds a measurement-only trace to a checkout (never commit the result): with SPEED_WAIT_TRACE=DIR in the
environment, each UDP receiver flow writes DIR/flow-PID-STREAM.bin (int64 triples per datagram: kernel arrival
stamp, the time the batch holding it was counted, bytes) and the window sampler appends "time0 boundary" lines to
DIR/samples-PID.txt. analyze.py turns them into read-time and arrival-time bins. Run from the checkout's root."""
import re

def patch(path, pairs):
    text = open(path).read()
    for old, new in pairs:
        if old not in text:
            raise SystemExit(f"{path}: cannot find {old[:60]!r}")
        text = text.replace(old, new, 1)
    open(path, "w").write(text)

patch("net/udp_flow.cpp", [
    ("#include <mutex>\n", "#include <mutex>\n#include <unistd.h>\n#include <cstdio>\n#include <cstdlib>\n#include <string>\n"),
    ("""            receiver.for_each([&self](std::span<const std::uint8_t> datagram, std::int64_t arrival_ns,
                                      bool timed) { self->on_datagram(datagram, arrival_ns, timed); });
            self->socket_drops_ = receiver.socket_drops();
            self->publish();""",
     """            const std::size_t trace_first = self->trace_.size();
            receiver.for_each([&self](std::span<const std::uint8_t> datagram, std::int64_t arrival_ns,
                                      bool timed) { self->on_datagram(datagram, arrival_ns, timed);
                if (self->tracing_ && self->accounting_ && self->accounting_->is_ready()) self->trace_.push_back({arrival_ns, 0, static_cast<std::int64_t>(datagram.size())}); });
            self->socket_drops_ = receiver.socket_drops();
            const std::int64_t publish_ns = now_ns();
            for (std::size_t t = trace_first; t < self->trace_.size(); ++t) self->trace_[t][1] = publish_ns;
            self->publish();"""),
    ("""            asio::error_code ignored;
            self->socket_.close(ignored);""",
     """            if (self->tracing_ && !self->trace_.empty()) {
                const std::string path = std::string(std::getenv("SPEED_WAIT_TRACE")) + "/flow-" + std::to_string(::getpid()) + "-" + std::to_string(self->index_) + ".bin";
                if (FILE* f = std::fopen(path.c_str(), "wb")) { std::fwrite(self->trace_.data(), sizeof(self->trace_[0]), self->trace_.size(), f); std::fclose(f); }
            }
            asio::error_code ignored;
            self->socket_.close(ignored);"""),
    ("""    std::int64_t last_feedback_ns_ = 0;
};""", """    std::int64_t last_feedback_ns_ = 0;
  public:
    bool tracing_ = std::getenv("SPEED_WAIT_TRACE") != nullptr;
    std::vector<std::array<std::int64_t, 3>> trace_;
};"""),
])
patch("net/udp_window.cpp", [
    ("#include <cmath>\n", "#include <cmath>\n#include <cstdio>\n#include <cstdlib>\n#include <unistd.h>\n#include <string>\n"),
    ("""        for (std::size_t i = 0; i < streams; ++i) {
            bytes[i] = counters[i].bytes_received;
        }""", """        for (std::size_t i = 0; i < streams; ++i) {
            bytes[i] = counters[i].bytes_received;
        }
        if (const char* dir = std::getenv("SPEED_WAIT_TRACE")) {
            if (FILE* f = std::fopen((std::string(dir) + "/samples-" + std::to_string(::getpid()) + ".txt").c_str(), "a")) { std::fprintf(f, "%lld %lld\\n", static_cast<long long>(time_zero_ns), static_cast<long long>(boundary_ns)); std::fclose(f); }
        }"""),
])
