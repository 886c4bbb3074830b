// Helpers for integration tests: run speedcli against a server and parse its JSON.
#pragma once

#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tests/support/process.hpp"

namespace speed::testing {

struct client_run {
    process_result process;
    nlohmann::json json;  // null when stdout was not one JSON document
};

// speedcli with `args`, started through `launcher` (e.g. {"ip", "netns", "exec", NAME}) when one is given.
inline client_run run_client_via(const std::vector<std::string>& launcher,
                                 const std::vector<std::string>& args,
                                 std::chrono::milliseconds limit = std::chrono::seconds(60)) {
    std::vector<std::string> argv = launcher;
    argv.push_back(speedcli_path());
    argv.insert(argv.end(), args.begin(), args.end());
    client_run run;
    run.process = run_process(argv, limit);
    run.json = nlohmann::json::parse(run.process.out, nullptr, /*allow_exceptions=*/false);
    if (run.json.is_discarded()) {
        run.json = nullptr;
    }
    return run;
}

// Sets an environment variable for the processes started while it lives.
struct scoped_env {
    scoped_env(const char* name, const char* value) : name_(name) { ::setenv(name, value, 1); }
    ~scoped_env() { ::unsetenv(name_); }
    scoped_env(const scoped_env&) = delete;
    scoped_env& operator=(const scoped_env&) = delete;
    const char* name_;
};

inline client_run run_client(std::vector<std::string> args,
                             std::chrono::milliseconds limit = std::chrono::seconds(60)) {
    return run_client_via({}, args, limit);
}

}  // namespace speed::testing
