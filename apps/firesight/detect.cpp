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

int run_detect(const DetectOptions& o) {
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
    auto clf = open_classifier(o.model, o.labels);
    const auto& classes = clf->class_names();
    watch::AlarmStateMachine machine(cfg.decision, classes);

    watch::SourceSpec spec{"input", o.input};
    spec.fps = o.fps;
    spec.realtime = false;
    watch::FrameSource src(spec);
    src.open();
    const double in_fps = spec.fps > 0 ? spec.fps : src.native_fps();
    const auto out_path = o.out.empty() ? std::filesystem::path(o.input).filename().replace_extension().string() + ".annotated.avi" : o.out;
    const std::string tmp_path = out_path + ".part.avi";
    cv::VideoWriter writer;
    cv::Size writer_size;
    std::size_t total = 0;
    if (src.kind() == watch::SourceKind::video_file) {
        cv::VideoCapture probe(o.input);
        const double frames = probe.get(cv::CAP_PROP_FRAME_COUNT);
        const double native = probe.get(cv::CAP_PROP_FPS);
        if (frames > 0) total = static_cast<std::size_t>(o.fps > 0 && native > 0 ? frames * o.fps / native : frames);
    }
    ProgressBar bar("detect", total ? total : 1, total > 0 && !o.json);

    nlohmann::json timeline = nlohmann::json::array();
    if (!o.json) std::printf("%-13s %-7s %-22s %s\n", "time", "frame", "change", "class score (peak)");
    watch::Frame f;
    watch::ReadResult r;
    std::size_t frames = 0, alarms = 0;
    double alarm_seconds = 0, alarm_since = -1, last_t = 0;
    while ((r = src.read(f)) == watch::ReadResult::frame) {
        const auto probs = watch::classify_frame(*clf, f.bgr, cfg.tiling);
        const auto d = machine.update(probs, f.time);
        cv::Mat annotated = watch::draw_overlay(f.bgr, std::filesystem::path(o.input).filename().string(), d.to, classes, d.smoothed);
        if (!writer.isOpened()) {
            // Written under a temporary name and renamed at the end: no half video on a crash.
            writer.open(tmp_path, cv::VideoWriter::fourcc('M', 'J', 'P', 'G'), in_fps, annotated.size());
            if (!writer.isOpened()) throw Error(out_path + ": cannot write a video there");
            writer_size = annotated.size();
        }
        // Images in a folder differ in size; a video needs one, the first frame's.
        if (annotated.size() != writer_size) cv::resize(annotated, annotated, writer_size);
        writer.write(annotated);
        ++frames;
        last_t = f.time;
        if (d.changed()) {
            if (d.to == watch::AlarmState::alarm) {
                ++alarms;
                alarm_since = f.time;
            }
            if (d.from == watch::AlarmState::alarm && alarm_since >= 0) {
                alarm_seconds += f.time - alarm_since;
                alarm_since = -1;
            }
            const std::string change = std::string(watch::to_string(d.from)) + " -> " + watch::to_string(d.to);
            if (o.json) {
                timeline.push_back({{"time", f.time}, {"frame", f.index}, {"from", watch::to_string(d.from)}, {"to", watch::to_string(d.to)},
                                    {"class", d.cls}, {"score", d.score}, {"peak", d.peak}});
            } else {
                bar.update(frames);  // keep the bar below the line we print
                std::printf("%-13s %-7lld %-22s %s %.2f (%.2f)\n", clock_time(f.time).c_str(), static_cast<long long>(f.index), change.c_str(),
                            d.cls.c_str(), d.score, d.peak);
                std::fflush(stdout);
            }
        }
        bar.update(frames);
    }
    if (r == watch::ReadResult::failure) {
        writer.release();
        std::filesystem::remove(tmp_path);
        throw Error(o.input + ": " + src.last_error());
    }
    if (alarm_since >= 0) alarm_seconds += last_t - alarm_since;
    writer.release();
    bar.finish();
    if (frames == 0) throw Error(o.input + ": no frames");
    std::error_code ec;
    std::filesystem::rename(tmp_path, out_path, ec);
    if (ec) throw Error(out_path + ": " + ec.message());
    if (o.json) {
        std::printf("%s\n", nlohmann::json{{"input", o.input}, {"frames", frames}, {"alarms", alarms}, {"alarm_seconds", alarm_seconds},
                                           {"annotated", out_path}, {"timeline", timeline}}.dump(2).c_str());
    } else {
        std::printf("%zu frames, %zu alarm(s), %.1f s in alarm; annotated video: %s\n", frames, alarms, alarm_seconds, out_path.c_str());
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
