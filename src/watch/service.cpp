// The watch command shared by `firesight watch` and `firesight-watch` (see firesight/watch/service.h):
// options, the run loop, stopping on SIGTERM/SIGINT and reloading the config on SIGHUP.
#include "firesight/watch/service.h"

#include <CLI/CLI.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <mutex>
#include <thread>

#include "firesight/common/error.h"
#include "firesight/data/classifier.h"
#include "firesight/eval/eval.h"

namespace firesight::watch {

namespace {

volatile std::sig_atomic_t g_stop = 0, g_reload = 0, g_hup_reloads = 0;

// A stopping watcher waits for each source's current frame and each sink's current delivery;
// past this a source or sink is stuck (a camera read, a webhook that does not answer) and the
// process exits anyway: every decided event is already in events.db, undelivered ones go out on
// the next start. The systemd unit's TimeoutStopSec is above it.
constexpr double kStopGraceSeconds = 5;

std::string iso_time(std::int64_t ms) {
    const std::time_t t = static_cast<std::time_t>(ms / 1000);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[32];
    std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
    char out[48];
    std::snprintf(out, sizeof out, "%s.%03dZ", buf, static_cast<int>(ms % 1000));
    return out;
}

std::string write_token_file(const std::filesystem::path& data_dir, const std::string& token) {
    const auto path = data_dir / "dashboard-token";
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    const bool ok = fd >= 0 && ::fchmod(fd, 0600) == 0 && ::write(fd, token.data(), token.size()) == static_cast<ssize_t>(token.size());
    if (fd >= 0) ::close(fd);
    if (!ok) throw Error(path.string() + ": cannot write the dashboard token: " + std::strerror(errno));
    return path.string();
}

TilingConfig parse_tile(const std::string& s) {
    TilingConfig t;
    int r = 0, c = 0;
    char x = 0;
    if (std::sscanf(s.c_str(), "%d%c%d", &r, &x, &c) != 3 || (x != 'x' && x != 'X'))
        throw Error("--tile " + s + ": expected ROWSxCOLS, e.g. 2x3");
    t.enabled = true;
    t.rows = r;
    t.cols = c;
    t.validate();
    return t;
}

std::string join(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v) out += (out.empty() ? "" : ", ") + s;
    return out;
}

// What tells a replaced engine file from the one loaded: a reload reopens the model when its
// path, size or modification time changed.
struct ModelStamp {
    std::string path;
    std::uintmax_t size = 0;
    std::filesystem::file_time_type mtime{};
    bool operator==(const ModelStamp&) const = default;
};
ModelStamp stamp_of(const std::string& model) {
    ModelStamp s{model};
    std::error_code ec;
    if (std::filesystem::is_regular_file(model, ec)) {
        s.size = std::filesystem::file_size(model, ec);
        s.mtime = std::filesystem::last_write_time(model, ec);
    }
    return s;
}

// The running watcher and what it was made from; a reload replaces parts of it.
struct Running {
    WatchConfig config;
    std::unique_ptr<Classifier> classifier;
    ModelStamp stamp;
    std::unique_ptr<Watcher> watcher;
};

void print_event(const Event& e) {
    std::string what = e.kind == "state" ? e.from + " -> " + e.to : e.kind;
    char buf[160];
    if (e.kind == "state")
        std::snprintf(buf, sizeof buf, "  %s %.2f (peak %.2f)  frame %lld", e.cls.c_str(), e.score, e.peak, static_cast<long long>(e.frame));
    else
        std::snprintf(buf, sizeof buf, "  %s", e.detail.c_str());
    // In the journal an alarm or a lost source stands out (warning); every other event is a notice.
    static const bool journal = journal_stream(1);
    const int level = (e.kind == "state" && e.to == "alarm") || e.kind == "outage" ? 4 : 5;
    std::printf("%s%s  %-10s %-22s%s\n", journal ? ("<" + std::to_string(level) + ">").c_str() : "", iso_time(e.time_ms).c_str(),
                e.source.c_str(), what.c_str(), buf);
    std::fflush(stdout);
}

// Makes and starts a watcher, then says where its dashboard is.
std::unique_ptr<Watcher> start_watcher(const WatchConfig& cfg, Classifier& clf) {
    auto w = std::make_unique<Watcher>(cfg, clf);
    w->on_event = print_event;
    w->start();
    if (cfg.http) {
        // The token never goes to the log (logs are collected and shared); one we made up is
        // written to a file only root and the owner can read.
        std::string how;
        if (!w->http_token().empty() && cfg.http->token.empty()) how = " (token in " + write_token_file(cfg.data_dir, w->http_token()) + ")";
        else if (!w->http_token().empty()) how = " (token required)";
        log_line(LogLevel::info, "dashboard on http://" + cfg.http->host + ":" + std::to_string(w->http_port()) + "/" + how);
    }
    return w;
}

// SIGHUP: the config file read again with the same command-line overrides. Decision settings
// apply in place (each source keeps its alarm state); any other change restarts the watcher in
// this process, as a restart would (events.db and its outbox stay; alarm states start from idle).
// A file that does not parse, or a config that cannot run, leaves the running one as it was.
void reload(const WatchOptions& o, const ClassifierOpener& open, Running& r) {
    log_line(LogLevel::notice, "SIGHUP: reloading " + o.config);
    WatchConfig next;
    std::unique_ptr<Classifier> next_clf;
    ModelStamp next_stamp;
    try {
        next = resolve_watch_config(o);
        if (next.data_dir != r.config.data_dir) {
            // The outbox of undelivered events lives in data_dir: moving it is a restart's decision.
            log_line(LogLevel::warning, "config reload: data_dir changed to " + next.data_dir.string() + "; it takes effect on a restart, " +
                                            "events stay in " + r.config.data_dir.string() + " until then");
            next.data_dir = r.config.data_dir;
        }
        if (next.model.empty()) throw Error("no model (model = \"...\" in the config)");
        next_stamp = stamp_of(next.model);
        if (!(next_stamp == r.stamp)) next_clf = open(next.model, o.labels);
        Classifier& clf = next_clf ? *next_clf : *r.classifier;
        apply_thresholds(o.thresholds, clf.class_names(), next.decision);
        if (next.sources.empty()) throw Error("no sources");
        next.tiling.validate();
        next.retention.validate();
        AlarmStateMachine probe(next.decision, clf.class_names());  // validates, and needs an alarm class of the model
    } catch (const std::exception& e) {
        log_line(LogLevel::error, "config reload failed, still running the previous config: " + std::string(e.what()));
        return;
    }
    auto changed = changed_sections(r.config, next);
    if (next_clf && std::find(changed.begin(), changed.end(), "model") == changed.end()) changed.insert(changed.begin(), "model");
    if (changed.empty()) {
        log_line(LogLevel::notice, "config reloaded: nothing changed");
        return;
    }
    if (changed == std::vector<std::string>{"decision"}) {
        try {
            r.watcher->set_decision(next.decision);
        } catch (const std::exception& e) {
            log_line(LogLevel::error, "config reload failed, still running the previous config: " + std::string(e.what()));
            return;
        }
        r.config = next;
        log_line(LogLevel::notice, "config reloaded: decision settings (thresholds, k/n, timings) applied; each source keeps its alarm state");
        return;
    }
    log_line(LogLevel::notice, "config reloaded: " + join(changed) +
                                   " changed; restarting the watcher (stored and queued events are kept, alarm states start from idle)");
    // The old watcher goes first: the new one opens the same events.db and MQTT client id.
    r.watcher->stop();
    r.watcher.reset();
    try {
        r.watcher = start_watcher(next, next_clf ? *next_clf : *r.classifier);
    } catch (const std::exception& e) {
        log_line(LogLevel::error, "the new config cannot run (" + std::string(e.what()) + "); going back to the previous config");
        r.watcher.reset();
        r.watcher = start_watcher(r.config, *r.classifier);  // ran a moment ago; if it throws now, the service fails
        return;
    }
    r.config = next;
    if (next_clf) {
        r.classifier = std::move(next_clf);
        r.stamp = next_stamp;
        log_line(LogLevel::info, "model " + r.classifier->describe());
    }
    log_line(LogLevel::info, "watching " + std::to_string(r.config.sources.size()) + " source(s)");
}

// Stops the watcher; past kStopGraceSeconds exits without waiting (see there).
void stop_with_deadline(Watcher& w) {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
    std::thread watchdog([&] {
        std::unique_lock lk(mu);
        if (cv.wait_for(lk, std::chrono::duration<double>(kStopGraceSeconds), [&] { return done; })) return;
        log_line(LogLevel::warning, "stopping took over " + std::to_string(static_cast<int>(kStopGraceSeconds)) +
                                        " s (a source or a sink is blocked); exiting now: every event is in events.db, "
                                        "undelivered ones are sent on the next start");
        std::fflush(stdout);
        std::_Exit(0);
    });
    w.stop();
    {
        std::lock_guard lk(mu);
        done = true;
    }
    cv.notify_all();
    watchdog.join();
}

extern "C" void on_stop_signal(int) { g_stop = 1; }
extern "C" void on_hangup(int) {
    if (g_hup_reloads) g_reload = 1;
    else g_stop = 1;
}

void install_signals(bool hup_reloads) {
    g_stop = 0;
    g_reload = 0;
    g_hup_reloads = hup_reloads;
    struct sigaction sa {};
    sigemptyset(&sa.sa_mask);
    sa.sa_handler = on_stop_signal;
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);
    sa.sa_handler = on_hangup;
    sigaction(SIGHUP, &sa, nullptr);
}

}  // namespace

