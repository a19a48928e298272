// The event store: WAL SQLite + snapshots, and that a process killed mid-write loses nothing
// that was committed and leaves nothing half-written.
#include <gtest/gtest.h>

#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <opencv2/imgcodecs.hpp>

#include "firesight/watch/events.h"
#include "test_util.h"
#include "watch_test_util.h"

using namespace firesight;
using namespace firesight::watch;
namespace fs = std::filesystem;

namespace {

Event make_event(const std::string& source, int i) {
    Event e;
    e.source = source;
    e.time_ms = 1700000000000 + i;
    e.kind = "state";
    e.from = "idle";
    e.to = "suspected";
    e.cls = "fire";
    e.score = 0.5f + 0.001f * static_cast<float>(i % 100);
    e.peak = e.score;
    e.frame = i;
    e.probabilities = {{"fire", e.score}, {"neutral", 1 - e.score}};
    return e;
}

std::string sql_one(const fs::path& db, const std::string& sql) {
    sqlite3* h = nullptr;
    sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READONLY, nullptr);
    sqlite3_stmt* s = nullptr;
    std::string out;
    if (sqlite3_prepare_v2(h, sql.c_str(), -1, &s, nullptr) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
        const auto* t = sqlite3_column_text(s, 0);
        out = t ? reinterpret_cast<const char*>(t) : "";
    }
    sqlite3_finalize(s);
    sqlite3_close(h);
    return out;
}

}  // namespace

TEST(WatchStore, AppendsReadsAndQueuesPerSink) {
    test::TempDir dir;
    EventStore store(dir / "data", {"mqtt", "webhook"});
    const cv::Mat frame = test::scene_frame(0, true);
    const auto a = store.append(make_event("cam", 1), frame);
    const auto b = store.append(make_event("cam", 2));
    EXPECT_EQ(b.id, a.id + 1);
    EXPECT_TRUE(fs::exists(store.snapshot_dir() / a.snapshot));
    EXPECT_TRUE(b.snapshot.empty());
    const auto got = store.get(a.id);
    ASSERT_TRUE(got);
    EXPECT_EQ(got->cls, "fire");
    EXPECT_NEAR(got->probabilities["fire"].get<float>(), a.score, 1e-6);
    EXPECT_EQ(store.pending_count("mqtt"), 2);
    auto p = store.next_pending("mqtt");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->event.id, a.id);
    store.mark_delivered(p->outbox_id);
    EXPECT_EQ(store.next_pending("mqtt")->event.id, b.id);
    EXPECT_EQ(store.pending_count("webhook"), 2);  // sinks are independent
    EXPECT_EQ(sql_one(dir / "data" / "events.db", "PRAGMA journal_mode"), "wal");
}

// The sinks are woken once the event and its annotated snapshot are stored; the clean frame kept
// for feedback is written after that (off the alarm's way to MQTT), and is there when append returns.
TEST(WatchStore, TheCleanFrameIsWrittenAfterTheSinksAreWoken) {
    test::TempDir dir;
    EventStore store(dir / "data", {"mqtt"});
    bool snapshot_then = false, frame_then = true, row_then = false;
    store.set_listener([&](const Event& e) {
        snapshot_then = fs::exists(store.snapshot_dir() / e.snapshot);
        frame_then = fs::exists(store.snapshot_dir() / EventStore::frame_file(e.snapshot));
        row_then = store.get(e.id).has_value();
    });
    const auto a = store.append(make_event("cam", 1), test::scene_frame(0, true), test::scene_frame(0, false));
    EXPECT_TRUE(snapshot_then);
    EXPECT_TRUE(row_then);
    EXPECT_FALSE(frame_then);
    const cv::Mat clean = cv::imread((store.snapshot_dir() / EventStore::frame_file(a.snapshot)).string());
    EXPECT_FALSE(clean.empty());
    EXPECT_EQ(store.health().failures, 0);
}

