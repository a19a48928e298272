// Dashboard feedback: a verdict on an event becomes a labelled training image and a row update
// (see record_feedback in firesight/watch/watch.h).
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <opencv2/imgcodecs.hpp>

#include <chrono>
#include <mutex>

#include "firesight/common/fileio.h"
#include "firesight/watch/watch.h"

namespace firesight::watch {

namespace fs = std::filesystem;

namespace {

bool safe_name(const std::string& s) {
    if (s.empty() || s.size() > 64) return false;
    for (char c : s)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-') return false;
    return true;
}

std::string label_of(const Event& e, const std::string& verdict) { return verdict == "false_alarm" ? "neutral" : e.cls; }

// A snapshot file's bytes: from disk, refusing anything but a regular file inside the folder (no
// symlink is followed), or from memory while a full disk holds the event.
std::string snapshot_bytes(const EventStore& store, const std::string& name) {
    if (auto held = store.held_snapshot(name)) return *held;
    const auto path = store.snapshot_dir() / name;
    const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st {};
    if (fd < 0 || ::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0) ::close(fd);
        throw FeedbackError(410, "snapshot " + name + " is gone (removed by retention?)");
    }
    std::string out(static_cast<std::size_t>(st.st_size), '\0');
    std::size_t got = 0;
    while (got < out.size()) {
        const auto n = ::read(fd, out.data() + got, out.size() - got);
        if (n <= 0) break;
        got += static_cast<std::size_t>(n);
    }
    ::close(fd);
    if (got != out.size()) throw FeedbackError(500, "snapshot " + name + ": short read");
    return out;
}

std::vector<fs::path> write_copies(const fs::path& folder, const std::string& stem, const std::string& jpeg, const cv::Rect& region) {
    std::error_code ec;
    fs::create_directories(folder, ec);
    if (ec) throw FeedbackError(500, folder.string() + ": cannot create: " + ec.message());
    std::vector<fs::path> files{folder / (stem + ".jpg")};
    write_file_atomic(files[0], jpeg);
    if (region.empty()) return files;
    const cv::Mat full = cv::imdecode(std::vector<unsigned char>(jpeg.begin(), jpeg.end()), cv::IMREAD_COLOR);
    const cv::Rect r = region & cv::Rect(0, 0, full.cols, full.rows);
    if (r.empty()) return files;  // a region outside the stored frame: only the full frame is kept
    std::vector<unsigned char> crop;
    cv::imencode(".jpg", full(r), crop, {cv::IMWRITE_JPEG_QUALITY, 92});
    files.push_back(folder / (stem + "-region.jpg"));
    write_file_atomic(files[1], std::string_view(reinterpret_cast<const char*>(crop.data()), crop.size()));
    return files;
}

void remove_copies(const fs::path& folder, const std::string& stem) {
    std::error_code ec;
    fs::remove(folder / (stem + ".jpg"), ec);
    fs::remove(folder / (stem + "-region.jpg"), ec);
}

}  // namespace

FeedbackResult record_feedback(EventStore& store, const fs::path& feedback_dir, std::int64_t id, const std::string& verdict) {
    if (verdict != "false_alarm" && verdict != "confirmed")
        throw FeedbackError(400, "verdict \"" + verdict + "\": expected \"false_alarm\" or \"confirmed\"");
    // Two clicks at once on one event must not interleave their copies and rows.
    static std::mutex mu;
    std::lock_guard lk(mu);
    const auto e = store.get(id);
    if (!e) throw FeedbackError(404, "no event " + std::to_string(id));
    if (e->snapshot.empty()) throw FeedbackError(409, "event " + std::to_string(id) + " has no snapshot to label");
    const std::string label = label_of(*e, verdict);
    if (!safe_name(label)) throw FeedbackError(409, "event " + std::to_string(id) + " has no class to file it under");
    const std::string stem = "event-" + std::to_string(id) + "-" + (safe_name(e->source) ? e->source : "source");
    // The frame without the overlay when the event has one (a model must not learn that a red
    // border means fire); events stored before frames were kept have only the annotated snapshot.
    std::string jpeg;
    try {
        jpeg = snapshot_bytes(store, EventStore::frame_file(e->snapshot));
    } catch (const FeedbackError&) {
        jpeg = snapshot_bytes(store, e->snapshot);
    }
    if (!e->verdict.empty() && safe_name(label_of(*e, e->verdict)) && label_of(*e, e->verdict) != label)
        remove_copies(feedback_dir / label_of(*e, e->verdict), stem);
    FeedbackResult res{verdict, label, {}};
    try {
        res.files = write_copies(feedback_dir / label, stem, jpeg, e->region);
    } catch (const FeedbackError&) {
        throw;
    } catch (const Error& err) {
        throw FeedbackError(507, err.what());
    }
    const auto now = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
    bool recorded = false;
    try {
        recorded = store.set_verdict(id, verdict, now);
    } catch (const Error& err) {
        remove_copies(feedback_dir / label, stem);
        throw FeedbackError(507, err.what());
    }
    if (!recorded) {
        // Held in memory by a full disk: no row to record it in yet. Undo, and say so.
        remove_copies(feedback_dir / label, stem);
        throw FeedbackError(503, "event " + std::to_string(id) + " is not written yet (disk full); try again later");
    }
    return res;
}

}  // namespace firesight::watch