bool journal_stream(int fd) {
    const char* js = std::getenv("JOURNAL_STREAM");
    if (!js || !*js) return false;
    unsigned long long dev = 0, ino = 0;
    if (std::sscanf(js, "%llu:%llu", &dev, &ino) != 2) return false;
    struct stat st {};
    return ::fstat(fd, &st) == 0 && static_cast<unsigned long long>(st.st_dev) == dev && static_cast<unsigned long long>(st.st_ino) == ino;
}

void log_line(LogLevel level, const std::string& text) {
    static const bool journal = journal_stream(2);
    std::string line = journal ? "<" + std::to_string(static_cast<int>(level)) + ">" : std::string();
    line += "firesight: " + text + "\n";
    std::fwrite(line.data(), 1, line.size(), stderr);
}

std::vector<std::string> changed_sections(const WatchConfig& a, const WatchConfig& b) {
    std::vector<std::string> out;
    auto check = [&](bool same, const char* name) {
        if (!same) out.push_back(name);
    };
    check(a.model == b.model, "model");
    check(a.sources == b.sources, "sources");
    check(a.fps == b.fps && a.loop == b.loop, "fps/loop");
    check(a.decision == b.decision, "decision");
    check(a.tiling == b.tiling, "tiling");
    check(a.mqtt == b.mqtt, "mqtt");
    check(a.webhook == b.webhook, "webhook");
    check(a.http == b.http, "http");
    check(a.data_dir == b.data_dir, "data_dir");
    check(a.feedback_dir == b.feedback_dir, "feedback_dir");
    check(a.retention == b.retention, "retention");
    check(a.reopen_min_s == b.reopen_min_s && a.reopen_max_s == b.reopen_max_s, "reopen");
    return out;
}

