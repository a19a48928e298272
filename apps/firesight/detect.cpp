// firesight detect: runs the watcher's decision logic over one video or image folder as fast as
// it can, prints a timeline of state changes and writes an annotated video.
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include <cstdio>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "firesight/data/classifier.h"
#include "open_classifier.h"
#include "firesight/common/error.h"
#include "firesight/common/progress.h"
#include "firesight/watch/watch.h"

namespace firesight::cli {

namespace {

struct DetectOptions {
    std::string model, labels, input, out, config, tile;
    std::vector<std::string> alarm_classes;
    double fps = 0;
    int k = 0, n = 0;
    double min_alarm = -1;
    bool json = false;
};

std::string clock_time(double t) {
    const int ms = static_cast<int>(t * 1000 + 0.5);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%02d:%02d:%02d.%03d", ms / 3600000, ms / 60000 % 60, ms / 1000 % 60, ms % 1000);
    return buf;
}

// The watcher's config (or its defaults) with the command line's overrides.
watch::WatchConfig detect_config(const DetectOptions& o) {
    watch::WatchConfig cfg;
    if (!o.config.empty()) cfg = watch::load_watch_config(o.config);
    if (!o.alarm_classes.empty()) cfg.decision.alarm_classes = o.alarm_classes;
    if (o.k > 0) cfg.decision.k = o.k;
    if (o.n > 0) cfg.decision.n = o.n;
    if (o.min_alarm >= 0) cfg.decision.min_alarm_seconds = o.min_alarm;
    if (!o.tile.empty()) {
        int r = 0, c = 0;
        char x = 0;
        if (std::sscanf(o.tile.c_str(), "%d%c%d", &r, &x, &c) != 3 || (x != 'x' && x != 'X'))
            throw Error("--tile " + o.tile + ": expected ROWSxCOLS, e.g. 2x3");
        cfg.tiling = {true, r, c, cfg.tiling.overlap};
    }
    return cfg;
}

// Frames the progress bar expects: a video file's frame count at the chosen rate, else unknown (0).
std::size_t expected_frames(const DetectOptions& o, const watch::FrameSource& src) {
    if (src.kind() != watch::SourceKind::video_file) return 0;
    cv::VideoCapture probe(o.input);
    const double frames = probe.get(cv::CAP_PROP_FRAME_COUNT);
    const double native = probe.get(cv::CAP_PROP_FPS);
    if (frames <= 0) return 0;
    return static_cast<std::size_t>(o.fps > 0 && native > 0 ? frames * o.fps / native : frames);
}

// The annotated video, written under a temporary name and renamed at the end: no half video on a
// crash. Images in a folder differ in size; a video needs one, the first frame's.
class AnnotatedVideo {
public:
    AnnotatedVideo(std::string path, double fps) : path_(std::move(path)), tmp_(path_ + ".part.avi"), fps_(fps) {}
    void write(cv::Mat frame) {
        if (!writer_.isOpened()) {
            writer_.open(tmp_, cv::VideoWriter::fourcc('M', 'J', 'P', 'G'), fps_, frame.size());
            if (!writer_.isOpened()) throw Error(path_ + ": cannot write a video there");
            size_ = frame.size();
        }
        if (frame.size() != size_) cv::resize(frame, frame, size_);
        writer_.write(frame);
    }
    void discard() {
        writer_.release();
        std::filesystem::remove(tmp_);
    }
    void finish() {
        writer_.release();
        std::error_code ec;
        std::filesystem::rename(tmp_, path_, ec);
        if (ec) throw Error(path_ + ": " + ec.message());
    }
    const std::string& path() const { return path_; }

private:
    std::string path_, tmp_;
    double fps_;
    cv::VideoWriter writer_;
    cv::Size size_;
};

// State changes as they happen: printed as a table, or kept for the JSON report; alarms counted.
struct Timeline {
    bool json = false;
    nlohmann::json changes = nlohmann::json::array();
    std::size_t alarms = 0;
    double alarm_seconds = 0, alarm_since = -1;

