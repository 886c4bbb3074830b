#include "client/monitor/monitor_output.hpp"

#include <fmt/format.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <algorithm>
#include <ctime>
#include <nlohmann/json.hpp>

#include "common/units.hpp"

namespace speed::client {
namespace {

using json = nlohmann::ordered_json;
using clock_type = std::chrono::system_clock;

// Splits a wall-clock time into whole seconds and milliseconds (rounded down, also before 1970).
void split_time(clock_type::time_point time, std::time_t& seconds, int& milliseconds) {
    const auto whole = std::chrono::floor<std::chrono::seconds>(time);
    seconds = clock_type::to_time_t(whole);
    milliseconds =
        static_cast<int>(std::chrono::duration_cast<std::chrono::milliseconds>(time - whole).count());
}

std::string local_time(clock_type::time_point time, bool with_milliseconds) {
    std::time_t seconds = 0;
    int milliseconds = 0;
    split_time(time, seconds, milliseconds);
    std::tm parts{};
    ::localtime_r(&seconds, &parts);
    std::string text = fmt::format("{:02}:{:02}:{:02}", parts.tm_hour, parts.tm_min, parts.tm_sec);
    if (with_milliseconds) {
        text += fmt::format(".{:03}", milliseconds);
    }
    return text;
}

std::string rate(double bits_per_second, rate_units units) {
    return units == rate_units::bits ? units::format_bits_per_second(bits_per_second)
                                     : units::format_bytes_per_second(bits_per_second / 8.0);
}

// What a row adds after its columns: the error and drop counters that are not zero ("  rx errors 3, tx
// dropped 1") and a counter reset.
std::string notes(const netdev::counters& c, bool counters_reset) {
    std::string text;
    const auto add = [&text](const char* label, std::uint64_t value) {
        if (value != 0) {
            text += fmt::format("{}{} {}", text.empty() ? "  " : ", ", label, value);
        }
    };
    add("rx errors", c.rx_errors);
    add("rx dropped", c.rx_dropped);
    add("tx errors", c.tx_errors);
    add("tx dropped", c.tx_dropped);
    if (counters_reset) {
        text += "  (counters reset: traffic before the reset is not counted)";
    }
    return text;
}

std::string time_column(const table_style& style) {
    return style.milliseconds ? "time        " : "time    ";
}

json counters_json(const std::string& name, const netdev::counters& c, double rx_bits_per_second,
                   double tx_bits_per_second) {
    return json{{"name", name},
                {"rx_bytes", c.rx_bytes},
                {"tx_bytes", c.tx_bytes},
                {"rx_packets", c.rx_packets},
                {"tx_packets", c.tx_packets},
                {"rx_bits_per_second", rx_bits_per_second},
                {"tx_bits_per_second", tx_bits_per_second},
                {"rx_errors", c.rx_errors},
                {"tx_errors", c.tx_errors},
                {"rx_dropped", c.rx_dropped},
                {"tx_dropped", c.tx_dropped}};
}

// Cuts a line to `columns` characters (every character the table prints is ASCII).
std::string clip(const std::string& line, std::size_t columns) {
    return columns == 0 || line.size() <= columns ? line : line.substr(0, columns);
}

}  // namespace

std::string interval_json_line(const netdev::interval_report& interval) {
    json line;
    line["time"] = units::format_utc_iso8601(interval.wall_time);
    line["interval_seconds"] = interval.seconds;
    json interfaces = json::array();
    for (const auto& row : interval.interfaces) {
        json entry = counters_json(row.name, row.traffic, row.rx_bits_per_second, row.tx_bits_per_second);
        if (row.counters_reset) {
            entry["counters_reset"] = true;
        }
        interfaces.push_back(std::move(entry));
    }
    line["interfaces"] = std::move(interfaces);
    if (!interval.appeared.empty()) {
        line["appeared"] = interval.appeared;
    }
    if (!interval.disappeared.empty()) {
        line["disappeared"] = interval.disappeared;
    }
    if (interval.partial) {
        line["partial"] = true;
    }
    return line.dump();
}

std::string summary_json_line(const netdev::traffic_monitor& monitor) {
    json interfaces = json::array();
    for (const auto& s : monitor.summary()) {
        json entry = counters_json(s.name, s.traffic, s.rx_bits_per_second(), s.tx_bits_per_second());
        entry["seconds"] = s.seconds;
        entry["intervals"] = s.intervals;
        entry["rx_peak_bits_per_second"] = s.rx_peak_bits_per_second;
        entry["tx_peak_bits_per_second"] = s.tx_peak_bits_per_second;
        if (s.counters_reset) {
            entry["counters_reset"] = true;
        }
        interfaces.push_back(std::move(entry));
    }
    json summary;
    summary["start"] = units::format_utc_iso8601(monitor.first_wall_time());
    summary["end"] = units::format_utc_iso8601(monitor.last_wall_time());
    summary["seconds"] = monitor.seconds();
    summary["intervals"] = monitor.intervals();
    summary["interfaces"] = std::move(interfaces);
    return json{{"summary", std::move(summary)}}.dump();
}

std::string table_header(const table_style& style) {
    return fmt::format("{}  {:<{}}  {:>9} {:>9} {:>9}  {:>12} {:>12}  {:>8} {:>8}", time_column(style),
                       "interface", style.name_width, "rx bytes", "tx bytes", "total", "rx rate", "tx rate",
                       "rx pkts", "tx pkts");
}

std::vector<std::string> table_rows(const netdev::interval_report& interval, const table_style& style) {
    const std::string time = local_time(interval.wall_time, style.milliseconds);
    std::vector<std::string> rows;
    for (const auto& row : interval.interfaces) {
        const auto& t = row.traffic;
        const std::string line = fmt::format(
            "{}  {:<{}}  {:>9} {:>9} {:>9}  {:>12} {:>12}  {:>8} {:>8}", time, row.name, style.name_width,
            units::format_bytes(t.rx_bytes), units::format_bytes(t.tx_bytes),
            units::format_bytes(t.rx_bytes + t.tx_bytes), rate(row.rx_bits_per_second, style.units),
            rate(row.tx_bits_per_second, style.units), t.rx_packets, t.tx_packets);
        rows.push_back(line + notes(t, row.counters_reset));
    }
    return rows;
}

std::vector<std::string> event_lines(const netdev::interval_report& interval, const table_style& style) {
    const std::string time = local_time(interval.wall_time, style.milliseconds);
    std::vector<std::string> lines;
    for (const auto& name : interval.disappeared) {
        lines.push_back(fmt::format("{}  {} disappeared (its traffic since the previous row is not counted)",
                                    time, name));
    }
    for (const auto& name : interval.appeared) {
        lines.push_back(fmt::format("{}  {} appeared (rows from the next interval on)", time, name));
    }
    return lines;
}

std::vector<std::string> summary_lines(const netdev::traffic_monitor& monitor, const table_style& style) {
    std::vector<std::string> lines;
    lines.push_back(fmt::format("Summary: {} interval{} over {:.3f} s", monitor.intervals(),
                                monitor.intervals() == 1 ? "" : "s", monitor.seconds()));
    lines.push_back(fmt::format("{:<{}}  {:>9} {:>9}  {:>12} {:>12}  {:>12} {:>12}  {:>9} {:>9}", "interface",
                                style.name_width, "received", "sent", "rx average", "tx average", "rx peak",
                                "tx peak", "rx pkts", "tx pkts"));
    for (const auto& s : monitor.summary()) {
        const std::string line = fmt::format(
            "{:<{}}  {:>9} {:>9}  {:>12} {:>12}  {:>12} {:>12}  {:>9} {:>9}", s.name, style.name_width,
            units::format_bytes(s.traffic.rx_bytes), units::format_bytes(s.traffic.tx_bytes),
            rate(s.rx_bits_per_second(), style.units), rate(s.tx_bits_per_second(), style.units),
            rate(s.rx_peak_bits_per_second, style.units), rate(s.tx_peak_bits_per_second, style.units),
            s.traffic.rx_packets, s.traffic.tx_packets);
        lines.push_back(line + notes(s.traffic, s.counters_reset));
    }
    return lines;
}

std::vector<std::string> once_lines(const netdev::interval_report& interval, const table_style& style) {
    std::vector<std::string> lines;
    for (const auto& row : interval.interfaces) {
        const std::string line =
            fmt::format("{:<{}}  download {:>12}  upload {:>12}  ({} received, {} sent in {:.3f} s)",
                        row.name, style.name_width, rate(row.rx_bits_per_second, style.units),
                        rate(row.tx_bits_per_second, style.units), units::format_bytes(row.traffic.rx_bytes),
                        units::format_bytes(row.traffic.tx_bytes), interval.seconds);
        lines.push_back(line + notes(row.traffic, row.counters_reset));
    }
    return lines;
}

std::string live_block::update(const std::vector<std::string>& events, const std::vector<std::string>& block,
                               std::size_t columns, std::size_t rows) {
    std::string text;
    if (lines_on_screen_ > 0) {
        // To the first column, up to the block's first line, and clear from there to the end of the screen.
        text += fmt::format("\r\x1b[{}A\x1b[J", lines_on_screen_);
    }
    for (const auto& line : events) {
        text += clip(line, columns) + "\n";
    }
    for (const auto& line : block) {
        text += clip(line, columns) + "\n";
    }
    // The cursor can only move back over lines still on the screen.
    const bool fits = rows == 0 || block.size() < rows;
    lines_on_screen_ = fits ? block.size() : 0;
    return text;
}

namespace {

void write_lines(std::FILE* out, const std::vector<std::string>& lines) {
    for (const auto& line : lines) {
        std::fputs(line.c_str(), out);
        std::fputc('\n', out);
    }
}

class json_printer final : public monitor_printer {
  public:
    json_printer(std::FILE* out, bool with_summary) : out_(out), with_summary_(with_summary) {}
    void start(const std::vector<std::string>& /*watched*/, double /*interval_seconds*/) override {}
    void interval(const netdev::interval_report& interval) override {
        write_lines(out_, {interval_json_line(interval)});
        std::fflush(out_);
    }
    void finish(const netdev::traffic_monitor& monitor) override {
        if (with_summary_) {
            write_lines(out_, {summary_json_line(monitor)});
        }
        std::fflush(out_);
    }

