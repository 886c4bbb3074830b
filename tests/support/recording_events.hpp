// A fake events sink for speedcli's direction runners (client/runners/direction_runner.hpp): it notes every
// event in order, with the figures it carries, for tests to compare with the exact sequence they expect.
#pragma once

#include <string>
#include <vector>

#include "client/runners/direction_runner.hpp"

namespace speed::testing {

// Notes every event, in order, with the figures it carries.
class recording_events final : public speed::client::direction_events {
  public:
    std::vector<std::string> seen;

    // The events without their figures ("ready", "interval", ...), for runs whose figures vary.
    std::vector<std::string> kinds() const {
        std::vector<std::string> names;
        for (const auto& event : seen) {
            names.push_back(event.substr(0, event.find(' ')));
        }
        return names;
    }

    void ready(const speed::client::direction_report& report) override {
        seen.push_back("ready congestion=" + report.congestion);
    }
    void interval(const speed::client::interval_report& closed) override {
        seen.push_back("interval bytes=" + std::to_string(closed.bytes));
    }
    asio::awaitable<void> window_closed(speed::client::direction_report& report) override {
        seen.push_back("window_closed intervals=" + std::to_string(report.intervals.size()));
        co_return;
    }
    void result(const speed::client::direction_report& report) override {
        seen.push_back("result bytes=" + std::to_string(report.bytes));
    }
};

}  // namespace speed::testing