// --threshold fire=0.3,smoke=0.4: the enter threshold of each class named; its exit threshold
// stays below it (the default gap, scaled), so the alarm still does not flicker.
void apply_thresholds(const std::string& text, const std::vector<std::string>& classes, DecisionConfig& d) {
    const auto t = eval::parse_thresholds(text, classes);
    for (std::size_t c = 0; c < t.size(); ++c) {
        if (t[c] < 0) continue;
        ClassThreshold ct = d.default_threshold;
        ct.enter = static_cast<float>(t[c]);
        ct.exit = std::min(ct.exit, ct.enter * (d.default_threshold.exit / std::max(1e-6f, d.default_threshold.enter)));
        d.thresholds[classes[c]] = ct;
    }
}

WatchConfig resolve_watch_config(const WatchOptions& o) {
    WatchConfig cfg;
    if (!o.config.empty()) cfg = load_watch_config(o.config);
    if (!o.model.empty()) cfg.model = o.model;
    if (cfg.model.empty()) throw Error("watch: no model (--model or model = \"...\" in the config)");
    for (const auto& s : o.sources) cfg.sources.push_back(parse_source_arg(s));
    if (o.no_pacing)
        for (auto& s : cfg.sources) s.realtime = false;
    if (o.fps >= 0) cfg.fps = o.fps;
    cfg.loop = cfg.loop || o.loop;
    if (!o.alarm_classes.empty()) cfg.decision.alarm_classes = o.alarm_classes;
    if (o.k > 0) cfg.decision.k = o.k;
    if (o.n > 0) cfg.decision.n = o.n;
    if (o.min_alarm >= 0) cfg.decision.min_alarm_seconds = o.min_alarm;
    if (!o.tile.empty()) cfg.tiling = parse_tile(o.tile);
    if (!o.mqtt.empty()) cfg.mqtt = parse_mqtt_arg(o.mqtt);
    if (cfg.mqtt && o.no_discovery) cfg.mqtt->discovery_prefix.clear();
    if (!o.webhook.empty()) cfg.webhook = o.webhook;
    if (!o.http.empty()) cfg.http = parse_http_arg(o.http);
    if (cfg.http && !o.token.empty()) cfg.http->token = o.token;
    if (!o.data_dir.empty()) cfg.data_dir = o.data_dir;
    if (!o.feedback_dir.empty()) cfg.feedback_dir = o.feedback_dir;
    if (o.keep_days >= 0) cfg.retention.max_age_days = o.keep_days;
    if (o.max_disk_mb >= 0) cfg.retention.max_bytes = static_cast<std::uint64_t>(o.max_disk_mb * 1048576.0);
    return cfg;
}

