// The watcher's memory: every event in SQLite (WAL) with a JPEG snapshot beside it, and an outbox
// per notification sink so MQTT and webhooks get every event once, in order, after an outage.
#pragma once
#include <opencv2/core.hpp>

#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "firesight/watch/decision.h"

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
    cv::Rect region;            // the tile that fired, when tiling found the class there; empty otherwise
    std::string verdict;        // "", "false_alarm" or "confirmed": feedback from the dashboard
    std::int64_t verdict_ms = 0;
    nlohmann::json to_json() const;
};

// The "state" event of a decision that changed the alarm state, at `time_ms` for frame `frame`.
// One place builds it, so the watcher and everything that replays decisions store the same fields.
// Probabilities are filled from d.smoothed when `classes` names them.
Event state_event(const std::string& source, const Decision& d, std::int64_t time_ms, std::int64_t frame,
                  const std::vector<std::string>& classes = {});

// How much history the store keeps. The oldest events go first; an episode in progress (see
// EventStore::prune) and events some sink has not received yet are never removed.
struct RetentionConfig {
    double max_age_days = 30;                  // 0 = no age limit
    std::uint64_t max_bytes = 1024ull << 20;   // snapshots + live pages of events.db; 0 = no limit
    double interval_s = 600;                   // how often the watcher prunes
    void validate() const;                     // throws Error on a negative or non-finite value
    bool operator==(const RetentionConfig&) const = default;
};

struct PruneResult {
    std::int64_t events = 0, snapshots = 0;   // removed
    std::uint64_t bytes_freed = 0;
    std::uint64_t bytes_after = 0;             // disk use counted against max_bytes afterwards
    bool over_budget = false;                  // still over max_bytes: only protected events are left
};

// Storage trouble, for /metrics: events that could not be written (a full disk) are held in
// memory and delivered anyway; see EventStore::append.
struct StoreHealth {
    std::int64_t failures = 0;   // failed attempts to write an event, a snapshot or an outbox mark
    std::int64_t held = 0;       // events held in memory now, waiting for space
    std::int64_t dropped = 0;    // held events given up because the memory bound was reached
    std::uint64_t held_bytes = 0;
};

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
    // When that fails (a full disk) the event still gets the next id and is held in memory with
    // its JPEG: the sinks get it from there at once, and it is written, id and delivery marks
    // included, as soon as a later append or retry_storing() succeeds. Never throws for that.
    // `frame_bgr`, when given with a snapshot, is the frame without the overlay, kept beside it
    // as frame_file(snapshot): what dashboard feedback files as training data. It is written
    // after the sinks are woken, before append returns (a kill in between, or a failed write,
    // leaves the event without it: feedback then files the snapshot).
    Event append(Event e, const cv::Mat& snapshot_bgr = {}, const cv::Mat& frame_bgr = {});
    // "cam-1-2-3.jpg" -> "cam-1-2-3.frame.jpg"; "" for "".
    static std::string frame_file(const std::string& snapshot);
    // Writes held events (and delivery marks that could not be written) when space is back.
    // True when nothing is held any more.
    bool retry_storing();
    StoreHealth health() const;
    // A JPEG (snapshot or frame) of a held event, not on disk yet (the dashboard serves it).
    std::optional<std::string> held_snapshot(const std::string& name) const;
    // Newest first; held events (not written yet) included.
    std::vector<Event> recent(int limit, const std::string& source = {}) const;
    std::optional<Event> get(std::int64_t id) const;
    std::int64_t count() const;  // events written to events.db

    // Removes the oldest events older than max_age_days, then the oldest until the disk use is
    // under max_bytes, with their snapshots and delivered outbox rows; also snapshot files no
    // event names (left by a crash) once older than an hour. Never removed: events a sink has not
    // received yet (the outbox must not lose them; if a sink stays down long enough the store
    // goes over budget and says so), and for each source in `active_sources` (not idle now) its
    // episode in progress: every event since its last idle -> suspected change.
    PruneResult prune(const RetentionConfig& r, std::int64_t now_ms, const std::set<std::string>& active_sources = {});
    // Bytes counted against RetentionConfig::max_bytes: snapshot files plus the pages of
    // events.db in use (freed pages are reused by SQLite, so the file size would never go down).
    std::uint64_t disk_usage() const;

    // Records the dashboard verdict ("false_alarm" or "confirmed"); false if there is no such
    // event in events.db. Throws Error on a verdict it does not know.
    bool set_verdict(std::int64_t id, const std::string& verdict, std::int64_t time_ms);

    struct Pending {
        std::int64_t outbox_id;
        Event event;
    };
    // The oldest event `sink` has not received: from events.db first, then held events (all
    // newer). outbox_id is -1 for a held event.
    std::optional<Pending> next_pending(const std::string& sink) const;
    void mark_delivered(std::int64_t outbox_id);
    // Marks `sink` as having received event `event_id`, held or written. When the mark cannot be
    // written (a full disk) it is kept in memory, so the event is not sent twice, and written later.
    void mark_delivered(const std::string& sink, std::int64_t event_id);
    void mark_failed(std::int64_t outbox_id, const std::string& error);
    std::int64_t pending_count(const std::string& sink) const;

    std::filesystem::path snapshot_dir() const { return dir_ / "snapshots"; }
    const std::filesystem::path& dir() const { return dir_; }
    // Called after each append (outside the lock), e.g. to wake dispatchers.
    void set_listener(std::function<void(const Event&)> f);

private:
    struct Held {
        Event event;
        std::vector<std::pair<std::string, std::vector<unsigned char>>> files;  // JPEGs not written yet (name, bytes)
        std::set<std::string> pending;       // sinks that have not received it
    };
    void exec(const char* sql) const;
    void migrate();
    Event read_row(void* stmt) const;
    void insert_locked(const Event& e, const std::set<std::string>& delivered);
    void flush_held_locked();
    void hold_locked(Event& e, std::vector<std::pair<std::string, std::vector<unsigned char>>> files, const std::string& why);
    void note_failure_locked(const std::string& why);
    std::uint64_t db_used_bytes_locked() const;
    std::vector<std::pair<std::int64_t, std::string>> prune_candidates_locked(std::int64_t cutoff_ms,
                                                                              const std::set<std::string>& active) const;
    std::size_t needed_for_budget(const std::vector<std::pair<std::int64_t, std::string>>& batch, std::uint64_t usage,
                                  std::uint64_t budget) const;
    void sweep_orphans(PruneResult& res);
    void delete_events_locked(const std::vector<std::int64_t>& ids);
    std::filesystem::path dir_;
    std::vector<std::string> sinks_;
    sqlite3* db_ = nullptr;
    mutable std::mutex mu_;
    std::function<void(const Event&)> listener_;
    std::uint64_t snapshot_counter_ = 0;
    std::int64_t last_id_ = 0;                 // highest id handed out, written or held
    std::deque<Held> held_;
    std::uint64_t held_bytes_ = 0;
    std::set<std::pair<std::string, std::int64_t>> unmarked_;  // (sink, event id) delivered, mark not written
    StoreHealth health_;
    std::int64_t last_log_ms_ = 0, unlogged_failures_ = 0;
};

}  // namespace firesight::watch
