// libFuzzer target: the `firesight watch` TOML config (watch::load_watch_config). Any text must
// load or be refused with firesight::Error naming the file; crashes, other exception types and
// sanitizer reports are bugs. load_watch_config reads a path, so each input is written to a
// private temporary file first (the parse itself dominates the cost).
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "firesight/common/error.h"
#include "firesight/watch/watch.h"

namespace {
std::filesystem::path config_path() {
    static const auto p = std::filesystem::temp_directory_path() / ("fuzz_watch_config." + std::to_string(::getpid()) + ".toml");
    return p;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const auto path = config_path();
    {
        std::ofstream f(path, std::ios::binary | std::ios::trunc);
        f.write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    }
    try {
        (void)firesight::watch::load_watch_config(path);
    } catch (const firesight::Error& e) {
        if (std::string(e.what()).rfind(path.string(), 0) != 0) {
            std::fprintf(stderr, "refusal does not name the file: %s\n", e.what());
            std::abort();
        }
    }
    return 0;
}
