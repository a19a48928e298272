// The watcher's glue: source threads, shared classifier, decisions, events (see firesight/watch/watch.h).
#include "firesight/watch/watch.h"

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>
#include <random>
#include <set>
#include <sstream>

#include "firesight/common/allocator.h"
#include "firesight/data/classifier.h"
#include "firesight/common/error.h"

namespace firesight::watch {

HttpConfig parse_http_arg(const std::string& arg) {
    HttpConfig c;
    const auto colon = arg.rfind(':');
    std::string port = arg;
    if (colon != std::string::npos) {
        c.host = arg.substr(0, colon);
        if (c.host.empty()) c.host = "127.0.0.1";
        port = arg.substr(colon + 1);
    }
    try {
        std::size_t used = 0;
        c.port = std::stoi(port, &used);
        if (used != port.size()) throw std::invalid_argument("trailing");
    } catch (const std::exception&) {
        throw Error("--http " + arg + ": expected host:port, :port or port");
    }
    if (c.port < 0 || c.port > 65535) throw Error("--http " + arg + ": port out of range");
    return c;
}

bool is_loopback(const std::string& host) { return host == "127.0.0.1" || host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0; }

static cv::Scalar state_colour(AlarmState s) {
    switch (s) {
        case AlarmState::idle: return {60, 170, 60};
        case AlarmState::suspected: return {0, 200, 255};
        case AlarmState::alarm: return {0, 0, 255};
        case AlarmState::cleared: return {255, 160, 60};
    }
    return {255, 255, 255};
}

cv::Mat draw_overlay(const cv::Mat& bgr, const std::string& source, AlarmState state, const std::vector<std::string>& classes,
                     const std::vector<float>& probs) {
    cv::Mat out = bgr.clone();
    const double scale = std::max(0.4, out.cols / 900.0);
    const int line = static_cast<int>(22 * scale);
    std::vector<std::size_t> order(probs.size());
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](auto a, auto b) { return probs[a] > probs[b]; });
    const int shown = static_cast<int>(std::min<std::size_t>(3, order.size()));
    const cv::Rect box(0, 0, std::min(out.cols, static_cast<int>(260 * scale)), std::min(out.rows, line * (shown + 1) + line / 2));
    cv::Mat roi = out(box);
    cv::Mat shade(roi.size(), roi.type(), cv::Scalar(0, 0, 0));
    cv::addWeighted(roi, 0.45, shade, 0.55, 0, roi);
    cv::putText(out, source + "  " + to_string(state), {4, line}, cv::FONT_HERSHEY_SIMPLEX, 0.6 * scale, state_colour(state),
                std::max(1, static_cast<int>(2 * scale)));
    for (int i = 0; i < shown; ++i) {
        const auto c = order[static_cast<std::size_t>(i)];
        const int y = line * (i + 2);
        const int w = static_cast<int>((box.width - 8) * std::clamp(probs[c], 0.f, 1.f));
        cv::rectangle(out, cv::Rect(4, y - line + 6, std::max(w, 1), line - 6), cv::Scalar(40, 120, 220), cv::FILLED);
        char text[96];
        std::snprintf(text, sizeof text, "%s %.0f%%", c < classes.size() ? classes[c].c_str() : "?", 100.0 * probs[c]);
        cv::putText(out, text, {6, y - 4}, cv::FONT_HERSHEY_SIMPLEX, 0.5 * scale, {255, 255, 255}, 1);
    }
    if (state == AlarmState::alarm) cv::rectangle(out, cv::Rect(0, 0, out.cols, out.rows), state_colour(state), std::max(2, static_cast<int>(4 * scale)));
    return out;
}

// ---- LiveHub --------------------------------------------------------------------------------

void LiveHub::add(const std::string& name, const std::string& uri, const std::string& kind) {
    std::lock_guard lk(mu_);
    if (status_.count(name)) throw Error("--source " + name + ": two sources with the same name");
    auto& s = status_[name];
    s.name = name;
    s.uri = uri;
    s.kind = kind;
    order_.push_back(name);
}

