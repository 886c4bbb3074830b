// Printing a test: live lines and a summary for people, one JSON document for machines (docs/json.md).
#pragma once

#include <cstdio>
#include <nlohmann/json.hpp>

#include "client/progress.hpp"
#include "client/report.hpp"

namespace speed::client {

// The JSON document of docs/json.md. Keys keep their documented order.
nlohmann::ordered_json to_json(const test_report& report);

// Prints progress as it happens and the summary at the end, to `out`.
class human_output : public progress_sink {
  public:
    explicit human_output(std::FILE* out) : out_(out) {}
    void connected(const test_report& report) override;
    void idle_latency_done(const latency_report& latency) override;
    void direction_started(proto::direction dir, const direction_report& report) override;
    void interval_done(proto::direction dir, const interval_report& interval) override;
    void direction_done(const direction_report& report) override;
    void summary(const test_report& report);

  private:
    std::FILE* out_;
    std::uint16_t streams_ = 1;
};

}  // namespace speed::client
