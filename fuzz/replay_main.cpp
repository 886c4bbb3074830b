// A main() for the harnesses in ordinary builds (no libFuzzer): runs LLVMFuzzerTestOneInput on every file of
// the directories or files given, so ctest checks the seed corpus and any reproducer in every preset.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

namespace {

void run_file(const std::filesystem::path& path) {
    std::ifstream file(path, std::ios::binary);
    const std::vector<std::uint8_t> bytes((std::istreambuf_iterator<char>(file)),
                                          std::istreambuf_iterator<char>());
    LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
}

}  // namespace

int main(int argc, char** argv) {
    std::size_t files = 0;
    for (int i = 1; i < argc; ++i) {
        const std::filesystem::path path(argv[i]);
        if (std::filesystem::is_directory(path)) {
            for (const auto& entry : std::filesystem::directory_iterator(path)) {
                if (entry.is_regular_file()) {
                    run_file(entry.path());
                    ++files;
                }
            }
        } else {
            run_file(path);
            ++files;
        }
    }
    std::printf("%zu inputs replayed without a finding\n", files);
    return files > 0 ? 0 : 1;
}
