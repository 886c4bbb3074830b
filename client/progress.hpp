// Live events of a running test, so the human output can print as it goes while the JSON output stays silent.
#pragma once

#include <string>

#include "client/report.hpp"

namespace speed::client {

class progress_sink {
  public:
    virtual ~progress_sink() = default;
    virtual void server_selected(const server_selection& /*selection*/) {}
    virtual void connected(const test_report& /*report*/) {}
    virtual void idle_latency_done(const latency_report& /*latency*/) {}
    virtual void direction_started(proto::direction /*dir*/, const direction_report& /*report*/) {}
    virtual void interval_done(proto::direction /*dir*/, const interval_report& /*interval*/) {}
    virtual void direction_done(const direction_report& /*report*/) {}
};

}  // namespace speed::client