  private:
    std::FILE* out_;
    bool with_summary_;
};

class table_printer final : public monitor_printer {
  public:
    table_printer(std::FILE* out, table_style style, bool redraw)
        : out_(out), style_(style), redraw_(redraw) {}

    void start(const std::vector<std::string>& watched, double interval_seconds) override {
        widen(watched);
        if (redraw_) {
            write_lines(
                out_, {fmt::format("Every {:g} s; Ctrl-C stops and prints the summary.", interval_seconds)});
            show({}, {table_header(style_)});
        } else {
            write_lines(out_, {table_header(style_)});
        }
        std::fflush(out_);
    }

    void interval(const netdev::interval_report& interval) override {
        widen(interval.appeared);
        const auto events = event_lines(interval, style_);
        auto rows = table_rows(interval, style_);
        if (redraw_) {
            rows.insert(rows.begin(), table_header(style_));
            show(events, rows);
        } else {
            write_lines(out_, events);
            write_lines(out_, rows);
        }
        std::fflush(out_);
    }

    void finish(const netdev::traffic_monitor& monitor) override {
        write_lines(out_, {""});
        write_lines(out_, summary_lines(monitor, style_));
        std::fflush(out_);
    }

  private:
    // Interface names are at most 15 characters; the column grows to the longest one seen.
    void widen(const std::vector<std::string>& names) {
        for (const auto& name : names) {
            style_.name_width = std::max(style_.name_width, name.size());
        }
    }

