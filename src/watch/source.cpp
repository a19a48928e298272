// Frame sources for the watcher (see firesight/watch/source.h).
#include "firesight/watch/source.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <thread>

#include "firesight/common/error.h"
#include "firesight/data/image.h"

namespace firesight::watch {

namespace fs = std::filesystem;

const char* to_string(SourceKind k) {
    switch (k) {
        case SourceKind::video_file: return "video";
        case SourceKind::image_folder: return "folder";
        case SourceKind::camera: return "camera";
        case SourceKind::stream: return "stream";
    }
    return "?";
}

SourceKind source_kind(const std::string& uri) {
    if (uri.rfind("/dev/video", 0) == 0) return SourceKind::camera;
    if (!uri.empty() && std::all_of(uri.begin(), uri.end(), [](unsigned char c) { return std::isdigit(c); }))
        return SourceKind::camera;
    if (uri.find("://") != std::string::npos) return SourceKind::stream;
    std::error_code ec;
    if (fs::is_directory(uri, ec)) return SourceKind::image_folder;
    return SourceKind::video_file;
}

SourceSpec parse_source_arg(const std::string& arg) {
    SourceSpec s;
    const auto eq = arg.find('=');
    // "rtsp://host/x?a=b" has '=' after "://": only a '=' before any "://" names the source.
    const auto scheme = arg.find("://");
    if (eq != std::string::npos && (scheme == std::string::npos || eq < scheme)) {
        s.name = arg.substr(0, eq);
        s.uri = arg.substr(eq + 1);
    } else {
        s.uri = arg;
        // A bare URI is named after its file name (or host), made safe for an MQTT topic.
        const auto tail = scheme == std::string::npos ? fs::path(arg).stem().string() : arg.substr(scheme + 3, arg.find_first_of("/:?", scheme + 3) - scheme - 3);
        for (char c : tail) s.name += std::isalnum(static_cast<unsigned char>(c)) || c == '-' ? c : '_';
        if (s.name.empty()) s.name = "source";
    }
    if (s.uri.empty()) throw Error("--source " + arg + ": empty URI");
    if (s.name.empty()) throw Error("--source " + arg + ": empty name (expected name=URI)");
    for (char c : s.name)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-'))
            throw Error("--source " + arg + ": name '" + s.name + "' may only hold letters, digits, '_' and '-' (it becomes an MQTT topic)");
    return s;
}

FrameSource::FrameSource(SourceSpec spec) : spec_(std::move(spec)), kind_(source_kind(spec_.uri)) {}

static bool is_image_file(const fs::path& p) {
    auto ext = p.extension().string();
    std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
    return ext == ".jpg" || ext == ".jpeg" || ext == ".png" || ext == ".bmp";
}

void FrameSource::open() {
    close();
    error_.clear();
    kind_ = source_kind(spec_.uri);
    opened_at_ = std::chrono::steady_clock::now();
    next_due_ = 0;
    if (kind_ == SourceKind::image_folder) {
        std::error_code ec;
        std::vector<fs::path> files;
        std::set<fs::path> still_there;
        for (fs::directory_iterator it(spec_.uri, ec), end; !ec && it != end; it.increment(ec)) {
            if (!it->is_regular_file() || !is_image_file(it->path())) continue;
            if (seen_.count(it->path())) still_there.insert(it->path());
            else files.push_back(it->path());
        }
        if (ec) throw Error(spec_.name + ": cannot read folder " + spec_.uri + ": " + ec.message());
        // Forget images that are gone: a camera that drops (and rotates) snapshots for months must
        // not grow this set with every name it ever used.
        seen_.swap(still_there);
        std::sort(files.begin(), files.end());
        pending_.assign(files.begin(), files.end());
        native_fps_ = spec_.fps > 0 ? spec_.fps : 1.0;
        open_ = true;
        return;
    }
    bool ok = false;
    if (kind_ == SourceKind::camera) {
        const bool index = spec_.uri.rfind("/dev/video", 0) != 0;
        ok = index ? cap_.open(std::stoi(spec_.uri), cv::CAP_V4L2) : cap_.open(spec_.uri, cv::CAP_V4L2);
    } else {
        std::error_code ec;
        if (kind_ == SourceKind::video_file && !fs::exists(spec_.uri, ec))
            throw Error(spec_.name + ": " + spec_.uri + ": no such file");
        ok = cap_.open(spec_.uri, cv::CAP_ANY);
    }
    if (!ok || !cap_.isOpened()) throw Error(spec_.name + ": cannot open " + spec_.uri);
    native_fps_ = cap_.get(cv::CAP_PROP_FPS);
    if (!(native_fps_ > 0 && native_fps_ < 1000)) native_fps_ = 25;
    if (kind_ == SourceKind::video_file) {
        index_ = 0;
        const auto first = started_ ? 0 : static_cast<std::int64_t>(std::llround(spec_.start_s * native_fps_));
        if (first > 0) {
            // Seek (from the keyframe before); where the backend cannot, read up to it.
            if (cap_.set(cv::CAP_PROP_POS_FRAMES, static_cast<double>(first))) index_ = first;
            else
                while (index_ < first && cap_.grab()) ++index_;
            // Paced from here: the first frame read is due now.
            opened_at_ -= std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(index_ / native_fps_));
        }
    }
    started_ = true;
    open_ = true;
}