std::vector<std::string> LiveHub::names() const {
    std::lock_guard lk(mu_);
    return order_;
}

SourceStatus LiveHub::get(const std::string& name) const {
    std::lock_guard lk(mu_);
    return status_.at(name);
}

std::vector<SourceStatus> LiveHub::all() const {
    std::lock_guard lk(mu_);
    std::vector<SourceStatus> out;
    for (const auto& n : order_) {
        out.push_back(status_.at(n));
        out.back().jpeg.clear();  // callers that want pixels ask for them
    }
    return out;
}

bool LiveHub::wait_jpeg(const std::string& name, std::uint64_t& seq, std::vector<unsigned char>& jpeg, double timeout_s) {
    std::unique_lock lk(mu_);
    auto it = status_.find(name);
    if (it == status_.end()) return false;
    if (!cv_.wait_for(lk, std::chrono::duration<double>(timeout_s), [&] { return shutdown_ || it->second.jpeg_seq > seq; })) return false;
    if (shutdown_ || it->second.jpeg.empty()) return false;
    seq = it->second.jpeg_seq;
    jpeg = it->second.jpeg;
    return true;
}

void LiveHub::set_classes(std::vector<std::string> c) {
    std::lock_guard lk(mu_);
    classes_ = std::move(c);
}

std::vector<std::string> LiveHub::classes() const {
    std::lock_guard lk(mu_);
    return classes_;
}

void LiveHub::shutdown() {
    {
        std::lock_guard lk(mu_);
        shutdown_ = true;
    }
    cv_.notify_all();
}

// ---- Watcher --------------------------------------------------------------------------------

static std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Watcher::Watcher(WatchConfig config, Classifier& classifier) : config_(std::move(config)), classifier_(classifier) {
    if (config_.sources.empty()) throw Error("watch: no --source given");
    // Frames, overlays and snapshots are megabytes each: glibc would hand every one back to the
    // kernel and fault it in again on the next frame, which cost more than decoding it
    // (docs/watch-speed.md). Before the source threads exist, so they share its two arenas.
    keep_freed_memory();
    config_.decision.validate();
    config_.tiling.validate();
    config_.retention.validate();
    classes_ = classifier_.class_names();
    // Fail now, not on the first frame, when the model has none of the alarm classes.
    AlarmStateMachine probe(config_.decision, classes_);
    hub_.set_classes(classes_);
    std::vector<std::string> names;
    for (auto& s : config_.sources) {
        if (s.fps <= 0) s.fps = config_.fps;
        s.loop = s.loop || config_.loop;
        hub_.add(s.name, s.uri, to_string(source_kind(s.uri)));
        names.push_back(s.name);
    }
    std::vector<std::string> sinks;
    if (config_.mqtt) sinks.push_back("mqtt");
    if (!config_.webhook.empty()) sinks.push_back("webhook");
    store_ = std::make_unique<EventStore>(config_.data_dir, sinks);
    if (config_.mqtt) {
        auto m = *config_.mqtt;
        sinks_.push_back(std::make_unique<MqttSink>(m, names));
    }
    if (!config_.webhook.empty()) sinks_.push_back(std::make_unique<WebhookSink>(config_.webhook));
    for (auto& s : sinks_) dispatchers_.push_back(std::make_unique<Dispatcher>(*store_, *s));
    store_->set_listener([this](const Event&) {
        for (auto& d : dispatchers_) d->wake();
    });
    if (config_.http) {
        auto h = *config_.http;
        if (!is_loopback(h.host) && h.token.empty()) {
            // Reachable from the network: never without a token. Make one and say so.
            std::random_device rd;
            static const char* hex = "0123456789abcdef";
            for (int i = 0; i < 32; ++i) h.token += hex[rd() % 16];
        }
        http_token_ = h.token;
        if (h.feedback_dir.empty()) h.feedback_dir = config_.feedback_dir.empty() ? config_.data_dir / "feedback" : config_.feedback_dir;
        dashboard_ = std::make_unique<Dashboard>(h, hub_, *store_, [this] { return metrics_text(); });
    }
}

