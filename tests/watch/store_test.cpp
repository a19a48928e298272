// The event store: WAL SQLite + snapshots, and that a process killed mid-write loses nothing
// that was committed and leaves nothing half-written.
#include <gtest/gtest.h>

#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <opencv2/imgcodecs.hpp>

#include "firesight/watch_events.h"
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
