// Retention of the event store (see EventStore::prune in firesight/watch/events.h): by age, then
// by disk use, oldest first, never touching undelivered events or an episode in progress.
#include <chrono>
#include <cmath>
#include <unordered_set>

#include "firesight/common/error.h"
#include "firesight/watch/events.h"
#include "sqlite_util.h"

namespace firesight::watch {

namespace fs = std::filesystem;

namespace {

// Snapshot files and temp files younger than this may belong to an append in progress (the
// file is written before its row), so the orphan sweep leaves them alone.
constexpr auto kOrphanGrace = std::chrono::hours(1);
constexpr int kBatch = 256;

std::uint64_t file_size_or_zero(const fs::path& p) {
    std::error_code ec;
    const auto n = fs::file_size(p, ec);
    return ec ? 0 : n;
}

std::uint64_t snapshot_bytes(const fs::path& dir) {
    std::uint64_t total = 0;
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
        if (it->is_regular_file(ec)) total += file_size_or_zero(it->path());
    return total;
}

}  // namespace

void RetentionConfig::validate() const {
    if (!std::isfinite(max_age_days) || max_age_days < 0) throw Error("retention: max_age_days must be 0 (no limit) or more");
    if (!std::isfinite(interval_s) || interval_s <= 0) throw Error("retention: the prune interval must be more than 0 seconds");
}

std::uint64_t EventStore::db_used_bytes_locked() const {
    auto pragma = [&](const char* sql) {
        Stmt q(db_, sql);
        return sqlite3_step(q.s) == SQLITE_ROW ? static_cast<std::uint64_t>(sqlite3_column_int64(q.s, 0)) : 0;
    };
    const auto pages = pragma("PRAGMA page_count"), free_pages = pragma("PRAGMA freelist_count");
    return (pages - std::min(pages, free_pages)) * pragma("PRAGMA page_size");
}

std::uint64_t EventStore::disk_usage() const {
    std::lock_guard lk(mu_);
    return snapshot_bytes(snapshot_dir()) + db_used_bytes_locked();
}

// The oldest prunable events (id, snapshot), up to kBatch, with time_ms < cutoff_ms when cutoff_ms
// is not 0. Protected: rows an outbox still waits on, and each active source's episode.
std::vector<std::pair<std::int64_t, std::string>> EventStore::prune_candidates_locked(std::int64_t cutoff_ms,
                                                                                      const std::set<std::string>& active) const {
    std::vector<std::pair<std::string, std::int64_t>> episodes;  // source, first protected id
    for (const auto& src : active) {
        Stmt q(db_, "SELECT COALESCE(MAX(id), 0) FROM events WHERE source = ? AND kind = 'state' AND from_state = 'idle'");
        q.bind(1, src);
        episodes.emplace_back(src, sqlite3_step(q.s) == SQLITE_ROW ? sqlite3_column_int64(q.s, 0) : 0);
    }
    std::string sql = "SELECT id, snapshot FROM events WHERE id NOT IN (SELECT event_id FROM outbox WHERE delivered_ms IS NULL)";
    if (cutoff_ms) sql += " AND time_ms < ?1";
    for (std::size_t i = 0; i < episodes.size(); ++i)
        sql += " AND NOT (source = ?" + std::to_string(2 + 2 * i) + " AND id >= ?" + std::to_string(3 + 2 * i) + ")";
    sql += " ORDER BY id LIMIT " + std::to_string(kBatch);
    Stmt q(db_, sql.c_str());
    if (cutoff_ms) q.bind(1, cutoff_ms);
    for (std::size_t i = 0; i < episodes.size(); ++i) {
        q.bind(static_cast<int>(2 + 2 * i), episodes[i].first);
        q.bind(static_cast<int>(3 + 2 * i), episodes[i].second);
    }
    std::vector<std::pair<std::int64_t, std::string>> out;
    while (sqlite3_step(q.s) == SQLITE_ROW) out.emplace_back(sqlite3_column_int64(q.s, 0), col_text(q.s, 1));
    return out;
}

void EventStore::delete_events_locked(const std::vector<std::int64_t>& ids) {
    exec("BEGIN IMMEDIATE");
    try {
        for (auto id : ids) {
            Stmt o(db_, "DELETE FROM outbox WHERE event_id = ?");
            o.bind(1, id);
            Stmt e(db_, "DELETE FROM events WHERE id = ?");
            e.bind(1, id);
            if (sqlite3_step(o.s) != SQLITE_DONE || sqlite3_step(e.s) != SQLITE_DONE)
                throw Error(std::string("events.db: prune: ") + sqlite3_errmsg(db_));
        }
        exec("COMMIT");
    } catch (...) {
        sqlite3_exec(db_, "ROLLBACK", nullptr, nullptr, nullptr);
        throw;
    }
}

PruneResult EventStore::prune(const RetentionConfig& r, std::int64_t now_ms, const std::set<std::string>& active_sources) {
    r.validate();
    PruneResult res;
    // The store lock is held per batch, not for the whole run: an alarm appended meanwhile waits
    // for one batch of row deletes at most, never for a sweep over a month of snapshot files.
    auto locked = [&](auto f) {
        std::lock_guard lk(mu_);
        return f();
    };
    auto candidates = [&](std::int64_t cutoff) { return locked([&] { return prune_candidates_locked(cutoff, active_sources); }); };
    auto db_used = [&] { return locked([&] { return db_used_bytes_locked(); }); };
    // Rows go first, files after the commit: a crash in between leaves an orphan file (swept
    // below later), never an event whose snapshot is gone.
    std::uint64_t snap_total = snapshot_bytes(snapshot_dir());
    auto remove = [&](const std::vector<std::pair<std::int64_t, std::string>>& batch) {
        std::vector<std::int64_t> ids;
        for (const auto& c : batch) ids.push_back(c.first);
        locked([&] { delete_events_locked(ids); });
        res.events += static_cast<std::int64_t>(ids.size());
        for (const auto& c : batch) {
            if (c.second.empty()) continue;
            for (const auto& name : {c.second, frame_file(c.second)}) {
                const auto p = snapshot_dir() / name;
                const auto n = file_size_or_zero(p);
                std::error_code ec;
                if (!fs::remove(p, ec)) continue;
                ++res.snapshots;
                res.bytes_freed += n;
                snap_total -= std::min(snap_total, n);
            }
        }
    };
    if (r.max_age_days > 0) {
        const auto cutoff = now_ms - static_cast<std::int64_t>(r.max_age_days * 86400e3);
        for (auto batch = candidates(cutoff); !batch.empty(); batch = candidates(cutoff)) remove(batch);
    }
    std::uint64_t usage = snap_total + db_used();
    while (r.max_bytes && usage > r.max_bytes) {
        auto batch = candidates(0);
        if (batch.empty()) {
            res.over_budget = true;
            break;
        }
        batch.resize(needed_for_budget(batch, usage, r.max_bytes));
        remove(batch);
        usage = snap_total + db_used();
    }
    sweep_orphans(res);
    res.bytes_after = snapshot_bytes(snapshot_dir()) + db_used();
    return res;
}

// How many of the oldest candidates bring `usage` under `budget`: each costs its snapshot and
// about one row's share of the database (a guess; prune measures again after every batch).
std::size_t EventStore::needed_for_budget(const std::vector<std::pair<std::int64_t, std::string>>& batch, std::uint64_t usage,
                                          std::uint64_t budget) const {
    std::uint64_t row_bytes = 0;
    {
        std::lock_guard lk(mu_);
        Stmt count(db_, "SELECT COUNT(*) FROM events");
        const auto rows = sqlite3_step(count.s) == SQLITE_ROW ? std::max<std::int64_t>(1, sqlite3_column_int64(count.s, 0)) : 1;
        row_bytes = db_used_bytes_locked() / static_cast<std::uint64_t>(rows);
    }
    std::size_t take = 0;
    while (take < batch.size() && usage > budget) {
        const auto& snap = batch[take].second;
        const auto files = snap.empty() ? 0 : file_size_or_zero(snapshot_dir() / snap) + file_size_or_zero(snapshot_dir() / frame_file(snap));
        usage -= std::min(usage, row_bytes + files);
        ++take;
    }
    return std::max<std::size_t>(take, 1);
}

// Snapshot files no event names: a crash between the file and its row, or a temp file of a write
// that never finished. Old enough ones go; held events' names are kept for their flush.
void EventStore::sweep_orphans(PruneResult& res) {
    std::unordered_set<std::string> named;
    {
        std::lock_guard lk(mu_);
        Stmt q(db_, "SELECT snapshot FROM events WHERE snapshot <> ''");
        while (sqlite3_step(q.s) == SQLITE_ROW) {
            named.insert(col_text(q.s, 0));
            named.insert(frame_file(col_text(q.s, 0)));
        }
        for (const auto& h : held_) {
            named.insert(h.event.snapshot);
            named.insert(frame_file(h.event.snapshot));
        }
    }
    // Anything written after the names were read is younger than the grace period.
    const auto old = fs::file_time_type::clock::now() - kOrphanGrace;
    std::error_code ec;
    std::vector<fs::path> doomed;
    for (fs::directory_iterator it(snapshot_dir(), ec), end; !ec && it != end; it.increment(ec)) {
        std::error_code fe;
        if (!it->is_regular_file(fe) || named.count(it->path().filename().string())) continue;
        const auto t = fs::last_write_time(it->path(), fe);
        if (!fe && t < old) doomed.push_back(it->path());
    }
    for (const auto& p : doomed) {
        const auto n = file_size_or_zero(p);
        std::error_code re;
        if (fs::remove(p, re)) {
            ++res.snapshots;
            res.bytes_freed += n;
        }
    }
}

}  // namespace firesight::watch