Watcher::~Watcher() { stop(); }

void Watcher::start() {
    for (auto& d : dispatchers_) d->start();
    if (dashboard_) dashboard_->start();
    std::lock_guard lk(mu_);
    running_ = static_cast<int>(config_.sources.size());
    for (std::size_t i = 0; i < config_.sources.size(); ++i) threads_.emplace_back([this, i] { run_source(i); });
    maintenance_ = std::thread([this] { maintain(); });
}

void Watcher::stop() {
    {
        std::lock_guard lk(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    for (auto& t : threads_)
        if (t.joinable()) t.join();
    threads_.clear();
    if (maintenance_.joinable()) maintenance_.join();
    hub_.shutdown();
    if (dashboard_) dashboard_->stop();
    for (auto& d : dispatchers_) d->stop();
}

void Watcher::wait() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return stop_ || running_ == 0; });
}

bool Watcher::wait_for(double seconds) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, std::chrono::duration<double>(seconds), [&] { return stop_ || running_ == 0; });
}

void Watcher::set_decision(DecisionConfig decision) {
    decision.validate();
    AlarmStateMachine probe(decision, classes_);  // throws when no alarm class is a class of the model
    {
        std::lock_guard lk(mu_);
        config_.decision = std::move(decision);
    }
    ++decision_generation_;
}

bool Watcher::sleep_interruptible(double seconds) {
    std::unique_lock lk(mu_);
    return !cv_.wait_for(lk, std::chrono::duration<double>(seconds), [&] { return stop_; });
}

namespace {
// The shared model, one call at a time (an engine session runs one batch at a time and uses its
// own threads for it). Only the model's calls hold the lock: the sources resize their frames and
// draw their alarm snapshots in parallel.
class OneCallAtATime : public Classifier {
public:
    OneCallAtATime(Classifier& inner, std::mutex& mu) : inner_(inner), mu_(mu) {}
    const std::vector<std::string>& class_names() const override { return inner_.class_names(); }
    const data::Preprocess& preprocessing() const override { return inner_.preprocessing(); }
    std::string describe() const override { return inner_.describe(); }
    std::vector<std::vector<float>> probabilities(const std::vector<cv::Mat>& inputs) override {
        std::lock_guard lk(mu_);
        return inner_.probabilities(inputs);
    }
    std::vector<Prediction> predict_with_maps(const std::vector<cv::Mat>& inputs) override {
        std::lock_guard lk(mu_);
        return inner_.predict_with_maps(inputs);
    }

private:
    Classifier& inner_;
    std::mutex& mu_;
};
}  // namespace

std::vector<float> Watcher::infer(const cv::Mat& bgr, double& seconds, std::vector<cv::Rect>* where) {
    OneCallAtATime model(classifier_, classifier_mu_);
    const auto t0 = std::chrono::steady_clock::now();
    auto p = classify_frame(model, bgr, config_.tiling, where);
    seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return p;
}

void Watcher::emit(Event e, const cv::Mat& snapshot, const cv::Mat& frame) {
    try {
        e = store_->append(std::move(e), snapshot, frame);
    } catch (const Error& err) {
        std::fprintf(stderr, "firesight: event lost: %s\n", err.what());
        return;
    }
    if (on_event) on_event(e);
}