    void record(const watch::Decision& d, const watch::Frame& f, ProgressBar& bar, std::size_t frames) {
        if (d.to == watch::AlarmState::alarm) {
            ++alarms;
            alarm_since = f.time;
        }
        if (d.from == watch::AlarmState::alarm && alarm_since >= 0) {
            alarm_seconds += f.time - alarm_since;
            alarm_since = -1;
        }
        if (json) {
            changes.push_back({{"time", f.time}, {"frame", f.index}, {"from", watch::to_string(d.from)}, {"to", watch::to_string(d.to)},
                               {"class", d.cls}, {"score", d.score}, {"peak", d.peak}});
            return;
        }
        const std::string change = std::string(watch::to_string(d.from)) + " -> " + watch::to_string(d.to);
        bar.update(frames);  // keep the bar below the line we print
        std::printf("%-13s %-7lld %-22s %s %.2f (%.2f)\n", clock_time(f.time).c_str(), static_cast<long long>(f.index), change.c_str(),
                    d.cls.c_str(), d.score, d.peak);
        std::fflush(stdout);
    }
    void end(double last_t) {
        if (alarm_since >= 0) alarm_seconds += last_t - alarm_since;
    }
};

int run_detect(const DetectOptions& o) {
    const watch::WatchConfig cfg = detect_config(o);
    auto clf = open_classifier(o.model, o.labels);
    const auto& classes = clf->class_names();
    watch::AlarmStateMachine machine(cfg.decision, classes);

    watch::SourceSpec spec{"input", o.input};
    spec.fps = o.fps;
    spec.realtime = false;
    watch::FrameSource src(spec);
    src.open();
    AnnotatedVideo video(o.out.empty() ? std::filesystem::path(o.input).filename().replace_extension().string() + ".annotated.avi" : o.out,
                         spec.fps > 0 ? spec.fps : src.native_fps());
    const std::size_t total = expected_frames(o, src);
    ProgressBar bar("detect", total ? total : 1, total > 0 && !o.json);

    if (!o.json) std::printf("%-13s %-7s %-22s %s\n", "time", "frame", "change", "class score (peak)");
    Timeline timeline{o.json};
    watch::Frame f;
    watch::ReadResult r;
    std::size_t frames = 0;
    double last_t = 0;
    while ((r = src.read(f)) == watch::ReadResult::frame) {
        const auto probs = watch::classify_frame(*clf, f.bgr, cfg.tiling);
        const auto d = machine.update(probs, f.time);
        video.write(watch::draw_overlay(f.bgr, std::filesystem::path(o.input).filename().string(), d.to, classes, d.smoothed));
        ++frames;
        last_t = f.time;
        if (d.changed()) timeline.record(d, f, bar, frames);
        bar.update(frames);
    }
    if (r == watch::ReadResult::failure) {
        video.discard();
        throw Error(o.input + ": " + src.last_error());
    }
    timeline.end(last_t);
    bar.finish();
    if (frames == 0) {
        video.discard();
        throw Error(o.input + ": no frames");
    }
    video.finish();
    if (o.json) {
        std::printf("%s\n", nlohmann::json{{"input", o.input}, {"frames", frames}, {"alarms", timeline.alarms},
                                           {"alarm_seconds", timeline.alarm_seconds}, {"annotated", video.path()},
                                           {"timeline", timeline.changes}}.dump(2).c_str());
    } else {
        std::printf("%zu frames, %zu alarm(s), %.1f s in alarm; annotated video: %s\n", frames, timeline.alarms, timeline.alarm_seconds,
                    video.path().c_str());
    }
    return 0;
}

void add_detect(CLI::App& app) {
    auto o = std::make_shared<DetectOptions>();
    auto* sub = app.add_subcommand("detect", "Print the alarm timeline of a video or image folder and write an annotated video");
    sub->add_option("--model,-m", o->model, "Model: .tflite, run folder, model.pt or engine file")->required();
    sub->add_option("--labels", o->labels, "Labels file for a .tflite model");
    sub->add_option("input", o->input, "Video file or folder of images")->required();
    sub->add_option("--out,-o", o->out, "Annotated video to write (MJPG .avi; default <input>.annotated.avi here)");
    sub->add_option("--config,-c", o->config, "TOML config (its [decision] and [tiling] apply)")->check(CLI::ExistingFile);
    sub->add_option("--fps", o->fps, "Frames per second of video time to classify (0 = every frame)")->check(CLI::NonNegativeNumber);
    sub->add_option("--alarm-class", o->alarm_classes, "Class that raises alarms (repeatable; default fire, smoke)");
    sub->add_option("--k", o->k, "Alarm when k of the last n frames are over the threshold")->check(CLI::PositiveNumber);
    sub->add_option("--n", o->n, "Window for k-of-n")->check(CLI::PositiveNumber);
    sub->add_option("--min-alarm", o->min_alarm, "Minimum alarm duration in seconds")->check(CLI::NonNegativeNumber);
    sub->add_option("--tile", o->tile, "Also classify a ROWSxCOLS grid of overlapping tiles");
    sub->add_flag("--json", o->json, "Print the timeline as JSON");
    sub->callback([o]() {
        const int rc = run_detect(*o);
        if (rc) throw CLI::RuntimeError(rc);
    });
}

}  // namespace

FIRESIGHT_COMMAND(detect, 75, add_detect);

}  // namespace firesight::cli
