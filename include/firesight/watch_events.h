// The watcher's memory: every event in SQLite (WAL) with a JPEG snapshot beside it, and an outbox
// per notification sink so MQTT and webhooks get every event once, in order, after an outage.
#pragma once
#include <opencv2/core.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "firesight/watch_decision.h"

struct sqlite3;

namespace firesight::watch {

struct Event {
    std::int64_t id = 0;
    std::string source;
    std::int64_t time_ms = 0;   // wall clock, ms since the epoch
    std::string kind;           // "state", "outage", "restored", "ended"
    std::string from, to;       // alarm states for kind "state"
    std::string cls;            // alarm class in focus
    float score = 0, peak = 0;
    std::int64_t frame = -1;
    std::int64_t frame_wall_ms = 0;  // when the frame was read (for end-to-end latency)
    std::string snapshot;       // file name under the snapshot folder, "" if none
    std::string detail;         // free text, e.g. why a source dropped
    nlohmann::json probabilities = nlohmann::json::object();
    nlohmann::json to_json() const;
};

// The "state" event of a decision that changed the alarm state, at `time_ms` for frame `frame`.
// One place builds it, so the watcher and everything that replays decisions store the same fields.
// Probabilities are filled from d.smoothed when `classes` names them.
Event state_event(const std::string& source, const Decision& d, std::int64_t time_ms, std::int64_t frame,
                  const std::vector<std::string>& classes = {});

class EventStore {
public:
    // Opens (creating if needed) DIR/events.db and DIR/snapshots/. Every appended event is queued
    // in the outbox of each of `sinks`.
    EventStore(const std::filesystem::path& dir, std::vector<std::string> sinks = {});
    ~EventStore();
    EventStore(const EventStore&) = delete;
    EventStore& operator=(const EventStore&) = delete;

    // Writes the snapshot (atomically) first, then the event and its outbox rows in one
    // transaction, so a kill at any point leaves either the whole event or none of it.
    Event append(Event e, const cv::Mat& snapshot_bgr = {});
    std::vector<Event> recent(int limit, const std::string& source = {}) const;
    std::optional<Event> get(std::int64_t id) const;
    std::int64_t count() const;

    struct Pending {
        std::int64_t outbox_id;
        Event event;
    };
    std::optional<Pending> next_pending(const std::string& sink) const;
    void mark_delivered(std::int64_t outbox_id);
    void mark_failed(std::int64_t outbox_id, const std::string& error);
    std::int64_t pending_count(const std::string& sink) const;

    std::filesystem::path snapshot_dir() const { return dir_ / "snapshots"; }
    const std::filesystem::path& dir() const { return dir_; }
    // Called after each append (outside the lock), e.g. to wake dispatchers.
    void set_listener(std::function<void(const Event&)> f);

private:
    void exec(const char* sql) const;
    Event read_row(void* stmt) const;
    std::filesystem::path dir_;
    std::vector<std::string> sinks_;
    sqlite3* db_ = nullptr;
    mutable std::mutex mu_;
    std::function<void(const Event&)> listener_;
    std::uint64_t snapshot_counter_ = 0;
};

}  // namespace firesight::watch
