// A directory of its own under /tmp for a test's files, removed with everything in it.
#pragma once

#include <stdlib.h>
#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>

namespace speed::testing {

class temp_dir {
  public:
    explicit temp_dir(const std::string& prefix = "speedtest") {
        std::string pattern = (std::filesystem::temp_directory_path() / (prefix + ".XXXXXX")).string();
        if (::mkdtemp(pattern.data()) == nullptr) {
            throw std::runtime_error("mkdtemp failed");
        }
        path_ = pattern;
    }
    ~temp_dir() {
        std::error_code ignored;
        std::filesystem::remove_all(path_, ignored);
    }
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;

    const std::filesystem::path& path() const { return path_; }

    // Writes `text` to `name` with permissions `mode`; returns its path.
    std::string file(const std::string& name, const std::string& text, mode_t mode = 0600) const {
        const auto path = (path_ / name).string();
        std::ofstream(path) << text;
        ::chmod(path.c_str(), mode);
        return path;
    }

  private:
    std::filesystem::path path_;
};

}  // namespace speed::testing
