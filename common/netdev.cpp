#include "common/netdev.hpp"

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>

#include "common/units.hpp"

namespace speed::netdev {
namespace {

using counter_field = std::uint64_t counters::*;
constexpr std::array<counter_field, 8> kAllFields{
    &counters::rx_bytes, &counters::rx_packets, &counters::rx_errors, &counters::rx_dropped,
    &counters::tx_bytes, &counters::tx_packets, &counters::tx_errors, &counters::tx_dropped};
constexpr std::array<counter_field, 4> kTrafficFields{&counters::rx_bytes, &counters::rx_packets,
                                                      &counters::tx_bytes, &counters::tx_packets};

bool is_space(char c) {
    return std::isspace(static_cast<unsigned char>(c)) != 0;
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && is_space(text.front())) {
        text.remove_prefix(1);
    }
    while (!text.empty() && is_space(text.back())) {
        text.remove_suffix(1);
    }
    return text;
}

std::vector<std::string_view> split_words(std::string_view text) {
    std::vector<std::string_view> words;
    std::size_t i = 0;
    while (i < text.size()) {
        while (i < text.size() && is_space(text[i])) {
            ++i;
        }
        const std::size_t start = i;
        while (i < text.size() && !is_space(text[i])) {
            ++i;
        }
        if (i > start) {
            words.push_back(text.substr(start, i - start));
        }
    }
    return words;
}

std::vector<std::string_view> split_lines(std::string_view text) {
    std::vector<std::string_view> lines;
    while (!text.empty()) {
        const std::size_t end = text.find('\n');
        lines.push_back(text.substr(0, end));
        if (end == std::string_view::npos) {
            break;
        }
        text.remove_prefix(end + 1);
    }
    return lines;
}

// Where each counter the monitor reports stands among a data line's numbers, learned from the second header
// line (" face |bytes packets errs drop fifo frame compressed multicast|bytes packets errs drop fifo colls
// carrier compressed"), so a kernel that adds or moves columns is read right or refused, never misread.
struct column_layout {
    std::array<std::size_t, 8> position{};  // in kAllFields order
    std::size_t count = 0;                  // numbers per data line
};

result<column_layout> read_layout(std::string_view header) {
    const std::size_t first_bar = header.find('|');
    const std::size_t second_bar = header.find('|', first_bar == std::string_view::npos ? 0 : first_bar + 1);
    if (first_bar == std::string_view::npos || second_bar == std::string_view::npos) {
        return failure{
            "the second header line does not have the 'face |receive columns|transmit columns' form"};
    }
    const auto receive = split_words(header.substr(first_bar + 1, second_bar - first_bar - 1));
    const auto transmit = split_words(header.substr(second_bar + 1));
    constexpr std::array<std::string_view, 4> kNames{"bytes", "packets", "errs", "drop"};
    column_layout layout;
    layout.count = receive.size() + transmit.size();
    for (std::size_t i = 0; i < kNames.size(); ++i) {
        const auto rx = std::find(receive.begin(), receive.end(), kNames[i]);
        const auto tx = std::find(transmit.begin(), transmit.end(), kNames[i]);
        if (rx == receive.end() || tx == transmit.end()) {
            return failure{"the header has no '" + std::string(kNames[i]) + "' column for both directions"};
        }
        layout.position[i] = static_cast<std::size_t>(rx - receive.begin());
        layout.position[i + 4] = receive.size() + static_cast<std::size_t>(tx - transmit.begin());
    }
    return layout;
}

std::optional<std::uint64_t> parse_counter(std::string_view word) {
    std::uint64_t value = 0;
    const auto [end, ec] = std::from_chars(word.data(), word.data() + word.size(), value);
    if (ec != std::errc{} || end != word.data() + word.size()) {
        return std::nullopt;
    }
    return value;
}

// A counter that went from `before` down to `after` by wrapping at 2^32 (see difference()).
bool plausible_32bit_wrap(std::uint64_t before, std::uint64_t after) {
    constexpr std::uint64_t kRange = std::uint64_t{1} << 32;
    return before < kRange && after < kRange && kRange - before + after < kRange / 2;
}

}  // namespace

