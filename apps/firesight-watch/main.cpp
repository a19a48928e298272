// firesight-watch: the watcher as a service for a board. The same command as `firesight watch`
// (src/watch/service.cpp) over engine files only, linked without libtorch: the runtime, the
// watcher and OpenCV. packaging/systemd/firesight-watch.service runs it.
#include <CLI/CLI.hpp>

#include <cstdio>
#include <exception>

#include "firesight/common/error.h"
#include "firesight/data/engine_classifier.h"
#include "firesight/watch/service.h"

int main(int argc, char** argv) {
    using namespace firesight;
    CLI::App app{"firesight-watch: watch cameras, streams, videos or image folders with an engine file (.fse) and raise "
                 "fire/smoke alarms"};
    app.set_version_flag("--version", "firesight-watch 0.1.0");
    watch::WatchOptions o;
    watch::add_watch_options(app, o, /*engines_only=*/true);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e);
    }
    try {
        return watch::run_watch(o, [](const std::filesystem::path& model, const std::filesystem::path&) -> std::unique_ptr<Classifier> {
            std::error_code ec;
            if (!std::filesystem::exists(model, ec)) throw Error(model.string() + ": no such file or directory");
            if (model.extension() != ".fse")
                throw Error(model.string() + ": firesight-watch runs engine files (.fse) only; make one with `firesight build` "
                                             "on a workstation and copy it here");
            return open_engine_classifier(model);
        });
    } catch (const std::exception& e) {
        // Only starting throws (reloads keep the running config): the config, the model or a
        // source is wrong, so a restart would not help. 78 is EX_CONFIG; the unit does not restart on it.
        std::fprintf(stderr, "firesight-watch: error: %s\n", e.what());
        return 78;
    }
}