int run_watch(const WatchOptions& o, const ClassifierOpener& open) {
    Running r;
    r.config = resolve_watch_config(o);
    r.classifier = open(r.config.model, o.labels);
    r.stamp = stamp_of(r.config.model);
    log_line(LogLevel::info, "model " + r.classifier->describe());
    apply_thresholds(o.thresholds, r.classifier->class_names(), r.config.decision);
    const bool hup_reloads = !o.config.empty();
    install_signals(hup_reloads);
    r.watcher = start_watcher(r.config, *r.classifier);
    log_line(LogLevel::info, "watching " + std::to_string(r.config.sources.size()) + " source(s), events in " + r.config.data_dir.string() +
                                 "; Ctrl-C or SIGTERM stops" + (hup_reloads ? ", SIGHUP reloads " + o.config : std::string()));
    const auto start = std::chrono::steady_clock::now();
    while (!g_stop) {
        if (g_reload) {
            g_reload = 0;
            try {
                reload(o, open, r);
            } catch (const std::exception& e) {
                // Neither the new config nor the previous one runs now (the previous one's port
                // taken meanwhile, say): a failure, not a config error, so a service manager restarts us.
                log_line(LogLevel::error, "the previous config cannot run again either: " + std::string(e.what()));
                return 1;
            }
        }
        if (r.watcher->wait_for(0.2)) break;
        if (o.duration > 0 && std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >= o.duration) break;
    }
    auto& w = *r.watcher;
    // Give the outbox a moment to drain so a short run still delivers what it saw (not when asked
    // to stop: what is left goes out on the next start).
    for (int i = 0; i < 25 && !g_stop; ++i) {
        std::int64_t pending = 0;
        if (r.config.mqtt) pending += w.store().pending_count("mqtt");
        if (!r.config.webhook.empty()) pending += w.store().pending_count("webhook");
        if (pending == 0) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    if (g_stop) log_line(LogLevel::notice, "stopping");
    stop_with_deadline(w);
    // Events held in memory for want of disk space get a last chance to be written.
    if (!w.store().retry_storing())
        log_line(LogLevel::error, std::to_string(w.store().health().held) + " event(s) could not be written to " +
                                      (r.config.data_dir / "events.db").string() + " (disk full?) and are lost");
    std::int64_t pending = 0;
    if (r.config.mqtt) pending += w.store().pending_count("mqtt");
    if (!r.config.webhook.empty()) pending += w.store().pending_count("webhook");
    if (pending > 0) log_line(LogLevel::notice, std::to_string(pending) + " delivery(ies) queued in events.db, sent on the next start");
    for (const auto& s : w.hub().all()) {
        char buf[256];
        std::snprintf(buf, sizeof buf, "%s: %lld frames, %lld alarms, %lld outages, %.1f ms per inference", s.name.c_str(),
                      static_cast<long long>(s.frames), static_cast<long long>(s.alarms), static_cast<long long>(s.outages),
                      s.frames ? 1000.0 * s.inference_seconds_sum / static_cast<double>(s.frames) : 0.0);
        log_line(LogLevel::info, buf);
    }
    return 0;
}

void add_watch_options(CLI::App& sub, WatchOptions& opt, bool engines_only) {
    auto* o = &opt;
    sub.footer(
        "Sources: /dev/videoN (V4L2), rtsp://... or http://... (OpenCV/FFmpeg), a video file, or a folder of images.\n"
        "Events go to DATA/events.db (SQLite) with snapshots in DATA/snapshots/; MQTT topics firesight/<source>/state\n"
        "(retained) and firesight/<source>/event, QoS 1, queued while the broker is down.\n"
        "Config file (TOML): model, fps, loop, data_dir, feedback_dir, [sources] name = \"URI\", [decision] alarm_classes, enter, exit,\n"
        "ema_alpha, k, n, clear_frames, min_alarm_seconds, [decision.thresholds.CLASS] enter/exit, [tiling] rows, cols,\n"
        "overlap, [mqtt] host, port, client_id, topic_prefix, discovery_prefix, username, password, [webhook] url,\n"
        "[http] listen, token, [retention] max_age_days (default 30), max_disk_mb (default 1024),\n"
        "prune_interval_s (default 600). Command-line options override the file.\n"
        "Retention removes the oldest events and snapshots first; never an alarm in progress, never an event a sink\n"
        "has not received. Dashboard verdicts copy snapshots to FEEDBACK/neutral/ or FEEDBACK/<class>/.\n"
        "SIGTERM or SIGINT stops (events not yet delivered are sent on the next start); SIGHUP reloads the config file.");
    sub.add_option("--model,-m", o->model, engines_only ? "Engine file (.fse, from `firesight build`)" : "Model: .tflite, run folder, model.pt or engine file");
    if (!engines_only) sub.add_option("--labels", o->labels, "Labels file for a .tflite model");
    sub.add_option("--source,-s", o->sources, "name=URI (repeatable)");
    sub.add_option("--config,-c", o->config, "TOML config file")->check(CLI::ExistingFile);
    sub.add_option("--fps", o->fps, "Frames classified per second per source (0 = every frame; default 2)")->check(CLI::NonNegativeNumber);
    sub.add_flag("--loop", o->loop, "Restart video files and rescan image folders when they end");
    sub.add_flag("--no-pacing", o->no_pacing, "Read video files as fast as possible, not at their own frame rate (replays, soak tests)");
    sub.add_option("--alarm-class", o->alarm_classes, "Class that raises alarms (repeatable; default fire, smoke)");
    sub.add_option("--threshold", o->thresholds, "Enter threshold per class, e.g. fire=0.3,smoke=0.4 (default 0.6; exit stays below it)");
    sub.add_option("--k", o->k, "Alarm when k of the last n frames are over the threshold (default 3)")->check(CLI::PositiveNumber);
    sub.add_option("--n", o->n, "Window for k-of-n (default 5)")->check(CLI::PositiveNumber);
    sub.add_option("--min-alarm", o->min_alarm, "Minimum alarm duration in seconds (default 10)")->check(CLI::NonNegativeNumber);
    sub.add_option("--tile", o->tile, "Also classify a ROWSxCOLS grid of overlapping tiles (max over tiles)");
    sub.add_option("--mqtt", o->mqtt, "MQTT broker host:port");
    sub.add_flag("--no-discovery", o->no_discovery, "Do not publish Home Assistant discovery messages");
    sub.add_option("--webhook", o->webhook, "POST every event as JSON to this URL");
    sub.add_option("--http", o->http, "Dashboard address, e.g. 127.0.0.1:8080 or :8080");
    sub.add_option("--token", o->token, "Dashboard token (one is generated when --http is not loopback)");
    sub.add_option("--data", o->data_dir, "Folder for events.db and snapshots (default firesight-data)");
    sub.add_option("--keep-days", o->keep_days, "Remove events and snapshots older than this (default 30; 0 = keep)")
        ->check(CLI::NonNegativeNumber);
    sub.add_option("--max-disk-mb", o->max_disk_mb, "Keep events and snapshots under this many MiB (default 1024; 0 = no limit)")
        ->check(CLI::NonNegativeNumber);
    sub.add_option("--feedback-dir", o->feedback_dir, "Where dashboard verdicts file snapshots (default DATA/feedback)");
    sub.add_option("--duration", o->duration, "Stop after this many seconds (0 = run until Ctrl-C)")->check(CLI::NonNegativeNumber);
}

}  // namespace firesight::watch