TEST(WatchStore, KilledMidWriteLosesNothingCommitted) {
    test::TempDir dir;
    const auto data = dir / "data";
    const cv::Mat frame = test::scene_frame(3, true, {320, 240});
    std::int64_t total_before = 0;
    for (int round = 0; round < 3; ++round) {
        const pid_t pid = ::fork();
        ASSERT_GE(pid, 0);
        if (pid == 0) {
            // Child: append events with snapshots as fast as it can until killed.
            try {
                EventStore store(data, {"mqtt"});
                for (int i = 0;; ++i) store.append(make_event("cam", i), frame);
            } catch (...) {
            }
            ::_exit(3);
        }
        // Kill it at a different point each round once it has written a few.
        ASSERT_TRUE(test::eventually([&] {
            if (!fs::exists(data / "events.db")) return false;
            return std::atoll(sql_one(data / "events.db", "SELECT COUNT(*) FROM events").c_str()) >= total_before + 5 + 7 * round;
        }, 120));
        ::usleep(static_cast<useconds_t>(3000 * round));
        ::kill(pid, SIGKILL);
        int st = 0;
        ::waitpid(pid, &st, 0);
        ASSERT_TRUE(WIFSIGNALED(st)) << "the writer exited by itself";

        EventStore store(data, {"mqtt"});
        EXPECT_EQ(sql_one(data / "events.db", "PRAGMA integrity_check"), "ok");
        const auto n = store.count();
        EXPECT_GT(n, total_before);
        // Every committed event is whole: consecutive ids, an outbox row, a decodable snapshot.
        const auto all = store.recent(100000);
        ASSERT_EQ(static_cast<std::int64_t>(all.size()), n);
        for (std::size_t i = 0; i < all.size(); ++i) {
            EXPECT_EQ(all[i].id, n - static_cast<std::int64_t>(i));
            const cv::Mat snap = cv::imread((store.snapshot_dir() / all[i].snapshot).string());
            ASSERT_FALSE(snap.empty()) << "event " << all[i].id << ": snapshot " << all[i].snapshot << " missing or broken";
        }
        EXPECT_EQ(store.pending_count("mqtt"), n);
        // Nothing half-written is left where a reader would take it for a snapshot.
        for (const auto& f : fs::directory_iterator(store.snapshot_dir()))
            if (f.path().extension() == ".jpg") EXPECT_FALSE(cv::imread(f.path().string()).empty()) << f.path();
        // The store keeps working after the crash.
        const auto e = store.append(make_event("cam", 999999), frame);
        EXPECT_EQ(e.id, n + 1);
        total_before = n + 1;
    }
}

namespace {

constexpr std::int64_t kNow = 1800000000000;  // a fixed "now" for retention
constexpr std::int64_t kDay = 86400000;

Event at(const std::string& source, std::int64_t time_ms, const std::string& from = "idle", const std::string& to = "suspected") {
    Event e = make_event(source, 0);
    e.time_ms = time_ms;
    e.from = from;
    e.to = to;
    return e;
}

void deliver_all(EventStore& store, const std::string& sink, std::int64_t except = -1) {
    for (const auto& e : store.recent(100000))
        if (e.id != except) store.mark_delivered(sink, e.id);
}

bool exists(const EventStore& store, std::int64_t id) { return store.get(id).has_value(); }

}  // namespace

TEST(WatchRetention, OldEventsGoButUndeliveredOnesAndAnAlarmInProgressStay) {
    test::TempDir dir;
    EventStore store(dir / "data", {"mqtt"});
    const cv::Mat frame = test::scene_frame(1, true, {320, 240});
    std::vector<Event> old_a, recent_a, episode_b;
    // The old ones with their clean frame beside the snapshot, as the watcher stores state events.
    for (int i = 0; i < 10; ++i) old_a.push_back(store.append(at("a", kNow - 40 * kDay + i), frame, test::scene_frame(1, false, {320, 240})));
    // Source b went into alarm 40 days ago and is still in it (a long smouldering fire).
    episode_b.push_back(store.append(at("b", kNow - 40 * kDay, "idle", "suspected"), frame));
    episode_b.push_back(store.append(at("b", kNow - 40 * kDay + 5, "suspected", "alarm"), frame));
    for (int i = 0; i < 5; ++i) recent_a.push_back(store.append(at("a", kNow - kDay + i), frame));
    deliver_all(store, "mqtt", old_a[3].id);  // the broker never acknowledged old_a[3]

    RetentionConfig r;
    r.max_age_days = 30;
    r.max_bytes = 0;
    const auto res = store.prune(r, kNow, {"b"});
    EXPECT_EQ(res.events, 9);
    EXPECT_EQ(res.snapshots, 18);  // snapshot and frame of each
    EXPECT_GT(res.bytes_freed, 0u);
    for (const auto& e : old_a) {
        EXPECT_EQ(exists(store, e.id), e.id == old_a[3].id) << "event " << e.id;
        EXPECT_EQ(fs::exists(store.snapshot_dir() / e.snapshot), e.id == old_a[3].id) << e.snapshot;
        EXPECT_EQ(fs::exists(store.snapshot_dir() / EventStore::frame_file(e.snapshot)), e.id == old_a[3].id) << e.snapshot;
    }
    for (const auto& e : episode_b) {
        EXPECT_TRUE(exists(store, e.id)) << "alarm in progress pruned: event " << e.id;
        EXPECT_TRUE(fs::exists(store.snapshot_dir() / e.snapshot));
    }
    for (const auto& e : recent_a) EXPECT_TRUE(exists(store, e.id));
    EXPECT_EQ(store.pending_count("mqtt"), 1);

    // Once delivered and once b is back to idle, both go at the next run.
    store.mark_delivered("mqtt", old_a[3].id);
    const auto res2 = store.prune(r, kNow, {});
    EXPECT_EQ(res2.events, 3);
    EXPECT_FALSE(exists(store, old_a[3].id));
    EXPECT_FALSE(exists(store, episode_b[1].id));
    EXPECT_EQ(store.count(), 5);
}

