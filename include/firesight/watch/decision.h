// The watcher's decision layer: per-frame class probabilities in, smoothed scores and an alarm
// state machine per source out. Pure logic (no I/O, no clock) so it is tested on recorded sequences.
#pragma once
#include <opencv2/core.hpp>

#include "firesight/data/image.h"

#include <deque>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace firesight {
class Classifier;
}

namespace firesight::watch {

enum class AlarmState { idle, suspected, alarm, cleared };
const char* to_string(AlarmState s);

struct ClassThreshold {
    float enter = 0.6f;  // smoothed score at or above this counts as a hit
    float exit = 0.4f;   // smoothed score must fall below this to count towards clearing
    bool operator==(const ClassThreshold&) const = default;
};

struct DecisionConfig {
    std::vector<std::string> alarm_classes{"fire", "smoke"};
    ClassThreshold default_threshold;
    std::map<std::string, ClassThreshold> thresholds;  // per class, overrides the default
    float ema_alpha = 0.5f;      // weight of the newest frame in the moving average
    int k = 3, n = 5;            // alarm when k of the last n frames are hits
    int clear_frames = 5;        // consecutive frames below exit before the alarm clears
    double min_alarm_seconds = 10.0;  // an alarm lasts at least this long, however quiet
    // Throws firesight::Error naming the field when a value is out of range.
    void validate() const;
    const ClassThreshold& threshold(const std::string& cls) const;
    bool operator==(const DecisionConfig&) const = default;
};

// What happened on one frame: the state before and after, and the alarm class in focus.
struct Decision {
    AlarmState from = AlarmState::idle, to = AlarmState::idle;
    bool changed() const { return from != to; }
    std::string cls;         // alarm class that drove the state ("" while idle)
    float score = 0.f;       // smoothed score of that class on this frame
    float peak = 0.f;        // highest smoothed score of that class in the current episode
    std::vector<float> smoothed;  // smoothed probabilities of every class on this frame
};

// One per source. Feed it every processed frame with its time in seconds.
class AlarmStateMachine {
public:
    AlarmStateMachine(DecisionConfig config, std::vector<std::string> class_names);
    Decision update(const std::vector<float>& probabilities, double time_seconds);
    AlarmState state() const { return state_; }
    const DecisionConfig& config() const { return config_; }
    // New thresholds, window and timings (a config reload) without losing the state: the alarm in
    // progress, the smoothed scores and the hits of classes that stay tracked are kept. Throws
    // (changing nothing) on an invalid config or one with none of the model's classes.
    void reconfigure(DecisionConfig config);

private:
    struct Tracked {
        std::size_t index;
        std::string name;
        ClassThreshold threshold;
        std::deque<bool> hits;  // last n hit flags
        int hit_count() const;
    };
    DecisionConfig config_;
    std::vector<std::string> names_;
    std::vector<Tracked> tracked_;
    std::vector<float> ema_;
    bool have_ema_ = false;
    AlarmState state_ = AlarmState::idle;
    std::string focus_;   // class of the current episode
    float peak_ = 0.f;
    double alarm_since_ = 0.0;
    int quiet_frames_ = 0;
};

// Optional tiling: the frame cut into a rows x cols grid of tiles that overlap by `overlap` of a
// tile, each classified, the result the maximum over tiles (and the whole frame) per class, so a
// small fire in a wide view is not averaged away by the resize.
struct TilingConfig {
    bool enabled = false;
    int rows = 2, cols = 2;
    float overlap = 0.25f;
    void validate() const;
    bool operator==(const TilingConfig&) const = default;
};
std::vector<cv::Rect> tile_rects(cv::Size frame, const TilingConfig& tiling);
// The model's input for a frame (or a tile), what data::preprocess gives, made cheaply from a large
// frame: the part the model sees (data::model_view) is cut out first, shrunk by a whole factor
// with OpenCV's fast box filter (to no less than the input size), then resized to the input.
// A frame whose view is under twice the input size goes through data::preprocess unchanged.
cv::Mat frame_input(const cv::Mat& bgr, const data::Preprocess& p);
// With `where`, also says for each class which part of the frame scored it: the whole frame, or
// the tile that beat it (the region that fired, kept with the event for feedback).
std::vector<float> classify_frame(Classifier& classifier, const cv::Mat& bgr, const TilingConfig& tiling,
                                  std::vector<cv::Rect>* where = nullptr);

// Where the frame shows class `cls`, for the alarm snapshot: the class's activation map from the
// frame or, with tiling, from the tile that scores the class highest (as classify_frame takes the
// maximum over tiles), blended over that part as a heat map, with a box around its hottest region
// labelled with the class. Throws Error when the classifier has no maps.
cv::Mat mark_class_evidence(Classifier& classifier, const cv::Mat& bgr, const TilingConfig& tiling, int cls);

}  // namespace firesight::watch