counters& counters::operator+=(const counters& other) {
    for (const counter_field field : kAllFields) {
        this->*field += other.*field;
    }
    return *this;
}

result<std::vector<interface_reading>> parse_proc_net_dev(std::string_view text) {
    std::vector<interface_reading> interfaces;
    const auto lines = split_lines(text);
    if (lines.size() < 2 || lines[0].find('|') == std::string_view::npos) {
        return failure{"not /proc/net/dev text: the two header lines are missing"};
    }
    const auto layout = read_layout(lines[1]);
    if (!layout) {
        return failure{layout.error()};
    }
    for (std::size_t n = 2; n < lines.size(); ++n) {
        const std::string line_name = "line " + std::to_string(n + 1);
        const std::string_view line = trim(lines[n]);
        if (line.empty()) {
            continue;
        }
        // Interface names cannot contain a colon (the kernel refuses them), numbers never do: the last colon
        // ends the name even when no space follows it.
        const std::size_t colon = line.rfind(':');
        const std::string_view name = colon == std::string_view::npos ? "" : trim(line.substr(0, colon));
        if (name.empty()) {
            return failure{line_name + ": no 'name:' before the counters"};
        }
        const auto words = split_words(line.substr(colon + 1));
        if (words.size() != layout->count) {
            return failure{line_name + " (" + std::string(name) + "): " + std::to_string(words.size()) +
                           " numbers where the header names " + std::to_string(layout->count)};
        }
        interface_reading entry;
        entry.name = std::string(name);
        for (std::size_t i = 0; i < kAllFields.size(); ++i) {
            const std::string_view word = words[layout->position[i]];
            const auto value = parse_counter(word);
            if (!value) {
                return failure{line_name + " (" + entry.name + "): '" + std::string(word) +
                               "' is not a 64-bit counter"};
            }
            entry.total.*kAllFields[i] = *value;
        }
        interfaces.push_back(std::move(entry));
    }
    return interfaces;
}

counter_delta difference(const counters& before, const counters& after, bool recreated) {
    bool reset = recreated;
    for (const counter_field field : kTrafficFields) {
        if (after.*field < before.*field && !plausible_32bit_wrap(before.*field, after.*field)) {
            reset = true;
        }
    }
    reset = reset || (after.rx_bytes < before.rx_bytes && after.rx_packets < before.rx_packets) ||
            (after.tx_bytes < before.tx_bytes && after.tx_packets < before.tx_packets);

    counter_delta delta;
    if (reset) {
        delta.traffic = after;
        delta.reset = true;
        return delta;
    }
    for (const counter_field field : kAllFields) {
        const std::uint64_t from = before.*field;
        const std::uint64_t to = after.*field;
        if (to >= from) {
            delta.traffic.*field = to - from;
        } else if (plausible_32bit_wrap(from, to)) {
            delta.traffic.*field = (std::uint64_t{1} << 32) - from + to;
            delta.wrapped = true;
        }
        // Otherwise an error or drop counter went back on its own: it contributes nothing.
    }
    return delta;
}

double interface_summary::rx_bits_per_second() const {
    return units::bits_per_second(traffic.rx_bytes, seconds);
}

double interface_summary::tx_bits_per_second() const {
    return units::bits_per_second(traffic.tx_bytes, seconds);
}

traffic_monitor::traffic_monitor(std::vector<std::string> selected) : selected_(std::move(selected)) {}

std::vector<const interface_reading*> traffic_monitor::candidates(const reading& now,
                                                                  const name_index& tracked_by_name) const {
    std::vector<const interface_reading*> found;
    if (!selected_.empty()) {
        const name_index available = index_by_name(now.interfaces);
        for (const auto& name : selected_) {
            if (const auto it = available.find(name); it != available.end()) {
                found.push_back(&now.interfaces[it->second]);
            }
        }
        return found;
    }
    for (const auto& candidate : now.interfaces) {
        if (candidate.up || tracked_by_name.contains(candidate.name)) {
            found.push_back(&candidate);
        }
    }
    return found;
}