TEST(WatchRetention, DiskBudgetRemovesTheOldestFirst) {
    test::TempDir dir;
    EventStore store(dir / "data", {"webhook"});
    std::vector<Event> all;
    for (int i = 0; i < 60; ++i) all.push_back(store.append(at("cam", kNow - 60000 + i * 1000), test::scene_frame(i, i % 2 == 0, {320, 240})));
    deliver_all(store, "webhook");
    const auto before = store.disk_usage();
    const auto snap = fs::file_size(store.snapshot_dir() / all[0].snapshot);
    RetentionConfig r;
    r.max_age_days = 0;
    r.max_bytes = before - 20 * snap;  // about a third has to go
    const auto res = store.prune(r, kNow, {});
    EXPECT_FALSE(res.over_budget);
    EXPECT_LE(res.bytes_after, r.max_bytes);
    EXPECT_LE(store.disk_usage(), r.max_bytes);
    EXPECT_GE(res.events, 15);
    EXPECT_LT(res.events, 60);
    // What is left is exactly the newest events, snapshots included; what went is the oldest.
    for (std::size_t i = 0; i < all.size(); ++i) {
        const bool kept = static_cast<std::int64_t>(i) >= res.events;
        EXPECT_EQ(exists(store, all[i].id), kept) << "event " << all[i].id;
        EXPECT_EQ(fs::exists(store.snapshot_dir() / all[i].snapshot), kept) << all[i].snapshot;
    }
    // A budget nothing can meet: everything unprotected goes, the undelivered rest stays.
    store.append(at("cam", kNow), test::scene_frame(0, true, {320, 240}));
    r.max_bytes = 1;
    const auto tight = store.prune(r, kNow, {});
    EXPECT_TRUE(tight.over_budget);
    EXPECT_EQ(store.count(), 1);
    EXPECT_EQ(store.pending_count("webhook"), 1);
}

TEST(WatchRetention, OrphanSnapshotsGoOnlyOnceOld) {
    test::TempDir dir;
    EventStore store(dir / "data");
    const auto kept = store.append(at("cam", kNow), test::scene_frame(0, true));
    const auto old_orphan = store.snapshot_dir() / "cam-1-2-3.jpg";
    const auto new_orphan = store.snapshot_dir() / "cam-4-5-6.jpg";
    std::ofstream(old_orphan) << "left by a crash";
    std::ofstream(new_orphan) << "an append in progress";
    fs::last_write_time(old_orphan, fs::file_time_type::clock::now() - std::chrono::hours(2));
    const auto res = store.prune(RetentionConfig{}, kNow, {});
    EXPECT_EQ(res.events, 0);
    EXPECT_EQ(res.snapshots, 1);
    EXPECT_FALSE(fs::exists(old_orphan));
    EXPECT_TRUE(fs::exists(new_orphan));
    EXPECT_TRUE(fs::exists(store.snapshot_dir() / kept.snapshot));
}

