// firesight watch: cameras, streams, videos or image folders in; alarms to SQLite, MQTT, a
// webhook and a web dashboard out. Runs until Ctrl-C (or --duration, or every file ended).
// The command itself is shared with firesight-watch (src/watch/service.cpp); this CLI opens
// every model kind it knows.
#include "commands.h"
#include "firesight/data/classifier.h"
#include "firesight/watch/service.h"
#include "open_classifier.h"

namespace firesight::cli {

namespace {

void add_watch(CLI::App& app) {
    auto o = std::make_shared<watch::WatchOptions>();
    auto* sub = app.add_subcommand("watch", "Watch cameras, streams, videos or image folders and raise fire/smoke alarms");
    watch::add_watch_options(*sub, *o);
    sub->callback([o]() {
        const int rc = watch::run_watch(*o, [](const std::filesystem::path& model, const std::filesystem::path& labels) {
            return open_classifier(model, labels);
        });
        if (rc) throw CLI::RuntimeError(rc);
    });
}

}  // namespace

FIRESIGHT_COMMAND(watch, 70, add_watch);

}  // namespace firesight::cli
