#include "client/output_html.hpp"

#include <openssl/evp.h>

#include <array>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string_view>

namespace speed::client {

namespace assets {
// Generated at build time by cmake/embed_file.cmake (client/CMakeLists.txt).
extern const std::string_view chart_js;
extern const std::string_view report_js;
extern const std::string_view report_css;
}  // namespace assets

namespace {

// A CSP source for one inline element: 'sha256-BASE64' of its exact text.
std::string csp_hash(std::string_view text) {
    std::array<unsigned char, EVP_MAX_MD_SIZE> digest{};
    unsigned int digest_size = 0;
    EVP_Digest(text.data(), text.size(), digest.data(), &digest_size, EVP_sha256(), nullptr);
    std::array<unsigned char, 4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1> encoded{};
    const int encoded_size = EVP_EncodeBlock(encoded.data(), digest.data(), static_cast<int>(digest_size));
    return "'sha256-" +
           std::string(reinterpret_cast<const char*>(encoded.data()),
                       static_cast<std::size_t>(encoded_size)) +
           "'";
}

// Everything the page shows is written by report.js from the data block, as text nodes: no peer string is
// ever parsed as HTML.
constexpr std::string_view kBody = R"(<body data-state="loading">
<main>
<p id="status" role="alert">Drawing the report needs JavaScript.</p>
</main>
)";

}  // namespace

std::string json_for_html(const nlohmann::ordered_json& document) {
    const std::string text = document.dump(-1, ' ', true, nlohmann::ordered_json::error_handler_t::replace);
    std::string out;
    out.reserve(text.size());
    for (const char c : text) {
        if (c == '<') {
            out += "\\u003c";
        } else if (c == '>') {
            out += "\\u003e";
        } else if (c == '&') {
            out += "\\u0026";
        } else {
            out += c;
        }
    }
    return out;
}

std::string html_report(const nlohmann::ordered_json& document) {
    // The data block is not a script the browser runs (type application/json), so it needs no hash.
    const std::string policy = "default-src 'none'; script-src " + csp_hash(assets::chart_js) + " " +
                               csp_hash(assets::report_js) + "; style-src " + csp_hash(assets::report_css) +
                               "; img-src 'none'; base-uri 'none'; form-action 'none'";
    std::string page;
    page.reserve(assets::chart_js.size() + assets::report_js.size() + assets::report_css.size() + 64 * 1024);
    page += "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
    page += "<meta http-equiv=\"Content-Security-Policy\" content=\"" + policy + "\">\n";
    page += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
    page += "<meta name=\"color-scheme\" content=\"light dark\">\n";
    page += "<title>speedcli report</title>\n<style>";
    page += assets::report_css;
    page += "</style>\n</head>\n";
    page += kBody;
    page += "<script type=\"application/json\" id=\"report-data\">";
    page += json_for_html(document);
    page += "</script>\n<script>";
    page += assets::chart_js;
    page += "</script>\n<script>";
    page += assets::report_js;
    page += "</script>\n</body>\n</html>\n";
    return page;
}

std::optional<std::string> check_report_path(const std::string& path) {
    std::FILE* file = std::fopen(path.c_str(), "ae");
    if (file == nullptr) {
        return std::strerror(errno);
    }
    std::fclose(file);
    return std::nullopt;
}

std::optional<std::string> write_html_report(const std::string& path,
                                             const nlohmann::ordered_json& document) {
    const std::string page = html_report(document);
    std::FILE* file = std::fopen(path.c_str(), "we");
    if (file == nullptr) {
        return std::strerror(errno);
    }
    const bool written = std::fwrite(page.data(), 1, page.size(), file) == page.size();
    const int write_errno = errno;
    if (std::fclose(file) != 0 || !written) {
        return std::strerror(written ? errno : write_errno);
    }
    return std::nullopt;
}

}  // namespace speed::client
