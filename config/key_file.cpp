#include "config/key_file.hpp"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace speed::config {
namespace {

// A key file holds a few lines; anything larger is not one.
constexpr off_t kMaxKeyFileBytes = 64 * 1024;

struct file_descriptor {
    explicit file_descriptor(int value) : fd(value) {}
    ~file_descriptor() {
        if (fd >= 0) {
            ::close(fd);
        }
    }
    file_descriptor(const file_descriptor&) = delete;
    file_descriptor& operator=(const file_descriptor&) = delete;
    int fd;
};

std::string octal_mode(mode_t mode) {
    char text[8];
    const unsigned permissions = mode & 07777U;
    std::snprintf(text, sizeof text, "%04o", permissions);
    return text;
}

}  // namespace

result<std::vector<auth::key>> load_key_file(const std::string& path) {
    file_descriptor file(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY));
    if (file.fd < 0) {
        return failure{"cannot open key file " + path + ": " + std::strerror(errno)};
    }
    // Checked on the open descriptor, so the file cannot be swapped between the check and the read.
    struct stat info {};
    if (::fstat(file.fd, &info) != 0) {
        return failure{"cannot stat key file " + path + ": " + std::strerror(errno)};
    }
    if (!S_ISREG(info.st_mode)) {
        return failure{"key file " + path + " is not a regular file"};
    }
    if (info.st_uid != ::geteuid() && info.st_uid != 0) {
        return failure{"key file " + path + " belongs to another user (uid " + std::to_string(info.st_uid) +
                       "); it must belong to this user or root"};
    }
    if ((info.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        return failure{"key file " + path + " has mode " + octal_mode(info.st_mode) +
                       ", readable or writable by others; run 'chmod 600 " + path + "'"};
    }
    if (info.st_size > kMaxKeyFileBytes) {
        return failure{"key file " + path + " is larger than " + std::to_string(kMaxKeyFileBytes) + " bytes"};
    }
    std::string text(static_cast<std::size_t>(info.st_size), '\0');
    std::size_t filled = 0;
    while (filled < text.size()) {
        const ssize_t got = ::read(file.fd, text.data() + filled, text.size() - filled);
        if (got < 0 && errno == EINTR) {
            continue;
        }
        if (got <= 0) {
            break;
        }
        filled += static_cast<std::size_t>(got);
    }
    text.resize(filled);
    auto parsed = auth::parse_key_file(text);
    OPENSSL_cleanse(text.data(), text.size());
    if (!parsed) {
        return failure{"key file " + path + ", " + parsed.error()};
    }
    return parsed;
}

}  // namespace speed::config
