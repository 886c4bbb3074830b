// speedcli --report: the run as one self-contained HTML page with charts (README.md, "Report").
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

namespace speed::client {

// The page: the --json document embedded as data, Chart.js and the page's own script and style inline, and a
// Content-Security-Policy that lets the page run only those scripts and load nothing at all.
std::string html_report(const nlohmann::ordered_json& document);

// The document as text that is safe inside a <script> element: ASCII only, and '<', '>', '&' as \u escapes,
// so no string from the peer can end the element or open a comment. Still valid JSON of the same value.
std::string json_for_html(const nlohmann::ordered_json& document);

// Whether `path` can be written, found out before a run rather than after it: opened for appending, so an
// existing file loses nothing yet. The failure's text otherwise.
std::optional<std::string> check_report_path(const std::string& path);
// Writes html_report(document) to `path`; the failure's text otherwise.
std::optional<std::string> write_html_report(const std::string& path, const nlohmann::ordered_json& document);

}  // namespace speed::client