void Watcher::run_source(std::size_t i) {
    const SourceSpec spec = config_.sources[i];
    FrameSource src(spec);
    std::uint64_t decision_generation = 0;
    AlarmStateMachine machine = [&] {
        std::lock_guard lk(mu_);  // set_decision may be replacing config_.decision
        decision_generation = decision_generation_;
        return AlarmStateMachine(config_.decision, classes_);
    }();
    double backoff = config_.reopen_min_s;
    bool down = false;
    bool first_open = true;
    auto source_event = [&](const std::string& kind, const std::string& detail) {
        Event e;
        e.source = spec.name;
        e.time_ms = now_ms();
        e.kind = kind;
        e.detail = detail;
        e.to = to_string(machine.state());
        emit(e, {});
    };
    auto stopping = [&] {
        std::lock_guard lk(mu_);
        return stop_;
    };
    // The alarm's snapshot shows where the alarm class is (one more inference, on alarm events
    // only, so the per-frame path is unchanged); the plain snapshot when the model has no maps.
    auto alarm_snapshot = [&](const cv::Mat& bgr, const Decision& d, const cv::Mat& annotated) {
        const auto it = std::find(classes_.begin(), classes_.end(), d.cls);
        if (it == classes_.end()) return annotated;
        try {
            OneCallAtATime model(classifier_, classifier_mu_);
            const cv::Mat marked = mark_class_evidence(model, bgr, config_.tiling, static_cast<int>(it - classes_.begin()));
            return draw_overlay(marked, spec.name, d.to, classes_, d.smoothed);
        } catch (const Error& err) {
            std::fprintf(stderr, "firesight: %s: alarm snapshot without a map: %s\n", spec.name.c_str(), err.what());
            return annotated;
        }
    };
    while (!stopping()) {
        try {
            src.open();
        } catch (const Error& err) {
            if (!down) {
                down = true;
                hub_.update(spec.name, [](SourceStatus& s) { s.up = false; ++s.outages; });
                source_event("outage", err.what());
            }
            if (!sleep_interruptible(backoff)) break;
            backoff = std::min(backoff * 2, config_.reopen_max_s);
            continue;
        }
        if (down) {
            source_event("restored", spec.uri + " is back");
            hub_.update(spec.name, [](SourceStatus& s) { ++s.reopens; });
        }
        if (!first_open && !down) hub_.update(spec.name, [](SourceStatus& s) { ++s.reopens; });
        first_open = false;
        down = false;
        hub_.update(spec.name, [](SourceStatus& s) { s.up = true; });
        Frame f;
        ReadResult r = ReadResult::end;
        bool got_frame = false;
        while (!stopping() && (r = src.read(f)) == ReadResult::frame) {
            got_frame = true;
            backoff = config_.reopen_min_s;
            double secs = 0;
            std::vector<float> probs;
            std::vector<cv::Rect> where;
            try {
                probs = infer(f.bgr, secs, &where);
            } catch (const std::exception& err) {
                std::fprintf(stderr, "firesight: %s: frame %lld: %s\n", spec.name.c_str(), static_cast<long long>(f.index), err.what());
                continue;
            }
            if (decision_generation != decision_generation_) {  // set_decision: new thresholds, same state
                std::lock_guard lk(mu_);
                decision_generation = decision_generation_;
                machine.reconfigure(config_.decision);
            }
            const Decision d = machine.update(probs, f.time);
            hub_.update(spec.name, [&](SourceStatus& s) {
                s.state = d.to;
                s.probabilities = d.smoothed;
                ++s.frames;
                s.inference_seconds_sum += secs;
                s.read_seconds_sum += f.read_seconds;
                s.late_seconds_last = f.late_seconds;
                s.late_seconds_max = std::max(s.late_seconds_max, f.late_seconds);
                s.last_frame_wall_ms = f.wall_ms;
                if (d.changed() && d.to == AlarmState::alarm) ++s.alarms;
            });
            // The overlay is drawn only for what shows it: an event's snapshot, the dashboard's live view.
            const bool live = dashboard_ != nullptr;
            const auto t_overlay = std::chrono::steady_clock::now();
            cv::Mat annotated;
            if (d.changed() || live) annotated = draw_overlay(f.bgr, spec.name, d.to, classes_, d.smoothed);
            const double overlay_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_overlay).count();
            if (d.changed()) {
                // The event first: its way to MQTT must not wait for the live view's JPEG.
                const auto t0 = std::chrono::steady_clock::now();
                Event e = state_event(spec.name, d, now_ms(), f.index, classes_);
                e.frame_wall_ms = f.wall_ms;
                // A tile beat the whole frame for the class in focus: that tile is the region.
                const auto c = std::find(classes_.begin(), classes_.end(), d.cls) - classes_.begin();
                if (static_cast<std::size_t>(c) < where.size() && where[c] != cv::Rect(0, 0, f.bgr.cols, f.bgr.rows)) e.region = where[c];
                // The alarm snapshot shows where the class was seen; the clean frame goes beside it for feedback.
                emit(e, d.to == AlarmState::alarm ? alarm_snapshot(f.bgr, d, annotated) : annotated, f.bgr);
                const double event_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                hub_.update(spec.name, [&](SourceStatus& s) {
                    ++s.events;
                    s.event_seconds_sum += event_s;
                });
            }
            if (live) {
                const auto t0 = std::chrono::steady_clock::now();
                std::vector<unsigned char> jpeg;
                cv::imencode(".jpg", annotated, jpeg, {cv::IMWRITE_JPEG_QUALITY, 75});
                const double live_s = overlay_s + std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                hub_.update(spec.name, [&](SourceStatus& s) {
                    s.jpeg = std::move(jpeg);
                    ++s.jpeg_seq;
                    s.live_seconds_sum += live_s;
                });
            }
        }
        if (stopping()) break;
        if (r == ReadResult::end) {
            if (!spec.loop) {
                source_event("ended", spec.uri + " ended");
                hub_.update(spec.name, [](SourceStatus& s) { s.ended = true; s.up = false; });
                break;
            }
            // Looping file or polled folder: pause briefly so an empty folder is not a busy loop.
            if (!sleep_interruptible(got_frame ? 0.05 : std::min(0.5, 1.0 / std::max(spec.fps, 0.1)))) break;
            continue;
        }
        down = true;
        hub_.update(spec.name, [](SourceStatus& s) { s.up = false; ++s.outages; });
        source_event("outage", src.last_error());
        src.close();
        if (!sleep_interruptible(backoff)) break;
        backoff = std::min(backoff * 2, config_.reopen_max_s);
    }
    std::lock_guard lk(mu_);
    --running_;
    cv_.notify_all();
}

