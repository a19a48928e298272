// firesight: learn fire / smoke / neutral on the device, compress, and watch cameras.
#include <algorithm>
#include <cstdio>
#include <exception>

#include "commands.h"
#include "firesight/common/error.h"

namespace firesight::cli {
std::vector<CommandEntry>& command_registry() {
    static std::vector<CommandEntry> r;
    return r;
}
}  // namespace firesight::cli

int main(int argc, char** argv) {
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
