// The watch command shared by `firesight watch` (the toolchain CLI, any model kind) and
// `firesight-watch` (the service on a board, engine files only): the same options, the same run
// loop, the same signals. Only how a model is opened differs, so each program passes its own.
//
// Signals: SIGINT and SIGTERM stop (every decided event is in events.db, whose outbox resends what
// a sink has not acknowledged on the next start); SIGHUP reloads the config file (without one it
// stops, as a hangup would).
#pragma once
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "firesight/watch/watch.h"

namespace CLI {
class App;
}

namespace firesight {
class Classifier;
}

namespace firesight::watch {

// What the command line says; the config file (when given) is read first and these override it.
struct WatchOptions {
    std::string model, labels, config, mqtt, webhook, http, token, data_dir, tile, feedback_dir, thresholds;
    std::vector<std::string> sources, alarm_classes;
    double fps = -1, duration = 0;
    int k = 0, n = 0;
    double min_alarm = -1, keep_days = -1, max_disk_mb = -1;
    bool loop = false, no_discovery = false, no_pacing = false;
};

// Adds the watch options (and the help footer describing sources, events and the config file);
// `engines_only` for a program that runs engine files only (no --labels).
void add_watch_options(CLI::App& app, WatchOptions& o, bool engines_only = false);

// The config the watcher runs with: the file (if any), then the command-line overrides. The
// --threshold values need the model's classes, so they are applied separately.
WatchConfig resolve_watch_config(const WatchOptions& o);
void apply_thresholds(const std::string& text, const std::vector<std::string>& classes, DecisionConfig& d);

// Opens the model a config names ("" labels = none given).
using ClassifierOpener = std::function<std::unique_ptr<Classifier>(const std::filesystem::path& model, const std::filesystem::path& labels)>;

// Runs until SIGINT/SIGTERM, --duration, or every source ended; returns the exit status (0; 1
// when a reload left no config that runs). Throws Error when it cannot start.
int run_watch(const WatchOptions& o, const ClassifierOpener& open);

// Log lines for a service: plain text, and when stderr/stdout go to the systemd journal
// (JOURNAL_STREAM names that stream) a "<N>" syslog priority prefix the journal understands.
enum class LogLevel { error = 3, warning = 4, notice = 5, info = 6 };
void log_line(LogLevel level, const std::string& text);  // "firesight: " + text on stderr
bool journal_stream(int fd);

// Which parts of the config differ, by name ("sources", "decision", "mqtt", ...), in a fixed order.
std::vector<std::string> changed_sections(const WatchConfig& a, const WatchConfig& b);

}  // namespace firesight::watch