TEST(WatchStore, AnOldDatabaseIsMigratedWithItsEvents) {
    test::TempDir dir;
    fs::create_directories(dir / "data");
    sqlite3* h = nullptr;
    ASSERT_EQ(sqlite3_open((dir / "data" / "events.db").c_str(), &h), SQLITE_OK);
    // The schema before verdicts and regions (user_version 0).
    const char* old_schema =
        "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, source TEXT NOT NULL, time_ms INTEGER NOT NULL, kind TEXT NOT NULL,"
        " from_state TEXT, to_state TEXT, class TEXT, score REAL, peak REAL, frame INTEGER, frame_wall_ms INTEGER, snapshot TEXT,"
        " detail TEXT, probabilities TEXT);"
        "CREATE TABLE outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, event_id INTEGER NOT NULL REFERENCES events(id), sink TEXT NOT NULL,"
        " delivered_ms INTEGER, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, UNIQUE(sink, event_id));"
        "INSERT INTO events (source, time_ms, kind, from_state, to_state, class, score, peak, frame, frame_wall_ms, snapshot, detail,"
        " probabilities) VALUES ('yard', 1700000000000, 'state', 'suspected', 'alarm', 'fire', 0.8, 0.9, 42, 0, 'yard-1.jpg', '', '{}');";
    ASSERT_EQ(sqlite3_exec(h, old_schema, nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(h);

    EventStore store(dir / "data", {"mqtt"});
    const auto old = store.get(1);
    ASSERT_TRUE(old);
    EXPECT_EQ(old->to, "alarm");
    EXPECT_EQ(old->frame, 42);
    EXPECT_TRUE(old->verdict.empty());
    EXPECT_TRUE(store.set_verdict(1, "confirmed", 1700000001000));
    EXPECT_EQ(store.get(1)->verdict, "confirmed");
    EXPECT_EQ(store.append(make_event("yard", 2)).id, 2);
    EXPECT_EQ(sql_one(dir / "data" / "events.db", "PRAGMA user_version"), "2");
    EXPECT_THROW(store.set_verdict(1, "maybe", 0), Error);
}

TEST(WatchStore, EventsThatCannotBeWrittenAreHeldDeliveredAndWrittenLater) {
    test::TempDir dir;
    EventStore store(dir / "data", {"mqtt", "webhook"});
    const auto first = store.append(make_event("cam", 1), test::scene_frame(0, true));
    // The snapshot folder turns into a file: every snapshot write fails from now on.
    fs::rename(store.snapshot_dir(), dir / "snapshots-away");
    std::ofstream(store.snapshot_dir()) << "not a folder";
    const auto held = store.append(make_event("cam", 2), test::scene_frame(1, true), test::scene_frame(1, false));
    const auto after = store.append(make_event("cam", 3));  // no snapshot, but must wait its turn
    EXPECT_EQ(held.id, first.id + 1);
    EXPECT_EQ(after.id, first.id + 2);
    EXPECT_EQ(store.count(), 1);
    EXPECT_EQ(store.health().held, 2);
    EXPECT_GE(store.health().failures, 2);
    EXPECT_EQ(store.recent(10).front().id, after.id);
    ASSERT_TRUE(store.held_snapshot(held.snapshot));
    ASSERT_TRUE(store.held_snapshot(EventStore::frame_file(held.snapshot)));

    // Sinks get them anyway, in order.
    store.mark_delivered("mqtt", first.id);
    auto p = store.next_pending("mqtt");
    ASSERT_TRUE(p);
    EXPECT_EQ(p->event.id, held.id);
    EXPECT_EQ(p->outbox_id, -1);
    store.mark_delivered("mqtt", held.id);
    EXPECT_EQ(store.next_pending("mqtt")->event.id, after.id);
    EXPECT_EQ(store.pending_count("mqtt"), 1);
    EXPECT_EQ(store.pending_count("webhook"), 3);
    EXPECT_FALSE(store.retry_storing());

    // Space is back: both are written with their ids, the delivery already made is kept.
    fs::remove(store.snapshot_dir());
    fs::rename(dir / "snapshots-away", store.snapshot_dir());
    EXPECT_TRUE(store.retry_storing());
    EXPECT_EQ(store.count(), 3);
    EXPECT_EQ(store.health().held, 0);
    EXPECT_FALSE(store.held_snapshot(held.snapshot));
    EXPECT_FALSE(cv::imread((store.snapshot_dir() / held.snapshot).string()).empty());
    EXPECT_FALSE(cv::imread((store.snapshot_dir() / EventStore::frame_file(held.snapshot)).string()).empty());
    EXPECT_EQ(store.get(held.id)->source, "cam");
    EXPECT_EQ(store.next_pending("mqtt")->event.id, after.id);
    EXPECT_EQ(store.pending_count("mqtt"), 1);
    EXPECT_EQ(store.pending_count("webhook"), 3);
    EXPECT_EQ(store.append(make_event("cam", 4)).id, after.id + 1);
}
