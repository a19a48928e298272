// firesight: learn fire / smoke / neutral on the device, compress, and watch cameras.
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <exception>

#include "commands.h"
#include "firesight/common/error.h"
#include "firesight/common/openmp_env.h"

namespace firesight::cli {
std::vector<CommandEntry>& command_registry() {
    static std::vector<CommandEntry> r;
    return r;
}
}  // namespace firesight::cli

int main(int argc, char** argv) {
    // The commands that train or run libtorch models: their OpenMP threads must not spin while
    // another process holds a core (firesight/common/openmp_env.h).
    for (const char* heavy : {"train", "optimize", "eval"})
        if (argc > 1 && std::strcmp(argv[1], heavy) == 0) firesight::openmp_wait_passively(argv);
    CLI::App app{"firesight: on-device fire and smoke recognition (train, optimize, predict, watch)"};
    app.require_subcommand(1);
    app.set_version_flag("--version", "firesight 0.1.0");
    auto commands = firesight::cli::command_registry();
    std::sort(commands.begin(), commands.end(), [](const auto& a, const auto& b) { return a.order < b.order; });
    for (const auto& c : commands) c.add(app);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "firesight: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
