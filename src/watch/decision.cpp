// Smoothing, the per-source alarm state machine and tiling (see firesight/watch/decision.h).
#include "firesight/watch/decision.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>

#include "firesight/data/classifier.h"
#include "firesight/common/error.h"
#include "firesight/data/heatmap.h"

namespace firesight::watch {

const char* to_string(AlarmState s) {
    switch (s) {
        case AlarmState::idle: return "idle";
        case AlarmState::suspected: return "suspected";
        case AlarmState::alarm: return "alarm";
        case AlarmState::cleared: return "cleared";
    }
    return "?";
}

void DecisionConfig::validate() const {
    auto check01 = [](float v, const std::string& field) {
        if (!(v >= 0.f && v <= 1.f)) throw Error("decision." + field + ": must be between 0 and 1, got " + std::to_string(v));
    };
    check01(default_threshold.enter, "enter");
    check01(default_threshold.exit, "exit");
    for (const auto& [cls, t] : thresholds) {
        check01(t.enter, "thresholds." + cls + ".enter");
        check01(t.exit, "thresholds." + cls + ".exit");
        if (t.exit > t.enter) throw Error("decision.thresholds." + cls + ": exit must not exceed enter");
    }
    if (default_threshold.exit > default_threshold.enter) throw Error("decision: exit must not exceed enter");
    if (!(ema_alpha > 0.f && ema_alpha <= 1.f)) throw Error("decision.ema_alpha: must be in (0, 1]");
    if (n < 1 || k < 1 || k > n) throw Error("decision.k/n: need 1 <= k <= n, got k=" + std::to_string(k) + " n=" + std::to_string(n));
    if (clear_frames < 1) throw Error("decision.clear_frames: must be at least 1");
    if (min_alarm_seconds < 0) throw Error("decision.min_alarm_seconds: must not be negative");
    if (alarm_classes.empty()) throw Error("decision.alarm_classes: at least one class is needed");
}

const ClassThreshold& DecisionConfig::threshold(const std::string& cls) const {
    auto it = thresholds.find(cls);
    return it == thresholds.end() ? default_threshold : it->second;
}

int AlarmStateMachine::Tracked::hit_count() const {
    return static_cast<int>(std::count(hits.begin(), hits.end(), true));
}

AlarmStateMachine::AlarmStateMachine(DecisionConfig config, std::vector<std::string> class_names)
    : config_(std::move(config)), names_(std::move(class_names)) {
    config_.validate();
    for (const auto& cls : config_.alarm_classes) {
        auto it = std::find(names_.begin(), names_.end(), cls);
        // A model without smoke simply never alarms on smoke; only a model with none of the
        // alarm classes is a configuration error.
        if (it == names_.end()) continue;
        tracked_.push_back({static_cast<std::size_t>(it - names_.begin()), cls, config_.threshold(cls), {}});
    }
    if (tracked_.empty()) {
        std::string have;
        for (const auto& n : names_) have += (have.empty() ? "" : ", ") + n;
        std::string want;
        for (const auto& n : config_.alarm_classes) want += (want.empty() ? "" : ", ") + n;
        throw Error("decision.alarm_classes: none of [" + want + "] is a class of the model (it has: " + have + ")");
    }
}

void AlarmStateMachine::reconfigure(DecisionConfig config) {
    AlarmStateMachine next(config, names_);  // validates, and refuses a config tracking no class of the model
    for (auto& tr : next.tracked_) {
        const auto old = std::find_if(tracked_.begin(), tracked_.end(), [&](const Tracked& o) { return o.name == tr.name; });
        if (old == tracked_.end()) continue;
        tr.hits = old->hits;
        while (static_cast<int>(tr.hits.size()) > next.config_.n) tr.hits.pop_front();
    }
    config_ = std::move(next.config_);
    tracked_ = std::move(next.tracked_);
}

Decision AlarmStateMachine::update(const std::vector<float>& p, double t) {
    if (p.size() != names_.size())
        throw Error("decision: got " + std::to_string(p.size()) + " probabilities for " + std::to_string(names_.size()) + " classes");
    if (!have_ema_) {
        ema_ = p;
        have_ema_ = true;
    } else {
        for (std::size_t i = 0; i < p.size(); ++i) ema_[i] += config_.ema_alpha * (p[i] - ema_[i]);
    }
    bool any_hit_now = false, any_hit_window = false, all_quiet = true;
    const Tracked* strongest = nullptr;
    for (auto& tr : tracked_) {
        const float s = ema_[tr.index];
        const bool hit = s >= tr.threshold.enter;
        tr.hits.push_back(hit);
        while (static_cast<int>(tr.hits.size()) > config_.n) tr.hits.pop_front();
        any_hit_now |= hit;
        any_hit_window |= tr.hit_count() > 0;
        if (s >= tr.threshold.exit) all_quiet = false;
        if (!strongest || tr.hit_count() > strongest->hit_count() ||
            (tr.hit_count() == strongest->hit_count() && s > ema_[strongest->index]))
            strongest = &tr;
    }

    Decision d;
    d.from = state_;
    switch (state_) {
        case AlarmState::idle:
        case AlarmState::cleared:
            if (any_hit_now) {
                state_ = AlarmState::suspected;
                focus_ = strongest->name;
                peak_ = 0.f;
            } else if (state_ == AlarmState::cleared && ++quiet_frames_ >= config_.n) {
                state_ = AlarmState::idle;
                focus_.clear();
            }
            break;
        case AlarmState::suspected:
            if (strongest->hit_count() >= config_.k) {
                state_ = AlarmState::alarm;
                focus_ = strongest->name;
                alarm_since_ = t;
                quiet_frames_ = 0;
            } else if (!any_hit_window) {
                state_ = AlarmState::idle;
            }
            break;
        case AlarmState::alarm:
            quiet_frames_ = all_quiet ? quiet_frames_ + 1 : 0;
            if (quiet_frames_ >= config_.clear_frames && t - alarm_since_ >= config_.min_alarm_seconds) {
                state_ = AlarmState::cleared;
                quiet_frames_ = 0;
            }
            break;
    }
    if (state_ == AlarmState::idle && d.from != AlarmState::idle) focus_.clear();
    d.to = state_;
    d.smoothed = ema_;
    const std::string cls = focus_;
    if (!cls.empty()) {
        const auto idx = static_cast<std::size_t>(std::find(names_.begin(), names_.end(), cls) - names_.begin());
        d.cls = cls;
        d.score = ema_[idx];
        if (state_ != AlarmState::cleared && state_ != AlarmState::idle) peak_ = std::max(peak_, d.score);
        d.peak = peak_;
    } else if (d.changed()) {
        // Back to idle: report the episode that just ended.
        d.peak = peak_;
    }
    return d;
}

void TilingConfig::validate() const {
    if (rows < 1 || cols < 1 || rows > 8 || cols > 8) throw Error("tiling.rows/cols: must be between 1 and 8");
    if (!(overlap >= 0.f && overlap < 0.9f)) throw Error("tiling.overlap: must be in [0, 0.9)");
}

std::vector<cv::Rect> tile_rects(cv::Size frame, const TilingConfig& tl) {
    tl.validate();
    std::vector<cv::Rect> out;
    // Tile size such that cols tiles with the given overlap exactly span the frame.
    const double tw = frame.width / (tl.cols - (tl.cols - 1) * tl.overlap);
    const double th = frame.height / (tl.rows - (tl.rows - 1) * tl.overlap);
    for (int r = 0; r < tl.rows; ++r)
        for (int c = 0; c < tl.cols; ++c) {
            const int x = static_cast<int>(c * tw * (1 - tl.overlap));
            const int y = static_cast<int>(r * th * (1 - tl.overlap));
            const cv::Rect rect(x, y, static_cast<int>(tw + 0.5), static_cast<int>(th + 0.5));
            out.push_back(rect & cv::Rect(0, 0, frame.width, frame.height));
        }
    return out;
}

cv::Mat frame_input(const cv::Mat& bgr, const data::Preprocess& p) {
    if (bgr.empty() || bgr.type() != CV_8UC3) throw Error("preprocess: expected an 8-bit 3-channel image");
    cv::Rect view = data::model_view(bgr.size(), p);
    const int k = std::min(view.width, view.height) / p.size;
    if (k < 2) return data::preprocess(bgr, p);
    // Trim the view to whole multiples of k (at most k - 1 pixels) so the fast integer path runs.
    view.x += (view.width % k) / 2;
    view.y += (view.height % k) / 2;
    view.width -= view.width % k;
    view.height -= view.height % k;
    cv::Mat small, sized, rgb, out;
    cv::resize(bgr(view), small, {view.width / k, view.height / k}, 0, 0, cv::INTER_AREA);
    cv::resize(small, sized, {p.size, p.size}, 0, 0, cv::INTER_AREA);
    cv::cvtColor(sized, rgb, cv::COLOR_BGR2RGB);
    rgb.convertTo(out, CV_32FC3, p.scale, -p.mean * p.scale);
    return out;
}

std::vector<float> classify_frame(Classifier& clf, const cv::Mat& bgr, const TilingConfig& tiling, std::vector<cv::Rect>* where) {
    std::vector<cv::Mat> inputs{frame_input(bgr, clf.preprocessing())};
    std::vector<cv::Rect> rects{cv::Rect(0, 0, bgr.cols, bgr.rows)};
    if (tiling.enabled)
        for (const auto& r : tile_rects(bgr.size(), tiling)) {
            inputs.push_back(frame_input(bgr(r), clf.preprocessing()));
            rects.push_back(r);
        }
    auto probs = clf.probabilities(inputs);
    std::vector<float> best = probs.at(0);
    std::vector<cv::Rect> from(best.size(), rects[0]);
    for (std::size_t i = 1; i < probs.size(); ++i)
        for (std::size_t c = 0; c < best.size() && c < probs[i].size(); ++c)
            if (probs[i][c] > best[c]) {
                best[c] = probs[i][c];
                from[c] = rects[i];
            }
    if (where) *where = std::move(from);
    return best;
}

cv::Mat mark_class_evidence(Classifier& clf, const cv::Mat& bgr, const TilingConfig& tiling, int cls) {
    std::vector<cv::Rect> parts{cv::Rect(0, 0, bgr.cols, bgr.rows)};
    if (tiling.enabled)
        for (const auto& r : tile_rects(bgr.size(), tiling)) parts.push_back(r);
    std::vector<cv::Mat> inputs;
    for (const auto& r : parts) inputs.push_back(frame_input(bgr(r), clf.preprocessing()));
    const auto preds = clf.predict_with_maps(inputs);
    if (cls < 0 || cls >= static_cast<int>(clf.class_names().size())) throw Error("alarm snapshot: no class " + std::to_string(cls));
    const auto c = static_cast<std::size_t>(cls);
    std::size_t best = 0;
    for (std::size_t i = 1; i < preds.size(); ++i)
        if (preds[i].probabilities.at(c) > preds[best].probabilities.at(c)) best = i;
    const cv::Rect part = parts[best];
    const cv::Mat& map = preds[best].maps.at(c);
    cv::Mat out = bgr.clone();
    // Lighter than predict's overlay: the person must still see the scene under the colours.
    const cv::Mat heat = data::overlay_activation_map(bgr(part), map, clf.preprocessing(), 0.35);
    heat.copyTo(out(part));
    const cv::Rect box = data::hottest_region(map, part.size(), clf.preprocessing()) + part.tl();
    const double scale = std::max(0.4, bgr.cols / 900.0);
    const int thick = std::max(2, static_cast<int>(3 * scale));
    cv::rectangle(out, box, cv::Scalar(0, 255, 255), thick);
    cv::putText(out, clf.class_names()[c], {box.x + 4, std::max(box.y - 6, static_cast<int>(18 * scale))}, cv::FONT_HERSHEY_SIMPLEX,
                0.6 * scale, cv::Scalar(0, 255, 255), std::max(1, thick / 2));
    return out;
}

}  // namespace firesight::watch
