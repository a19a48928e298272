// firesight watch: cameras, streams, videos or image folders in; alarms to SQLite, MQTT, a
// webhook and a web dashboard out. Runs until Ctrl-C (or --duration, or every file ended).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <cstdio>
#include <ctime>
#include <chrono>
#include <thread>

#include "commands.h"
#include "firesight/data/classifier.h"
#include "open_classifier.h"
#include "firesight/common/error.h"
#include "firesight/eval/eval.h"
#include "firesight/watch/watch.h"

namespace firesight::cli {

namespace {

volatile std::sig_atomic_t g_stop = 0;

struct WatchOptions {
    std::string model, labels, config, mqtt, webhook, http, token, data_dir, tile, feedback_dir, thresholds;
    std::vector<std::string> sources, alarm_classes;
    double fps = -1, duration = 0;
    int k = 0, n = 0;
    double min_alarm = -1, keep_days = -1, max_disk_mb = -1;
    bool loop = false, no_discovery = false, no_pacing = false;
};

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

watch::TilingConfig parse_tile(const std::string& s) {
    watch::TilingConfig t;
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

// --threshold fire=0.3,smoke=0.4: the enter threshold of each class named; its exit threshold
// stays below it (the default gap, scaled), so the alarm still does not flicker.
void apply_thresholds(const std::string& text, const std::vector<std::string>& classes, watch::DecisionConfig& d) {
    const auto t = eval::parse_thresholds(text, classes);
    for (std::size_t c = 0; c < t.size(); ++c) {
        if (t[c] < 0) continue;
        watch::ClassThreshold ct = d.default_threshold;
        ct.enter = static_cast<float>(t[c]);
        ct.exit = std::min(ct.exit, ct.enter * (d.default_threshold.exit / std::max(1e-6f, d.default_threshold.enter)));
        d.thresholds[classes[c]] = ct;
    }
}

int run_watch(const WatchOptions& o) {
    watch::WatchConfig cfg;
    if (!o.config.empty()) cfg = watch::load_watch_config(o.config);
    if (!o.model.empty()) cfg.model = o.model;
    if (cfg.model.empty()) throw Error("watch: no model (--model or model = \"...\" in the config)");
    for (const auto& s : o.sources) cfg.sources.push_back(watch::parse_source_arg(s));
    if (o.no_pacing)
        for (auto& s : cfg.sources) s.realtime = false;
    if (o.fps >= 0) cfg.fps = o.fps;
    cfg.loop = cfg.loop || o.loop;
    if (!o.alarm_classes.empty()) cfg.decision.alarm_classes = o.alarm_classes;
    if (o.k > 0) cfg.decision.k = o.k;
    if (o.n > 0) cfg.decision.n = o.n;
    if (o.min_alarm >= 0) cfg.decision.min_alarm_seconds = o.min_alarm;
    if (!o.tile.empty()) cfg.tiling = parse_tile(o.tile);
    if (!o.mqtt.empty()) cfg.mqtt = watch::parse_mqtt_arg(o.mqtt);
    if (cfg.mqtt && o.no_discovery) cfg.mqtt->discovery_prefix.clear();
    if (!o.webhook.empty()) cfg.webhook = o.webhook;
    if (!o.http.empty()) cfg.http = watch::parse_http_arg(o.http);
    if (cfg.http && !o.token.empty()) cfg.http->token = o.token;
    if (!o.data_dir.empty()) cfg.data_dir = o.data_dir;
    if (!o.feedback_dir.empty()) cfg.feedback_dir = o.feedback_dir;
    if (o.keep_days >= 0) cfg.retention.max_age_days = o.keep_days;
    if (o.max_disk_mb >= 0) cfg.retention.max_bytes = static_cast<std::uint64_t>(o.max_disk_mb * 1048576.0);

    auto clf = open_classifier(cfg.model, o.labels);
    std::fprintf(stderr, "firesight: model %s\n", clf->describe().c_str());
    apply_thresholds(o.thresholds, clf->class_names(), cfg.decision);
    watch::Watcher w(cfg, *clf);
    w.on_event = [](const watch::Event& e) {
        std::string what = e.kind == "state" ? e.from + " -> " + e.to : e.kind;
        char buf[160];
        if (e.kind == "state")
            std::snprintf(buf, sizeof buf, "  %s %.2f (peak %.2f)  frame %lld", e.cls.c_str(), e.score, e.peak, static_cast<long long>(e.frame));
        else
            std::snprintf(buf, sizeof buf, "  %s", e.detail.c_str());
        std::printf("%s  %-10s %-22s%s\n", iso_time(e.time_ms).c_str(), e.source.c_str(), what.c_str(), buf);
        std::fflush(stdout);
    };
    std::signal(SIGINT, [](int) { g_stop = 1; });
    std::signal(SIGTERM, [](int) { g_stop = 1; });
    w.start();
    if (cfg.http) {
        // The token never goes to the log (logs are collected and shared); one we made up is
        // written to a file only root and the owner can read.
        std::string how;
        if (!w.http_token().empty() && cfg.http->token.empty()) how = " (token in " + write_token_file(cfg.data_dir, w.http_token()) + ")";
        else if (!w.http_token().empty()) how = " (token required)";
        std::fprintf(stderr, "firesight: dashboard on http://%s:%d/%s\n", cfg.http->host.c_str(), w.http_port(), how.c_str());
    }
    std::fprintf(stderr, "firesight: watching %zu source(s), events in %s; Ctrl-C stops\n", cfg.sources.size(), cfg.data_dir.c_str());
    const auto start = std::chrono::steady_clock::now();
    while (!g_stop) {
        if (w.wait_for(0.2)) break;
        if (o.duration > 0 && std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >= o.duration) break;
    }
    // Give the outbox a moment to drain so a short run still delivers what it saw.
    for (int i = 0; i < 25 && !g_stop; ++i) {
        std::int64_t pending = 0;
        if (cfg.mqtt) pending += w.store().pending_count("mqtt");
        if (!cfg.webhook.empty()) pending += w.store().pending_count("webhook");
        if (pending == 0) break;
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    w.stop();
    for (const auto& s : w.hub().all())
        std::fprintf(stderr, "firesight: %s: %lld frames, %lld alarms, %lld outages, %.1f ms per inference\n", s.name.c_str(),
                     static_cast<long long>(s.frames), static_cast<long long>(s.alarms), static_cast<long long>(s.outages),
                     s.frames ? 1000.0 * s.inference_seconds_sum / static_cast<double>(s.frames) : 0.0);
    return 0;
}

void add_watch(CLI::App& app) {
    auto o = std::make_shared<WatchOptions>();
    auto* sub = app.add_subcommand("watch", "Watch cameras, streams, videos or image folders and raise fire/smoke alarms");
    sub->footer(
        "Sources: /dev/videoN (V4L2), rtsp://... or http://... (OpenCV/FFmpeg), a video file, or a folder of images.\n"
        "Events go to DATA/events.db (SQLite) with snapshots in DATA/snapshots/; MQTT topics firesight/<source>/state\n"
        "(retained) and firesight/<source>/event, QoS 1, queued while the broker is down.\n"
        "Config file (TOML): model, fps, loop, data_dir, feedback_dir, [sources] name = \"URI\", [decision] alarm_classes, enter, exit,\n"
        "ema_alpha, k, n, clear_frames, min_alarm_seconds, [decision.thresholds.CLASS] enter/exit, [tiling] rows, cols,\n"
        "overlap, [mqtt] host, port, client_id, topic_prefix, discovery_prefix, username, password, [webhook] url,\n"
        "[http] listen, token, [retention] max_age_days (default 30), max_disk_mb (default 1024),\n"
        "prune_interval_s (default 600). Command-line options override the file.\n"
        "Retention removes the oldest events and snapshots first; never an alarm in progress, never an event a sink\n"
        "has not received. Dashboard verdicts copy snapshots to FEEDBACK/neutral/ or FEEDBACK/<class>/.");
    sub->add_option("--model,-m", o->model, "Model: .tflite, run folder, model.pt or engine file");
    sub->add_option("--labels", o->labels, "Labels file for a .tflite model");
    sub->add_option("--source,-s", o->sources, "name=URI (repeatable)");
    sub->add_option("--config,-c", o->config, "TOML config file")->check(CLI::ExistingFile);
    sub->add_option("--fps", o->fps, "Frames classified per second per source (0 = every frame; default 2)")->check(CLI::NonNegativeNumber);
    sub->add_flag("--loop", o->loop, "Restart video files and rescan image folders when they end");
    sub->add_flag("--no-pacing", o->no_pacing, "Read video files as fast as possible, not at their own frame rate (replays, soak tests)");
    sub->add_option("--alarm-class", o->alarm_classes, "Class that raises alarms (repeatable; default fire, smoke)");
    sub->add_option("--threshold", o->thresholds, "Enter threshold per class, e.g. fire=0.3,smoke=0.4 (default 0.6; exit stays below it)");
    sub->add_option("--k", o->k, "Alarm when k of the last n frames are over the threshold (default 3)")->check(CLI::PositiveNumber);
    sub->add_option("--n", o->n, "Window for k-of-n (default 5)")->check(CLI::PositiveNumber);
    sub->add_option("--min-alarm", o->min_alarm, "Minimum alarm duration in seconds (default 10)")->check(CLI::NonNegativeNumber);
    sub->add_option("--tile", o->tile, "Also classify a ROWSxCOLS grid of overlapping tiles (max over tiles)");
    sub->add_option("--mqtt", o->mqtt, "MQTT broker host:port");
    sub->add_flag("--no-discovery", o->no_discovery, "Do not publish Home Assistant discovery messages");
    sub->add_option("--webhook", o->webhook, "POST every event as JSON to this URL");
    sub->add_option("--http", o->http, "Dashboard address, e.g. 127.0.0.1:8080 or :8080");
    sub->add_option("--token", o->token, "Dashboard token (one is generated when --http is not loopback)");
    sub->add_option("--data", o->data_dir, "Folder for events.db and snapshots (default firesight-data)");
    sub->add_option("--keep-days", o->keep_days, "Remove events and snapshots older than this (default 30; 0 = keep)")
        ->check(CLI::NonNegativeNumber);
    sub->add_option("--max-disk-mb", o->max_disk_mb, "Keep events and snapshots under this many MiB (default 1024; 0 = no limit)")
        ->check(CLI::NonNegativeNumber);
    sub->add_option("--feedback-dir", o->feedback_dir, "Where dashboard verdicts file snapshots (default DATA/feedback)");
    sub->add_option("--duration", o->duration, "Stop after this many seconds (0 = run until Ctrl-C)")->check(CLI::NonNegativeNumber);
    sub->callback([o]() {
        const int rc = run_watch(*o);
        if (rc) throw CLI::RuntimeError(rc);
    });
}

}  // namespace

FIRESIGHT_COMMAND(watch, 70, add_watch);

}  // namespace firesight::cli