// Housekeeping off the frame path, on its own thread: held events are retried every few seconds
// (storing resumes soon after space returns, even with no new event), and the retention policy
// runs at start and then every retention.interval_s, sparing each source's episode in progress.
void Watcher::maintain() {
    constexpr double kRetrySeconds = 2;
    auto next_prune = std::chrono::steady_clock::now();
    for (;;) {
        {
            std::unique_lock lk(mu_);
            if (cv_.wait_for(lk, std::chrono::duration<double>(kRetrySeconds), [&] { return stop_; })) return;
        }
        store_->retry_storing();
        if (std::chrono::steady_clock::now() < next_prune) continue;
        next_prune = std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                                             std::chrono::duration<double>(config_.retention.interval_s));
        std::set<std::string> active;
        for (const auto& s : hub_.all())
            if (s.state != AlarmState::idle) active.insert(s.name);
        try {
            const auto r = store_->prune(config_.retention, now_ms(), active);
            pruned_events_ += r.events;
            pruned_snapshots_ += r.snapshots;
            storage_bytes_ = r.bytes_after;
            if (r.events || r.snapshots)
                std::fprintf(stderr, "firesight: retention: removed %lld event(s) and %lld snapshot(s), %.1f MiB freed, %.1f MiB in use\n",
                             static_cast<long long>(r.events), static_cast<long long>(r.snapshots), r.bytes_freed / 1048576.0,
                             r.bytes_after / 1048576.0);
            if (r.over_budget)
                std::fprintf(stderr, "firesight: retention: %.1f MiB in use, over the %.1f MiB budget: the rest is undelivered or in "
                             "an alarm in progress\n", r.bytes_after / 1048576.0, config_.retention.max_bytes / 1048576.0);
        } catch (const std::exception& err) {
            ++prune_failures_;
            std::fprintf(stderr, "firesight: retention: %s\n", err.what());
        }
    }
}

