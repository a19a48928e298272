// SQLite event store and outbox (see firesight/watch/events.h).
#include "firesight/watch/events.h"

#include <sqlite3.h>
#include <unistd.h>

#include <opencv2/imgcodecs.hpp>

#include <chrono>
#include <cstdio>

#include "firesight/common/error.h"
#include "firesight/common/fileio.h"
#include "sqlite_util.h"

namespace firesight::watch {

namespace fs = std::filesystem;

Event state_event(const std::string& source, const Decision& d, std::int64_t time_ms, std::int64_t frame,
                  const std::vector<std::string>& classes) {
    Event e;
    e.source = source;
    e.time_ms = time_ms;
    e.kind = "state";
    e.from = to_string(d.from);
    e.to = to_string(d.to);
    e.cls = d.cls;
    e.score = d.score;
    e.peak = d.peak;
    e.frame = frame;
    for (std::size_t c = 0; c < classes.size() && c < d.smoothed.size(); ++c) e.probabilities[classes[c]] = d.smoothed[c];
    return e;
}

nlohmann::json Event::to_json() const {
    nlohmann::json j{{"id", id},         {"event_id", id},   {"source", source}, {"time_ms", time_ms},
                     {"kind", kind},     {"from", from},     {"to", to},         {"class", cls},
                     {"score", score},   {"peak", peak},     {"frame", frame},   {"frame_wall_ms", frame_wall_ms},
                     {"snapshot", snapshot}, {"detail", detail}, {"probabilities", probabilities},
                     {"verdict", verdict}};
    j["region"] = region.empty() ? nlohmann::json(nullptr) : nlohmann::json{region.x, region.y, region.width, region.height};
    return j;
}

namespace {

constexpr const char* kEventColumns =
    "id, source, time_ms, kind, from_state, to_state, class, score, peak, frame, frame_wall_ms, snapshot, detail, probabilities,"
    " verdict, verdict_ms, region";

// Bounds on what a full disk may keep in memory. 1000 events is weeks of alarms for a few
// cameras; 32 MiB of JPEGs is a few hundred snapshots and fits next to the model on a small board.
constexpr std::size_t kMaxHeldEvents = 1000;
constexpr std::uint64_t kMaxHeldJpegBytes = 32ull << 20;
constexpr std::int64_t kFailureLogIntervalMs = 60000;

std::int64_t wall_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

EventStore::EventStore(const fs::path& dir, std::vector<std::string> sinks) : dir_(dir), sinks_(std::move(sinks)) {
    std::error_code ec;
    fs::create_directories(snapshot_dir(), ec);
    if (ec) throw Error(snapshot_dir().string() + ": cannot create: " + ec.message());
    const auto db_path = dir_ / "events.db";
    if (sqlite3_open_v2(db_path.c_str(), &db_, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr) != SQLITE_OK) {
        std::string msg = db_ ? sqlite3_errmsg(db_) : "out of memory";
        sqlite3_close(db_);
        db_ = nullptr;
        throw Error(db_path.string() + ": " + msg);
    }
    sqlite3_busy_timeout(db_, 10000);
    // WAL: readers (the dashboard) never block the writer; synchronous=FULL: a committed event
    // survives even a power cut, not only a killed process.
    exec("PRAGMA journal_mode=WAL");
    exec("PRAGMA synchronous=FULL");
    // The WAL file keeps its largest size after a checkpoint unless limited; on a small card
    // those megabytes are better spent on snapshots.
    exec("PRAGMA journal_size_limit=1048576");
    exec("CREATE TABLE IF NOT EXISTS events ("
         " id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, time_ms INTEGER NOT NULL, kind TEXT NOT NULL,"
         " from_state TEXT, to_state TEXT, class TEXT, score REAL, peak REAL, frame INTEGER, frame_wall_ms INTEGER,"
         " snapshot TEXT, detail TEXT, probabilities TEXT)");
    exec("CREATE TABLE IF NOT EXISTS outbox ("
         " id INTEGER PRIMARY KEY AUTOINCREMENT, event_id INTEGER NOT NULL REFERENCES events(id), sink TEXT NOT NULL,"
         " delivered_ms INTEGER, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, UNIQUE(sink, event_id))");
    exec("CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(sink, delivered_ms, id)");
    migrate();
    Stmt q(db_, "SELECT MAX(COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0), COALESCE((SELECT MAX(id) FROM events), 0))");
    if (sqlite3_step(q.s) == SQLITE_ROW) last_id_ = sqlite3_column_int64(q.s, 0);
}

// Schema version 2 adds the dashboard verdict and the region that fired to events. Databases
// written before it (version 0) get the columns added in place; their events are kept as they are.
void EventStore::migrate() {
    Stmt v(db_, "PRAGMA user_version");
    const auto version = sqlite3_step(v.s) == SQLITE_ROW ? sqlite3_column_int64(v.s, 0) : 0;
    if (version >= 2) return;
    std::set<std::string> columns;
    {
        Stmt info(db_, "PRAGMA table_info(events)");
        while (sqlite3_step(info.s) == SQLITE_ROW) columns.insert(col_text(info.s, 1));
    }
    exec("BEGIN IMMEDIATE");
    try {
        if (!columns.count("verdict")) exec("ALTER TABLE events ADD COLUMN verdict TEXT");
        if (!columns.count("verdict_ms")) exec("ALTER TABLE events ADD COLUMN verdict_ms INTEGER");
        if (!columns.count("region")) exec("ALTER TABLE events ADD COLUMN region TEXT");
        exec("PRAGMA user_version = 2");
        exec("COMMIT");
    } catch (...) {
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
    }
}

EventStore::~EventStore() {
    if (db_) sqlite3_close(db_);
}

void EventStore::exec(const char* sql) const {
    char* err = nullptr;
    if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
        std::string msg = err ? err : "unknown error";
        sqlite3_free(err);
        throw Error((dir_ / "events.db").string() + ": " + msg + " in: " + sql);
    }
}

void EventStore::set_listener(std::function<void(const Event&)> f) {
    std::lock_guard lk(mu_);
    listener_ = std::move(f);
}

std::string EventStore::frame_file(const std::string& snapshot) {
    if (snapshot.size() < 4 || snapshot.compare(snapshot.size() - 4, 4, ".jpg") != 0) return {};
    return snapshot.substr(0, snapshot.size() - 4) + ".frame.jpg";
}

namespace {

std::string_view bytes_of(const std::vector<unsigned char>& v) { return {reinterpret_cast<const char*>(v.data()), v.size()}; }

}  // namespace

Event EventStore::append(Event e, const cv::Mat& snapshot_bgr, const cv::Mat& frame_bgr) {
    std::vector<std::pair<std::string, std::vector<unsigned char>>> files;  // not on disk yet
    std::string write_error;
    // The clean frame (for feedback, read when a person gives a verdict) is encoded and written
    // after the sinks have been woken: a 1080p JPEG and its fsync are 10-20 ms the alarm need not
    // wait for. The annotated snapshot the event names is still on disk before its row.
    bool frame_later = false;
    if (!snapshot_bgr.empty()) {
        std::uint64_t n;
        {
            std::lock_guard lk(mu_);
            n = ++snapshot_counter_;
        }
        // Unique without the event id (not known before the insert): time, pid, counter.
        e.snapshot = e.source + "-" + std::to_string(e.time_ms) + "-" + std::to_string(::getpid()) + "-" + std::to_string(n) + ".jpg";
        files.emplace_back(e.snapshot, std::vector<unsigned char>{});
        cv::imencode(".jpg", snapshot_bgr, files.back().second, {cv::IMWRITE_JPEG_QUALITY, 85});
        // Written outside the lock: an fsync on an SD card must not stall the dashboard.
        try {
            while (!files.empty()) {
                write_file_atomic(snapshot_dir() / files.front().first, bytes_of(files.front().second));
                files.erase(files.begin());  // on disk: nothing to hold
            }
        } catch (const std::exception& err) {
            write_error = err.what();
        }
        if (!frame_bgr.empty()) {
            if (write_error.empty()) {
                frame_later = true;
            } else {
                // Held in memory with the snapshot, as the disk refused the first file.
                files.emplace_back(frame_file(e.snapshot), std::vector<unsigned char>{});
                cv::imencode(".jpg", frame_bgr, files.back().second, {cv::IMWRITE_JPEG_QUALITY, 92});
            }
        }
    }
    std::function<void(const Event&)> listener;
    {
        std::lock_guard lk(mu_);
        e.id = ++last_id_;
        try {
            if (!write_error.empty()) throw Error(write_error);
            flush_held_locked();  // older events first, so events.db gets ids in order
            insert_locked(e, {});
        } catch (const std::exception& err) {
            hold_locked(e, std::move(files), err.what());
        }
        listener = listener_;
    }
    if (listener) listener(e);
    if (frame_later) {
        std::vector<unsigned char> jpeg;
        try {
            cv::imencode(".jpg", frame_bgr, jpeg, {cv::IMWRITE_JPEG_QUALITY, 92});
            write_file_atomic(snapshot_dir() / frame_file(e.snapshot), bytes_of(jpeg));
        } catch (const std::exception& err) {
            // Without it, feedback files the annotated snapshot (record_feedback's fallback).
            std::lock_guard lk(mu_);
            note_failure_locked(std::string("clean frame of event ") + std::to_string(e.id) + ": " + err.what());
        }
    }
    return e;
}

// One event and its outbox rows in one transaction, under the id already given to it. Sinks in
// `delivered` got it while it was held: their rows are written as delivered.
void EventStore::insert_locked(const Event& e, const std::set<std::string>& delivered) {
    exec("BEGIN IMMEDIATE");
    try {
        Stmt ins(db_,
                 "INSERT INTO events (id, source, time_ms, kind, from_state, to_state, class, score, peak, frame, frame_wall_ms,"
                 " snapshot, detail, probabilities, region) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)");
        ins.bind(1, e.id);
        ins.bind(2, e.source);
        ins.bind(3, e.time_ms);
        ins.bind(4, e.kind);
        ins.bind(5, e.from);
        ins.bind(6, e.to);
        ins.bind(7, e.cls);
        ins.bind(8, static_cast<double>(e.score));
        ins.bind(9, static_cast<double>(e.peak));
        ins.bind(10, e.frame);
        ins.bind(11, e.frame_wall_ms);
        ins.bind(12, e.snapshot);
        ins.bind(13, e.detail);
        ins.bind(14, e.probabilities.dump());
        if (!e.region.empty())
            ins.bind(15, std::to_string(e.region.x) + "," + std::to_string(e.region.y) + "," + std::to_string(e.region.width) + "," +
                             std::to_string(e.region.height));
        if (sqlite3_step(ins.s) != SQLITE_DONE) throw Error(std::string("events.db: insert event: ") + sqlite3_errmsg(db_));
        for (const auto& sink : sinks_) {
            Stmt q(db_, "INSERT INTO outbox (event_id, sink, delivered_ms) VALUES (?, ?, ?)");
            q.bind(1, e.id);
            q.bind(2, sink);
            if (delivered.count(sink)) q.bind(3, wall_ms());
            if (sqlite3_step(q.s) != SQLITE_DONE) throw Error(std::string("events.db: insert outbox: ") + sqlite3_errmsg(db_));
        }
        exec("COMMIT");
    } catch (...) {
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
    }
}

// Writes what a full disk left in memory, oldest first; throws (keeping the rest) at the first
// failure, so the order of ids in events.db never has a hole filled later by a newer event.
void EventStore::flush_held_locked() {
    while (!unmarked_.empty()) {
        const auto [sink, id] = *unmarked_.begin();
        Stmt q(db_, "UPDATE outbox SET delivered_ms = ?, attempts = attempts + 1 WHERE sink = ? AND event_id = ?");
        q.bind(1, wall_ms());
        q.bind(2, sink);
        q.bind(3, id);
        if (sqlite3_step(q.s) != SQLITE_DONE) throw Error(std::string("events.db: mark delivered: ") + sqlite3_errmsg(db_));
        unmarked_.erase(unmarked_.begin());
    }
    std::size_t written = 0;
    while (!held_.empty()) {
        auto& h = held_.front();
        while (!h.files.empty()) {
            write_file_atomic(snapshot_dir() / h.files.front().first, bytes_of(h.files.front().second));
            held_bytes_ -= h.files.front().second.size();
            h.files.erase(h.files.begin());
        }
        std::set<std::string> delivered;
        for (const auto& s : sinks_)
            if (!h.pending.count(s)) delivered.insert(s);
        insert_locked(h.event, delivered);
        held_.pop_front();
        ++written;
    }
    health_.held = 0;
    health_.held_bytes = 0;
    if (written) std::fprintf(stderr, "firesight: storing events again: %zu held event(s) written to %s\n", written, dir_.c_str());
}

void EventStore::note_failure_locked(const std::string& why) {
    ++health_.failures;
    ++unlogged_failures_;
    // A full disk fails every event and every delivery mark: one line a minute, not thousands.
    const auto now = wall_ms();
    if (now - last_log_ms_ < kFailureLogIntervalMs) return;
    std::fprintf(stderr, "firesight: cannot store events (%lld failure(s) since the last message): %s; %zu event(s) held in memory, "
                 "delivered anyway\n", static_cast<long long>(unlogged_failures_), why.c_str(), held_.size());
    last_log_ms_ = now;
    unlogged_failures_ = 0;
}

// The choice for events that cannot be written: keep them (with their JPEGs) in memory and give
// them to the dispatchers like any other, because an alarm that is not sent is worse than one
// not recorded. Memory is bounded: past kMaxHeldJpegBytes the oldest held JPEGs are dropped
// (the event stays, without its snapshot), past kMaxHeldEvents the oldest held events.
void EventStore::hold_locked(Event& e, std::vector<std::pair<std::string, std::vector<unsigned char>>> files, const std::string& why) {
    held_.push_back({e, std::move(files), std::set<std::string>(sinks_.begin(), sinks_.end())});
    for (const auto& f : held_.back().files) held_bytes_ += f.second.size();
    note_failure_locked(why);
    for (auto& h : held_) {
        if (held_bytes_ <= kMaxHeldJpegBytes) break;
        for (const auto& f : h.files) {
            held_bytes_ -= f.second.size();
            if (f.first == h.event.snapshot) h.event.snapshot.clear();
        }
        if (h.files.empty()) continue;
        h.files.clear();
        h.event.detail += h.event.detail.empty() ? "snapshot dropped: disk full" : " (snapshot dropped: disk full)";
    }
    while (held_.size() > kMaxHeldEvents) {
        std::fprintf(stderr, "firesight: disk full too long: event %lld dropped from memory%s\n",
                     static_cast<long long>(held_.front().event.id), held_.front().pending.empty() ? " (it was delivered)" : "");
        for (const auto& f : held_.front().files) held_bytes_ -= f.second.size();
        held_.pop_front();
        ++health_.dropped;
    }
    health_.held = static_cast<std::int64_t>(held_.size());
    health_.held_bytes = held_bytes_;
    e = held_.back().event;
}

bool EventStore::retry_storing() {
    std::lock_guard lk(mu_);
    if (held_.empty() && unmarked_.empty()) return true;
    try {
        flush_held_locked();
    } catch (const std::exception& err) {
        note_failure_locked(err.what());
    }
    return held_.empty() && unmarked_.empty();
}

StoreHealth EventStore::health() const {
    std::lock_guard lk(mu_);
    return health_;
}

std::optional<std::string> EventStore::held_snapshot(const std::string& name) const {
    std::lock_guard lk(mu_);
    for (const auto& h : held_)
        for (const auto& f : h.files)
            if (f.first == name) return std::string(f.second.begin(), f.second.end());
    return std::nullopt;
}

Event EventStore::read_row(void* stmt) const {
    auto* s = static_cast<sqlite3_stmt*>(stmt);
    Event e;
    e.id = sqlite3_column_int64(s, 0);
    e.source = col_text(s, 1);
    e.time_ms = sqlite3_column_int64(s, 2);
    e.kind = col_text(s, 3);
    e.from = col_text(s, 4);
    e.to = col_text(s, 5);
    e.cls = col_text(s, 6);
    e.score = static_cast<float>(sqlite3_column_double(s, 7));
    e.peak = static_cast<float>(sqlite3_column_double(s, 8));
    e.frame = sqlite3_column_int64(s, 9);
    e.frame_wall_ms = sqlite3_column_int64(s, 10);
    e.snapshot = col_text(s, 11);
    e.detail = col_text(s, 12);
    e.probabilities = nlohmann::json::parse(col_text(s, 13), nullptr, false);
    if (e.probabilities.is_discarded()) e.probabilities = nlohmann::json::object();
    e.verdict = col_text(s, 14);
    e.verdict_ms = sqlite3_column_int64(s, 15);
    int x = 0, y = 0, w = 0, h = 0;
    if (std::sscanf(col_text(s, 16).c_str(), "%d,%d,%d,%d", &x, &y, &w, &h) == 4) e.region = cv::Rect(x, y, w, h);
    return e;
}

std::vector<Event> EventStore::recent(int limit, const std::string& source) const {
    std::lock_guard lk(mu_);
    std::vector<Event> out;
    // Held events are the newest: they come first.
    for (auto it = held_.rbegin(); it != held_.rend() && static_cast<int>(out.size()) < limit; ++it)
        if (source.empty() || it->event.source == source) out.push_back(it->event);
    const std::string sql = std::string("SELECT ") + kEventColumns + " FROM events" + (source.empty() ? "" : " WHERE source = ?2") +
                            " ORDER BY id DESC LIMIT ?1";
    Stmt q(db_, sql.c_str());
    q.bind(1, static_cast<std::int64_t>(limit - static_cast<int>(out.size())));
    if (!source.empty()) q.bind(2, source);
    while (sqlite3_step(q.s) == SQLITE_ROW) out.push_back(read_row(q.s));
    return out;
}

std::optional<Event> EventStore::get(std::int64_t id) const {
    std::lock_guard lk(mu_);
    for (const auto& h : held_)
        if (h.event.id == id) return h.event;
    Stmt q(db_, (std::string("SELECT ") + kEventColumns + " FROM events WHERE id = ?").c_str());
    q.bind(1, id);
    if (sqlite3_step(q.s) == SQLITE_ROW) return read_row(q.s);
    return std::nullopt;
}

std::int64_t EventStore::count() const {
    std::lock_guard lk(mu_);
    Stmt q(db_, "SELECT COUNT(*) FROM events");
    return sqlite3_step(q.s) == SQLITE_ROW ? sqlite3_column_int64(q.s, 0) : 0;
}

bool EventStore::set_verdict(std::int64_t id, const std::string& verdict, std::int64_t time_ms) {
    if (verdict != "false_alarm" && verdict != "confirmed") throw Error("verdict " + verdict + ": expected false_alarm or confirmed");
    std::lock_guard lk(mu_);
    Stmt q(db_, "UPDATE events SET verdict = ?, verdict_ms = ? WHERE id = ?");
    q.bind(1, verdict);
    q.bind(2, time_ms);
    q.bind(3, id);
    if (sqlite3_step(q.s) != SQLITE_DONE) throw Error(std::string("events.db: record verdict: ") + sqlite3_errmsg(db_));
    return sqlite3_changes(db_) > 0;
}

std::optional<EventStore::Pending> EventStore::next_pending(const std::string& sink) const {
    std::lock_guard lk(mu_);
    // Rows delivered while their mark could not be written (unmarked_) are skipped, not resent.
    Stmt q(db_, "SELECT id, event_id FROM outbox WHERE sink = ? AND delivered_ms IS NULL ORDER BY id");
    q.bind(1, sink);
    while (sqlite3_step(q.s) == SQLITE_ROW) {
        const std::int64_t event_id = sqlite3_column_int64(q.s, 1);
        if (unmarked_.count({sink, event_id})) continue;
        Pending p;
        p.outbox_id = sqlite3_column_int64(q.s, 0);
        Stmt e(db_, (std::string("SELECT ") + kEventColumns + " FROM events WHERE id = ?").c_str());
        e.bind(1, event_id);
        if (sqlite3_step(e.s) != SQLITE_ROW) return std::nullopt;
        p.event = read_row(e.s);
        return p;
    }
    for (const auto& h : held_)
        if (h.pending.count(sink)) return Pending{-1, h.event};
    return std::nullopt;
}

void EventStore::mark_delivered(std::int64_t outbox_id) {
    std::lock_guard lk(mu_);
    Stmt q(db_, "UPDATE outbox SET delivered_ms = ?, attempts = attempts + 1 WHERE id = ?");
    q.bind(1, wall_ms());
    q.bind(2, outbox_id);
    if (sqlite3_step(q.s) != SQLITE_DONE) throw Error(std::string("events.db: mark delivered: ") + sqlite3_errmsg(db_));
}

void EventStore::mark_delivered(const std::string& sink, std::int64_t event_id) {
    std::lock_guard lk(mu_);
    for (auto& h : held_)
        if (h.event.id == event_id) {
            h.pending.erase(sink);
            return;
        }
    Stmt q(db_, "UPDATE outbox SET delivered_ms = ?, attempts = attempts + 1 WHERE sink = ? AND event_id = ?");
    q.bind(1, wall_ms());
    q.bind(2, sink);
    q.bind(3, event_id);
    if (sqlite3_step(q.s) != SQLITE_DONE) {
        unmarked_.insert({sink, event_id});
        note_failure_locked(std::string("events.db: mark delivered: ") + sqlite3_errmsg(db_));
    }
}

void EventStore::mark_failed(std::int64_t outbox_id, const std::string& error) {
    if (outbox_id < 0) return;  // a held event: nothing written to count attempts in
    std::lock_guard lk(mu_);
    Stmt q(db_, "UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?");
    q.bind(1, error);
    q.bind(2, outbox_id);
    sqlite3_step(q.s);
}

std::int64_t EventStore::pending_count(const std::string& sink) const {
    std::lock_guard lk(mu_);
    Stmt q(db_, "SELECT COUNT(*) FROM outbox WHERE sink = ? AND delivered_ms IS NULL");
    q.bind(1, sink);
    std::int64_t n = sqlite3_step(q.s) == SQLITE_ROW ? sqlite3_column_int64(q.s, 0) : 0;
    for (const auto& [s, id] : unmarked_) n -= s == sink;
    for (const auto& h : held_) n += h.pending.count(sink) ? 1 : 0;
    return n;
}

}  // namespace firesight::watch
