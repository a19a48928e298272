// Shared helpers for the tests: where the assets are, temp dirs, running the CLI.
#pragma once
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>
#include <sys/wait.h>

namespace firesight::test {

inline std::filesystem::path assets() { return FIRESIGHT_ASSETS_DIR; }
inline std::filesystem::path binary_dir() { return FIRESIGHT_BINARY_DIR; }
inline std::filesystem::path mobilenet_quant() { return assets() / "mobilenet_v2" / "mobilenet_v2_1.0_224_quant.tflite"; }
inline std::filesystem::path mobilenet_tf2() { return assets() / "mobilenet_v2" / "tf2_mobilenet_v2_1.0_224_ptq.tflite"; }

// Under CI (CI=true) ../shared/assets is always present, so a missing asset there means a broken
// set-up or a renamed file, and a skip would hide it: it fails the test. Elsewhere it skips.
inline bool running_under_ci() {
    const char* ci = std::getenv("CI");
    return ci && std::string(ci) == "true";
}

// Skips the test (fails it under CI) when the asset `p` is missing. Every test that needs an
// asset uses this one rule; it works in a test body and in a fixture's SetUp().
#define FIRESIGHT_REQUIRE_ASSET(p)                                                                          \
    do {                                                                                                    \
        if (!std::filesystem::exists(p)) {                                                                  \
            if (::firesight::test::running_under_ci())                                                      \
                GTEST_FAIL() << "asset missing under CI=true: " << (p) << " (../shared/assets should be there)"; \
            GTEST_SKIP() << "asset missing: " << (p) << " (run scripts/assets.sh)";                         \
        }                                                                                                   \
    } while (0)

// A fresh directory under the system temp dir, removed when the object dies.
class TempDir {
public:
    TempDir() {
        std::random_device rd;
        path_ = std::filesystem::temp_directory_path() / ("firesight-test-" + std::to_string(rd()) + std::to_string(rd()));
        std::filesystem::create_directories(path_);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path_, ec);
    }
    const std::filesystem::path& path() const { return path_; }
    std::filesystem::path operator/(const std::string& s) const { return path_ / s; }

private:
    std::filesystem::path path_;
};

struct CommandResult {
    int exit_code = -1;
    std::string out;  // stdout and stderr together
};

// Runs a shell command line, capturing stdout+stderr.
inline CommandResult run_command(const std::string& cmd) {
    CommandResult r;
    FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
    if (!p) return r;
    std::array<char, 4096> buf;
    std::size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), n);
    const int status = ::pclose(p);
    r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return r;
}

// Single-quotes a string for the shell.
inline std::string shell_quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

// A program of this build as a shell command: behind $FIRESIGHT_TEST_EMULATOR when the tests run
// under an emulator (build-arm64/run-arm64 sets it and runs arm64 programs under qemu; without
// binfmt_misc the kernel cannot start them itself).
inline std::string program_command(const std::filesystem::path& program) {
    const char* emulator = std::getenv("FIRESIGHT_TEST_EMULATOR");
    const std::string quoted = shell_quote(program.string());
    return emulator && *emulator ? shell_quote(emulator) + " " + quoted : quoted;
}

// The same for posix_spawn: the argument vector that starts `program`, the emulator first when
// there is one (its path is then argv[0], the file to execute).
inline std::vector<std::string> program_argv(const std::filesystem::path& program) {
    const char* emulator = std::getenv("FIRESIGHT_TEST_EMULATOR");
    if (emulator && *emulator) return {emulator, program.string()};
    return {program.string()};
}

inline std::string firesight_cli() { return shell_quote((binary_dir() / "apps" / "firesight" / "firesight").string()); }

}  // namespace firesight::test
