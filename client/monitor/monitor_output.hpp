// Printing `speedcli monitor`: a table for people (scrolling when piped, redrawn in place in a terminal),
// NDJSON for machines, download and upload lines for --once. docs/monitor.md documents every column and
// field. The formatting functions are pure so tests check their exact text.
#pragma once

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "common/netdev.hpp"

namespace speed::client {

enum class rate_units { bits, bytes };

struct table_style {
    rate_units units = rate_units::bits;
    bool milliseconds = false;   // time column as HH:MM:SS.mmm (fractional intervals), else HH:MM:SS
    std::size_t name_width = 9;  // at least as wide as "interface"
};

// One interval as one NDJSON line (no newline); keys in the documented order.
std::string interval_json_line(const netdev::interval_report& interval);
// The run's summary as one NDJSON line: {"summary": {...}}.
std::string summary_json_line(const netdev::traffic_monitor& monitor);

// The table: its header, one row per interface of an interval, a line per interface that appeared or
// disappeared, and the summary at the end. Times are local.
std::string table_header(const table_style& style);
std::vector<std::string> table_rows(const netdev::interval_report& interval, const table_style& style);
std::vector<std::string> event_lines(const netdev::interval_report& interval, const table_style& style);
std::vector<std::string> summary_lines(const netdev::traffic_monitor& monitor, const table_style& style);
// --once: download (rx) and upload (tx) speed per interface.
std::vector<std::string> once_lines(const netdev::interval_report& interval, const table_style& style);

// Keeps the latest block of lines on a terminal's screen: each update moves the cursor back to the block's
// first line, clears to the end of the screen, prints the event lines (they stay in the scrollback) and the
// new block. Lines are clipped to the terminal's width so each takes one screen line; a block taller than the
// terminal cannot be redrawn and scrolls instead.
class live_block {
  public:
    // The text to write; `columns` and `rows` are the terminal's size (0 when unknown: no clipping).
    std::string update(const std::vector<std::string>& events, const std::vector<std::string>& block,
                       std::size_t columns, std::size_t rows);

  private:
    std::size_t lines_on_screen_ = 0;
};

// Receives the run as it happens.
class monitor_printer {
  public:
    virtual ~monitor_printer() = default;
    // After the baseline reading: the interfaces watched from the start.
    virtual void start(const std::vector<std::string>& watched, double interval_seconds) = 0;
    virtual void interval(const netdev::interval_report& interval) = 0;
    // After the last interval (count reached, stop signal, or error).
    virtual void finish(const netdev::traffic_monitor& monitor) = 0;
};

// NDJSON, one line per interval, flushed as written; `with_summary` adds the summary line at the end.
std::unique_ptr<monitor_printer> make_json_printer(std::FILE* out, bool with_summary);
// The table; `redraw` (a terminal) keeps the latest interval in place, otherwise rows scroll.
std::unique_ptr<monitor_printer> make_table_printer(std::FILE* out, table_style style, bool redraw);
// --once in text: download and upload per interface.
std::unique_ptr<monitor_printer> make_once_printer(std::FILE* out, table_style style);

}  // namespace speed::client