interface_summary& traffic_monitor::summary_for(const std::string& name) {
    const auto [it, added] = summary_index_.try_emplace(name, summary_.size());
    if (added) {
        summary_.emplace_back().name = name;
    }
    return summary_[it->second];
}

std::optional<interval_report> traffic_monitor::add(const reading& now, bool partial) {
    const name_index tracked_by_name = index_by_name(tracked_);
    std::vector<tracked> next;
    if (!have_baseline_) {
        for (const interface_reading* current : candidates(now, tracked_by_name)) {
            next.push_back({current->name, current->total, current->index});
            summary_for(current->name);
        }
        tracked_ = std::move(next);
        have_baseline_ = true;
        first_ns_ = last_ns_ = now.monotonic_ns;
        first_wall_time_ = last_wall_time_ = now.wall_time;
        return std::nullopt;
    }

    interval_report report;
    report.start_ns = last_ns_;
    report.end_ns = now.monotonic_ns;
    report.seconds = std::max(0.0, static_cast<double>(report.end_ns - report.start_ns) / 1e9);
    report.wall_time = now.wall_time;
    report.partial = partial;
    for (const interface_reading* current : candidates(now, tracked_by_name)) {
        next.push_back({current->name, current->total, current->index});
        const auto found = tracked_by_name.find(current->name);
        if (found == tracked_by_name.end()) {
            report.appeared.push_back(current->name);
            summary_for(current->name);
            continue;
        }
        const tracked& previous = tracked_[found->second];
        const bool recreated = previous.index != 0 && current->index != 0 && previous.index != current->index;
        const counter_delta delta = difference(previous.total, current->total, recreated);
        interface_interval row;
        row.name = current->name;
        row.traffic = delta.traffic;
        row.rx_bits_per_second = units::bits_per_second(delta.traffic.rx_bytes, report.seconds);
        row.tx_bits_per_second = units::bits_per_second(delta.traffic.tx_bytes, report.seconds);
        row.counters_reset = delta.reset;

        interface_summary& total = summary_for(row.name);
        total.traffic += row.traffic;
        total.seconds += report.seconds;
        ++total.intervals;
        total.counters_reset = total.counters_reset || row.counters_reset;
        if (!partial) {
            total.rx_peak_bits_per_second = std::max(total.rx_peak_bits_per_second, row.rx_bits_per_second);
            total.tx_peak_bits_per_second = std::max(total.tx_peak_bits_per_second, row.tx_bits_per_second);
        }
        report.interfaces.push_back(std::move(row));
    }
    const name_index next_by_name = index_by_name(next);
    for (const tracked& old : tracked_) {
        if (!next_by_name.contains(old.name)) {
            report.disappeared.push_back(old.name);
        }
    }
    tracked_ = std::move(next);
    last_ns_ = now.monotonic_ns;
    last_wall_time_ = now.wall_time;
    ++intervals_;
    return report;
}

std::vector<std::string> traffic_monitor::watched() const {
    std::vector<std::string> names;
    for (const tracked& t : tracked_) {
        names.push_back(t.name);
    }
    return names;
}

double traffic_monitor::seconds() const {
    return static_cast<double>(last_ns_ - first_ns_) / 1e9;
}

std::vector<std::string> missing_interfaces(const std::vector<std::string>& selected,
                                            const std::vector<interface_reading>& available) {
    const name_index by_name = index_by_name(available);
    std::vector<std::string> missing;
    for (const auto& name : selected) {
        if (!by_name.contains(name)) {
            missing.push_back(name);
        }
    }
    return missing;
}

std::int64_t next_deadline(std::int64_t start_ns, std::int64_t interval_ns, std::int64_t now_ns) {
    if (now_ns < start_ns) {
        return start_ns + interval_ns;
    }
    return start_ns + ((now_ns - start_ns) / interval_ns + 1) * interval_ns;
}

}  // namespace speed::netdev
