// The manual pages and shell completions in dist/ are written by hand; these checks keep them in step with
// the options the binaries actually take. (scripts/package --check installs the packages and runs them.)
#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "tests/support/process.hpp"

using namespace speed::testing;

namespace {

std::string read_dist_file(const std::string& relative) {
    std::string path = SPEED_DIST_DIR "/";  // appended: see tests/unit/test_netdev.cpp's fixture()
    path += relative;
    std::ifstream in(path);
    REQUIRE(in.good());
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

// Every long option a --help text lists ("--max-bytes"), each once.
std::set<std::string> long_options(const std::string& help) {
    static const std::regex option("--[a-z0-9][a-z0-9-]*");
    std::set<std::string> options;
    for (auto it = std::sregex_iterator(help.begin(), help.end(), option); it != std::sregex_iterator();
         ++it) {
        options.insert(it->str());
    }
    return options;
}

// Whether `text` names `option` as a whole word: "--max-sessions" inside "--max-sessions-per-host" does not
// count. Roff escapes its dashes ("\-\-port"), so backslashes are dropped first.
bool names_option(std::string text, const std::string& option) {
    text.erase(std::remove(text.begin(), text.end(), '\\'), text.end());
    for (auto at = text.find(option); at != std::string::npos; at = text.find(option, at + 1)) {
        const auto after = at + option.size();
        const bool whole =
            after == text.size() ||
            !(std::isalnum(static_cast<unsigned char>(text[after])) != 0 || text[after] == '-');
        if (whole) {
            return true;
        }
    }
    return false;
}

std::string help_of(const std::vector<std::string>& argv) {
    const auto run = run_process(argv, std::chrono::seconds(10));
    REQUIRE(run.exit_code == 0);
    return run.out;
}

}  // namespace

TEST_CASE("man pages and shell completions name every option of --help", "[integration][packaging]") {
    struct documented {
        std::string help;
        std::vector<std::string> files;
    };
    const std::vector<documented> programs{
        {help_of({speedcli_path(), "--help"}),
         {"man/speedcli.1", "completion/speedcli.bash", "completion/_speedcli"}},
        {help_of({speedcli_path(), "monitor", "--help"}),
         {"man/speedcli.1", "completion/speedcli.bash", "completion/_speedcli"}},
        {help_of({speedsrv_path(), "--help"}),
         {"man/speedsrv.8", "completion/speedsrv.bash", "completion/_speedsrv"}},
    };
    for (const auto& program : programs) {
        const auto options = long_options(program.help);
        CHECK(options.size() >= 7);  // the regex found the options at all
        for (const auto& file : program.files) {
            const std::string text = read_dist_file(file);
            for (const auto& option : options) {
                INFO(file << " does not name " << option);
                CHECK(names_option(text, option));
            }
        }
    }
}
