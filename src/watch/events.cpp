// SQLite event store and outbox (see firesight/watch_events.h).
#include "firesight/watch_events.h"

#include <sqlite3.h>
#include <unistd.h>

#include <opencv2/imgcodecs.hpp>

#include "firesight/error.h"
#include "firesight/fileio.h"

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
                     {"snapshot", snapshot}, {"detail", detail}, {"probabilities", probabilities}};
    return j;
}

namespace {

struct Stmt {
    sqlite3_stmt* s = nullptr;
    Stmt(sqlite3* db, const char* sql) {
        if (sqlite3_prepare_v2(db, sql, -1, &s, nullptr) != SQLITE_OK)
            throw Error(std::string("events.db: ") + sqlite3_errmsg(db) + " in: " + sql);
    }
    ~Stmt() { sqlite3_finalize(s); }
    void bind(int i, std::int64_t v) { sqlite3_bind_int64(s, i, v); }
    void bind(int i, double v) { sqlite3_bind_double(s, i, v); }
    void bind(int i, const std::string& v) { sqlite3_bind_text(s, i, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT); }
};

std::string col_text(sqlite3_stmt* s, int i) {
    const auto* t = sqlite3_column_text(s, i);
    return t ? reinterpret_cast<const char*>(t) : "";
}

constexpr const char* kEventColumns =
    "id, source, time_ms, kind, from_state, to_state, class, score, peak, frame, frame_wall_ms, snapshot, detail, probabilities";

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
    exec("CREATE TABLE IF NOT EXISTS events ("
         " id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, time_ms INTEGER NOT NULL, kind TEXT NOT NULL,"
         " from_state TEXT, to_state TEXT, class TEXT, score REAL, peak REAL, frame INTEGER, frame_wall_ms INTEGER,"
         " snapshot TEXT, detail TEXT, probabilities TEXT)");
    exec("CREATE TABLE IF NOT EXISTS outbox ("
         " id INTEGER PRIMARY KEY AUTOINCREMENT, event_id INTEGER NOT NULL REFERENCES events(id), sink TEXT NOT NULL,"
         " delivered_ms INTEGER, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, UNIQUE(sink, event_id))");
    exec("CREATE INDEX IF NOT EXISTS outbox_pending ON outbox(sink, delivered_ms, id)");
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

Event EventStore::append(Event e, const cv::Mat& snapshot_bgr) {
    if (!snapshot_bgr.empty()) {
        std::vector<unsigned char> jpeg;
        cv::imencode(".jpg", snapshot_bgr, jpeg, {cv::IMWRITE_JPEG_QUALITY, 85});
        std::uint64_t n;
        {
            std::lock_guard lk(mu_);
            n = ++snapshot_counter_;
        }
        // Unique without the event id (not known before the insert): time, pid, counter.
        e.snapshot = e.source + "-" + std::to_string(e.time_ms) + "-" + std::to_string(::getpid()) + "-" + std::to_string(n) + ".jpg";
        write_file_atomic(snapshot_dir() / e.snapshot, std::string_view(reinterpret_cast<const char*>(jpeg.data()), jpeg.size()));
    }
    std::function<void(const Event&)> listener;
    {
        std::lock_guard lk(mu_);
        exec("BEGIN IMMEDIATE");
        try {
            Stmt ins(db_,
                     "INSERT INTO events (source, time_ms, kind, from_state, to_state, class, score, peak, frame, frame_wall_ms,"
                     " snapshot, detail, probabilities) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)");
            ins.bind(1, e.source);
            ins.bind(2, e.time_ms);
            ins.bind(3, e.kind);
            ins.bind(4, e.from);
            ins.bind(5, e.to);
            ins.bind(6, e.cls);
            ins.bind(7, static_cast<double>(e.score));
            ins.bind(8, static_cast<double>(e.peak));
            ins.bind(9, e.frame);
            ins.bind(10, e.frame_wall_ms);
            ins.bind(11, e.snapshot);
            ins.bind(12, e.detail);
            ins.bind(13, e.probabilities.dump());
            if (sqlite3_step(ins.s) != SQLITE_DONE) throw Error(std::string("events.db: insert event: ") + sqlite3_errmsg(db_));
            e.id = sqlite3_last_insert_rowid(db_);
            for (const auto& sink : sinks_) {
                Stmt q(db_, "INSERT INTO outbox (event_id, sink) VALUES (?, ?)");
                q.bind(1, e.id);
                q.bind(2, sink);
                if (sqlite3_step(q.s) != SQLITE_DONE) throw Error(std::string("events.db: insert outbox: ") + sqlite3_errmsg(db_));
            }
            exec("COMMIT");
        } catch (...) {
            sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
            throw;
        }
        listener = listener_;
    }
    if (listener) listener(e);
    return e;
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
    return e;
}

std::vector<Event> EventStore::recent(int limit, const std::string& source) const {
    std::lock_guard lk(mu_);
    const std::string sql = std::string("SELECT ") + kEventColumns + " FROM events" + (source.empty() ? "" : " WHERE source = ?2") +
                            " ORDER BY id DESC LIMIT ?1";
    Stmt q(db_, sql.c_str());
    q.bind(1, static_cast<std::int64_t>(limit));
    if (!source.empty()) q.bind(2, source);
    std::vector<Event> out;
    while (sqlite3_step(q.s) == SQLITE_ROW) out.push_back(read_row(q.s));
    return out;
}

std::optional<Event> EventStore::get(std::int64_t id) const {
    std::lock_guard lk(mu_);
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

std::optional<EventStore::Pending> EventStore::next_pending(const std::string& sink) const {
    std::lock_guard lk(mu_);
    const std::string sql = "SELECT id, event_id FROM outbox WHERE sink = ? AND delivered_ms IS NULL ORDER BY id LIMIT 1";
    Stmt q(db_, sql.c_str());
    q.bind(1, sink);
    if (sqlite3_step(q.s) != SQLITE_ROW) return std::nullopt;
    Pending p;
    p.outbox_id = sqlite3_column_int64(q.s, 0);
    const std::int64_t event_id = sqlite3_column_int64(q.s, 1);
    Stmt e(db_, (std::string("SELECT ") + kEventColumns + " FROM events WHERE id = ?").c_str());
    e.bind(1, event_id);
    if (sqlite3_step(e.s) != SQLITE_ROW) return std::nullopt;
    p.event = read_row(e.s);
    return p;
}

void EventStore::mark_delivered(std::int64_t outbox_id) {
    std::lock_guard lk(mu_);
    Stmt q(db_, "UPDATE outbox SET delivered_ms = ?, attempts = attempts + 1 WHERE id = ?");
    q.bind(1, static_cast<std::int64_t>(
                  std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count()));
    q.bind(2, outbox_id);
    if (sqlite3_step(q.s) != SQLITE_DONE) throw Error(std::string("events.db: mark delivered: ") + sqlite3_errmsg(db_));
}

void EventStore::mark_failed(std::int64_t outbox_id, const std::string& error) {
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
    return sqlite3_step(q.s) == SQLITE_ROW ? sqlite3_column_int64(q.s, 0) : 0;
}

}  // namespace firesight::watch
