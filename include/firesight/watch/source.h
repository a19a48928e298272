// Where the watcher's frames come from: a video file, a folder of images, a V4L2 camera or an
// RTSP/HTTP stream, read at a limited frame rate. Reopening after a drop is the caller's loop.
#pragma once
#include <opencv2/core.hpp>
#include <opencv2/videoio.hpp>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <set>
#include <string>
#include <vector>

namespace firesight::watch {

enum class SourceKind { video_file, image_folder, camera, stream };
const char* to_string(SourceKind k);
// /dev/videoN or a bare camera index -> camera; scheme:// -> stream; a directory -> image_folder;
// anything else -> video_file.
SourceKind source_kind(const std::string& uri);

struct SourceSpec {
    std::string name, uri;
    double fps = 0;         // frames processed per second; 0 = every frame
    bool realtime = true;   // pace files by their timestamps (watch); false = as fast as possible (detect)
    bool loop = false;      // at the end of a file/folder, start again (a folder is rescanned for new images)
    double start_s = 0;     // video files: on the first open, begin this many seconds in (benchmarks stagger sources with it)
    bool operator==(const SourceSpec&) const = default;
};
// Parses "name=URI"; a bare URI gets a name from its file name. Throws Error on an empty part.
SourceSpec parse_source_arg(const std::string& arg);

struct Frame {
    cv::Mat bgr;
    std::int64_t index = 0;  // frame number within the source (files: position in the file)
    double time = 0;         // seconds: position in the file, or since the source was opened
    std::int64_t wall_ms = 0;  // wall clock when the frame was read, ms since the epoch
    double read_seconds = 0;   // spent grabbing and decoding it (and the frames skipped before it), pacing sleeps excluded
    double late_seconds = 0;   // realtime files and folders: how far behind its due time it was read (backlog)
};

enum class ReadResult { frame, end, failure };

class FrameSource {
public:
    explicit FrameSource(SourceSpec spec);
    // Throws firesight::Error naming the source when it cannot be opened.
    void open();
    void close();
    bool is_open() const { return open_; }
    // Blocks (at most until the next frame is due); a failure carries a message in last_error().
    ReadResult read(Frame& out);
    const std::string& last_error() const { return error_; }
    const SourceSpec& spec() const { return spec_; }
    SourceKind kind() const { return kind_; }
    double native_fps() const { return native_fps_; }

private:
    ReadResult read_video(Frame& out);
    ReadResult read_folder(Frame& out);
    SourceSpec spec_;
    SourceKind kind_;
    cv::VideoCapture cap_;
    bool open_ = false;
    double native_fps_ = 0;
    std::int64_t index_ = 0;        // frames consumed from the capture (or files from the folder)
    bool started_ = false;          // opened before: start_s is spent
    double next_due_ = 0;           // time of the next frame to keep under the fps limit
    std::chrono::steady_clock::time_point opened_at_;
    std::vector<std::filesystem::path> pending_;  // folder: images not yet read, in name order
    std::set<std::filesystem::path> seen_;
    std::string error_;
};

}  // namespace firesight::watch
