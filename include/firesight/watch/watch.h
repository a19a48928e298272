// The watcher: one thread per source sharing one classifier, decisions per source, events stored
// and dispatched to MQTT/webhook, and a web dashboard. `firesight watch` is a thin CLI over this.
#pragma once
#include <opencv2/core.hpp>

#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "firesight/common/error.h"
#include "firesight/watch/decision.h"
#include "firesight/watch/events.h"
#include "firesight/watch/notify.h"
#include "firesight/watch/source.h"

namespace firesight {
class Classifier;
}

namespace firesight::watch {

struct HttpConfig {
    std::string host = "127.0.0.1";
    int port = 8080;       // 0 = any free port
    std::string token;     // required (query ?token=, or Authorization: Bearer) when set
    std::filesystem::path feedback_dir;  // where verdicts copy snapshots; "" = DATA/feedback
    bool operator==(const HttpConfig&) const = default;
};
// "host:port", ":port" (127.0.0.1) or "port". Throws Error on a bad value.
HttpConfig parse_http_arg(const std::string& arg);
bool is_loopback(const std::string& host);

struct WatchConfig {
    std::string model;
    std::vector<SourceSpec> sources;
    double fps = 2;
    bool loop = false;
    DecisionConfig decision;
    TilingConfig tiling;
    std::optional<MqttConfig> mqtt;
    std::string webhook;
    std::optional<HttpConfig> http;
    std::filesystem::path data_dir = "firesight-data";
    std::filesystem::path feedback_dir;  // "" = DATA/feedback
    RetentionConfig retention;
    double reopen_min_s = 0.5, reopen_max_s = 30;  // back-off after a source drops
};
// Dashboard feedback on an event. "false_alarm" copies its frame (the snapshot without the
// overlay; the annotated snapshot for events stored without one) to FEEDBACK/neutral/,
// "confirmed" to FEEDBACK/<its class>/ (fire, smoke, ...), as event-<id>-<source>.jpg, plus
// event-<id>-<source>-region.jpg cut out of it when the event has a region; each through a temp
// file and a rename. A later verdict replaces the earlier one and its copies. The verdict is
// recorded in events.db. Throws FeedbackError with the HTTP status that fits what was wrong.
struct FeedbackResult {
    std::string verdict, label;
    std::vector<std::filesystem::path> files;
};
class FeedbackError : public Error {
public:
    FeedbackError(int status, const std::string& what) : Error(what), status(status) {}
    int status;
};
FeedbackResult record_feedback(EventStore& store, const std::filesystem::path& feedback_dir, std::int64_t event_id,
                               const std::string& verdict);

// Reads a TOML config file (format in docs of `firesight watch --help`). Throws Error naming the
// file, and the key or line, on anything it does not understand.
WatchConfig load_watch_config(const std::filesystem::path& path);

// Draws the source name, alarm state and the top class probabilities onto a copy of the frame.
cv::Mat draw_overlay(const cv::Mat& bgr, const std::string& source, AlarmState state,
                     const std::vector<std::string>& classes, const std::vector<float>& probs);

// Live status of each source, shared between source threads and the dashboard.
struct SourceStatus {
    std::string name, uri, kind;
    AlarmState state = AlarmState::idle;
    bool up = false, ended = false;
    std::vector<float> probabilities;   // smoothed, last frame
    std::int64_t frames = 0, reopens = 0, alarms = 0, outages = 0;
    double inference_seconds_sum = 0;   // preprocessing (resize) and the model, all tiles
    // Where the rest of a frame's time goes (sums over `frames`; events over `events`):
    double read_seconds_sum = 0;        // grab + decode, pacing sleeps excluded
    double live_seconds_sum = 0;        // overlay + JPEG of the dashboard's live view (0 without a dashboard)
    double event_seconds_sum = 0;       // state events: alarm snapshot, storage, hand-off to the sinks
    std::int64_t events = 0;
    double late_seconds_max = 0, late_seconds_last = 0;  // realtime sources: read behind schedule (backlog)
    std::int64_t last_frame_wall_ms = 0;
    std::vector<unsigned char> jpeg;    // last annotated frame
    std::uint64_t jpeg_seq = 0;
};

class LiveHub {
public:
    void add(const std::string& name, const std::string& uri, const std::string& kind);
    std::vector<std::string> names() const;
    template <class F> void update(const std::string& name, F&& f) {
        {
            std::lock_guard lk(mu_);
            f(status_.at(name));
        }
        cv_.notify_all();
    }
    SourceStatus get(const std::string& name) const;  // throws std::out_of_range
    std::vector<SourceStatus> all() const;
    // Waits until the source has a frame newer than `seq` (or timeout); returns it and its seq.
    bool wait_jpeg(const std::string& name, std::uint64_t& seq, std::vector<unsigned char>& jpeg, double timeout_s);
    void set_classes(std::vector<std::string> c);
    std::vector<std::string> classes() const;
    void shutdown();

private:
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::map<std::string, SourceStatus> status_;
    std::vector<std::string> order_, classes_;
    bool shutdown_ = false;
};

class Dashboard {
public:
    Dashboard(HttpConfig config, LiveHub& hub, EventStore& store, std::function<std::string()> extra_metrics = {});
    ~Dashboard();
    int start();  // binds and serves on a thread; returns the port. Throws Error if it cannot bind.
    void stop();
    int port() const { return port_; }

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    int port_ = 0;
};

class Watcher {
public:
    // The classifier is shared by every source thread (calls are serialised); it must outlive us.
    Watcher(WatchConfig config, Classifier& classifier);
    ~Watcher();
    void start();
    void stop();
    // Blocks until every source has ended (files without loop) or stop() was called.
    void wait();
    bool wait_for(double seconds);  // false on timeout
    // New decision settings (a config reload): each source takes them before its next frame and
    // keeps its alarm state. Throws Error, changing nothing, when the model cannot use them.
    void set_decision(DecisionConfig decision);
    EventStore& store() { return *store_; }
    LiveHub& hub() { return hub_; }
    int http_port() const { return dashboard_ ? dashboard_->port() : 0; }
    const std::string& http_token() const { return http_token_; }
    std::function<void(const Event&)> on_event;  // set before start(); called on source threads

private:
    void run_source(std::size_t i);
    void maintain();
    std::vector<float> infer(const cv::Mat& bgr, double& seconds, std::vector<cv::Rect>* where);
    void emit(Event e, const cv::Mat& snapshot, const cv::Mat& frame = {});
    bool sleep_interruptible(double seconds);
    std::string metrics_text() const;

    WatchConfig config_;
    Classifier& classifier_;
    std::mutex classifier_mu_;
    std::vector<std::string> classes_;
    std::unique_ptr<EventStore> store_;
    LiveHub hub_;
    std::vector<std::unique_ptr<Sink>> sinks_;
    std::vector<std::unique_ptr<Dispatcher>> dispatchers_;
    std::unique_ptr<Dashboard> dashboard_;
    std::string http_token_;
    std::vector<std::thread> threads_;
    std::thread maintenance_;
    std::atomic<std::int64_t> pruned_events_{0}, pruned_snapshots_{0}, prune_failures_{0};
    std::atomic<std::uint64_t> storage_bytes_{0};
    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false;
    int running_ = 0;
    std::atomic<std::uint64_t> decision_generation_{0};  // bumped by set_decision (config_.decision under mu_)
};

}  // namespace firesight::watch