    void show(const std::vector<std::string>& events, const std::vector<std::string>& block) {
        winsize size{};
        if (::ioctl(::fileno(out_), TIOCGWINSZ, &size) != 0) {
            size = winsize{};
        }
        std::fputs(live_.update(events, block, size.ws_col, size.ws_row).c_str(), out_);
    }

    std::FILE* out_;
    table_style style_;
    bool redraw_;
    live_block live_;
};

class once_printer final : public monitor_printer {
  public:
    once_printer(std::FILE* out, table_style style) : out_(out), style_(style) {}
    void start(const std::vector<std::string>& watched, double /*interval_seconds*/) override {
        for (const auto& name : watched) {
            style_.name_width = std::max(style_.name_width, name.size());
        }
    }
    void interval(const netdev::interval_report& interval) override {
        write_lines(out_, event_lines(interval, style_));
        write_lines(out_, once_lines(interval, style_));
        std::fflush(out_);
    }
    void finish(const netdev::traffic_monitor& /*monitor*/) override {}

  private:
    std::FILE* out_;
    table_style style_;
};

}  // namespace

std::unique_ptr<monitor_printer> make_json_printer(std::FILE* out, bool with_summary) {
    return std::make_unique<json_printer>(out, with_summary);
}

std::unique_ptr<monitor_printer> make_table_printer(std::FILE* out, table_style style, bool redraw) {
    return std::make_unique<table_printer>(out, style, redraw);
}

std::unique_ptr<monitor_printer> make_once_printer(std::FILE* out, table_style style) {
    return std::make_unique<once_printer>(out, style);
}

}  // namespace speed::client