void FrameSource::close() {
    if (cap_.isOpened()) cap_.release();
    open_ = false;
}

ReadResult FrameSource::read(Frame& out) {
    if (!open_) {
        error_ = "not open";
        return ReadResult::failure;
    }
    return kind_ == SourceKind::image_folder ? read_folder(out) : read_video(out);
}

static std::int64_t wall_ms_now() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

ReadResult FrameSource::read_video(Frame& out) {
    const bool file = kind_ == SourceKind::video_file;
    const double step = spec_.fps > 0 ? 1.0 / spec_.fps : 0.0;
    const auto t0 = std::chrono::steady_clock::now();
    for (;;) {
        if (!cap_.grab()) {
            if (file) {
                // A file that stops short of its frame count was cut (or is still being written).
                const double total = cap_.get(cv::CAP_PROP_FRAME_COUNT);
                if (total > 0 && index_ + 1 < total) {
                    error_ = spec_.uri + ": read failed at frame " + std::to_string(index_);
                    return ReadResult::failure;
                }
                return ReadResult::end;
            }
            error_ = spec_.name + ": stream stopped delivering frames";
            return ReadResult::failure;
        }
        const std::int64_t idx = index_++;
        const double t = file ? idx / native_fps_
                              : std::chrono::duration<double>(std::chrono::steady_clock::now() - opened_at_).count();
        if (step > 0 && t + 1e-9 < next_due_) continue;  // skipped frames are grabbed, never decoded
        if (!cap_.retrieve(out.bgr) || out.bgr.empty()) {
            error_ = spec_.name + ": frame " + std::to_string(idx) + " could not be decoded";
            return ReadResult::failure;
        }
        next_due_ = step > 0 ? std::max(next_due_ + step, t) : t;
        if (step > 0 && next_due_ < t) next_due_ = t + step;
        const auto decoded = std::chrono::steady_clock::now();
        out.read_seconds = std::chrono::duration<double>(decoded - t0).count();
        out.late_seconds = 0;
        if (file && spec_.realtime) {
            // Play a file at its own speed, as a camera would deliver it.
            const auto due = opened_at_ + std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(t));
            out.late_seconds = std::max(0.0, std::chrono::duration<double>(decoded - due).count());
            std::this_thread::sleep_until(due);
        }
        out.index = idx;
        out.time = t;
        out.wall_ms = wall_ms_now();
        return ReadResult::frame;
    }
}

ReadResult FrameSource::read_folder(Frame& out) {
    while (!pending_.empty()) {
        const fs::path p = pending_.front();
        pending_.erase(pending_.begin());
        seen_.insert(p);
        const auto t0 = std::chrono::steady_clock::now();
        try {
            out.bgr = data::decode_image(p);
        } catch (const Error& e) {
            // A half-copied or broken image is skipped, not fatal: the folder is still alive.
            error_ = e.what();
            continue;
        }
        const std::int64_t idx = index_++;
        out.index = idx;
        out.time = idx / native_fps_;
        const auto decoded = std::chrono::steady_clock::now();
        out.read_seconds = std::chrono::duration<double>(decoded - t0).count();
        out.late_seconds = 0;
        if (spec_.realtime) {
            const auto due = opened_at_ + std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(next_due_));
            out.late_seconds = std::max(0.0, std::chrono::duration<double>(decoded - due).count());
            std::this_thread::sleep_until(due);
        }
        next_due_ += 1.0 / native_fps_;
        out.wall_ms = wall_ms_now();
        return ReadResult::frame;
    }
    std::error_code ec;
    if (!fs::is_directory(spec_.uri, ec)) {
        error_ = spec_.name + ": folder " + spec_.uri + " is gone";
        return ReadResult::failure;
    }
    return ReadResult::end;
}

}  // namespace firesight::watch
