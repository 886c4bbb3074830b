#include "client/runners/direction_runner.hpp"

#include "common/units.hpp"

namespace speed::client {

interval_report to_report(const measure::interval& closed) {
    interval_report entry;
    entry.start_seconds = units::ns_to_seconds(closed.start_ns);
    entry.end_seconds = units::ns_to_seconds(closed.end_ns);
    entry.bytes = closed.bytes();
    entry.bits_per_second = closed.bits_per_second();
    entry.omitted = closed.omitted;
    entry.stream_bytes = closed.stream_bytes;
    return entry;
}

void fill_totals(direction_report& report, const measure::totals& totals) {
    report.seconds = totals.seconds();
    report.bytes = totals.bytes();
    report.bits_per_second = totals.bits_per_second();
    report.omitted_seconds = units::ns_to_seconds(totals.omitted_ns);
    report.omitted_bytes = totals.omitted_bytes;
    report.streams.resize(totals.stream_bytes.size());
    for (std::size_t i = 0; i < totals.stream_bytes.size(); ++i) {
        report.streams[i].bytes = totals.stream_bytes[i];
        report.streams[i].bits_per_second = units::bits_per_second(totals.stream_bytes[i], report.seconds);
    }
}

void fill_sender(direction_report& report, const std::vector<proto::stream_sender_stats>& sender) {
    report.streams.resize(std::max(report.streams.size(), sender.size()));
    report.sender_bytes = 0;
    report.retransmits = 0;
    report.sender_has_tcp_info = !sender.empty();
    for (std::size_t i = 0; i < sender.size(); ++i) {
        report.streams[i].sender = sender[i];
        report.sender_bytes += sender[i].bytes_sent;
        report.retransmits += sender[i].retransmits;
        report.sender_has_tcp_info = report.sender_has_tcp_info && sender[i].has_tcp_info;
    }
}

asio::awaitable<direction_report> direction_runner::run(const proto::test_request& request,
                                                        direction_events& events) {
    direction_report report;
    report.dir = request.dir;
    const bool download_test = request.dir == proto::direction::download;
    report.measured_by = download_test ? "client" : "server";  // the receiver measures
    co_await events.may_request();
    if (download_test) {
        co_await download(request, events, report);
    } else {
        co_await upload(request, events, report);
    }
    events.result(report);
    co_return report;
}

}  // namespace speed::client
