// Each subcommand lives in its own file and registers itself with FIRESIGHT_COMMAND, so adding a
// command is one new file (the CMake target picks up every .cpp here).
#pragma once
#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace firesight::cli {

struct CommandEntry {
    std::string name;
    int order;  // position in --help
    std::function<void(CLI::App&)> add;
};

std::vector<CommandEntry>& command_registry();

struct CommandRegistrar {
    CommandRegistrar(std::string name, int order, std::function<void(CLI::App&)> add) {
        command_registry().push_back({std::move(name), order, std::move(add)});
    }
};

#define FIRESIGHT_COMMAND(name, order, fn) \
    static ::firesight::cli::CommandRegistrar firesight_command_##name(#name, order, fn)

}  // namespace firesight::cli