std::string Watcher::metrics_text() const {
    std::ostringstream o;
    const auto all = hub_.all();
    auto family = [&](const char* name, const char* type, const char* help) {
        o << "# HELP " << name << ' ' << help << "\n# TYPE " << name << ' ' << type << '\n';
    };
    family("firesight_frames_processed_total", "counter", "Frames classified per source.");
    for (const auto& s : all) o << "firesight_frames_processed_total{source=\"" << s.name << "\"} " << s.frames << '\n';
    family("firesight_inference_seconds", "summary", "Time spent classifying a frame (all tiles).");
    for (const auto& s : all) {
        o << "firesight_inference_seconds_sum{source=\"" << s.name << "\"} " << s.inference_seconds_sum << '\n';
        o << "firesight_inference_seconds_count{source=\"" << s.name << "\"} " << s.frames << '\n';
    }
    family("firesight_alarms_total", "counter", "Alarms raised per source.");
    for (const auto& s : all) o << "firesight_alarms_total{source=\"" << s.name << "\"} " << s.alarms << '\n';
    family("firesight_source_outages_total", "counter", "Times a source dropped or could not be opened.");
    for (const auto& s : all) o << "firesight_source_outages_total{source=\"" << s.name << "\"} " << s.outages << '\n';
    family("firesight_source_up", "gauge", "1 while the source delivers frames.");
    for (const auto& s : all) o << "firesight_source_up{source=\"" << s.name << "\"} " << (s.up ? 1 : 0) << '\n';
    family("firesight_alarm_active", "gauge", "1 while the source is in alarm.");
    for (const auto& s : all) o << "firesight_alarm_active{source=\"" << s.name << "\"} " << (s.state == AlarmState::alarm ? 1 : 0) << '\n';
    family("firesight_outbox_pending", "gauge", "Events not yet delivered, per sink.");
    for (const auto& s : sinks_) o << "firesight_outbox_pending{sink=\"" << s->name() << "\"} " << store_->pending_count(s->name()) << '\n';
    family("firesight_events_total", "counter", "Events stored.");
    o << "firesight_events_total " << store_->count() << '\n';
    const auto h = store_->health();
    family("firesight_store_failures_total", "counter", "Failed writes of an event, snapshot or delivery mark (e.g. a full disk).");
    o << "firesight_store_failures_total " << h.failures << '\n';
    family("firesight_events_held", "gauge", "Events held in memory because they could not be written; delivered anyway.");
    o << "firesight_events_held " << h.held << '\n';
    family("firesight_events_dropped_total", "counter", "Held events given up because the memory bound was reached.");
    o << "firesight_events_dropped_total " << h.dropped << '\n';
    family("firesight_pruned_events_total", "counter", "Events removed by the retention policy.");
    o << "firesight_pruned_events_total " << pruned_events_ << '\n';
    family("firesight_pruned_snapshots_total", "counter", "Snapshot files removed by the retention policy.");
    o << "firesight_pruned_snapshots_total " << pruned_snapshots_ << '\n';
    family("firesight_prune_failures_total", "counter", "Retention runs that failed.");
    o << "firesight_prune_failures_total " << prune_failures_ << '\n';
    family("firesight_storage_bytes", "gauge", "Snapshots plus used events.db pages, at the last retention run.");
    o << "firesight_storage_bytes " << storage_bytes_ << '\n';
    return o.str();
}

}  // namespace firesight::watch
