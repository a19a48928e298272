// The watcher end to end on generated videos and image folders with the orange-pixel classifier:
// an alarm on a fire-like flicker, none on a neutral scene, dropped sources reopened and logged.
#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>

#include "firesight/watch/watch.h"
#include "test_util.h"
#include "watch_test_util.h"

using namespace firesight;
using namespace firesight::watch;
namespace fs = std::filesystem;

namespace {

WatchConfig base_config(const fs::path& data_dir) {
    WatchConfig c;
    c.data_dir = data_dir;
    c.fps = 0;  // every frame
    c.decision.min_alarm_seconds = 1;
    c.reopen_min_s = 0.1;
    c.reopen_max_s = 0.5;
    return c;
}

std::vector<Event> events_of(EventStore& store, const std::string& kind = {}) {
    auto all = store.recent(10000);
    std::reverse(all.begin(), all.end());
    std::vector<Event> out;
    for (auto& e : all)
        if (kind.empty() || e.kind == kind) out.push_back(e);
    return out;
}

}  // namespace

TEST(WatchPipeline, FlickeringFireInAVideoRaisesAndClearsOneAlarm) {
    test::TempDir dir;
    // 10 fps: 3 s neutral, 4 s fire-like flicker, 3 s neutral.
    test::write_video(dir / "yard.avi", 100, 10, [](int i) { return i >= 30 && i < 70; });
    test::OrangeClassifier clf;
    auto cfg = base_config(dir / "data");
    SourceSpec s{"yard", (dir / "yard.avi").string()};
    s.realtime = false;
    cfg.sources.push_back(s);
    Watcher w(cfg, clf);
    std::vector<Event> seen;
    std::mutex mu;
    w.on_event = [&](const Event& e) {
        std::lock_guard lk(mu);
        seen.push_back(e);
    };
    w.start();
    ASSERT_TRUE(w.wait_for(120)) << "the video did not finish";
    w.stop();
    const auto states = events_of(w.store(), "state");
    std::vector<std::string> path;
    for (const auto& e : states) path.push_back(e.from + ">" + e.to);
    const std::vector<std::string> want{"idle>suspected", "suspected>alarm", "alarm>cleared", "cleared>idle"};
    EXPECT_EQ(path, want);
    ASSERT_EQ(states.size(), 4u);
    const auto& alarm = states[1];
    EXPECT_EQ(alarm.cls, "fire");
    EXPECT_GT(alarm.peak, 0.6f);
    // Raised within k-of-n frames (plus smoothing) of the onset, cleared after the fire is gone.
    EXPECT_GE(alarm.frame, 30);
    EXPECT_LE(alarm.frame, 30 + cfg.decision.n + 2);
    EXPECT_GE(states[2].frame, 70);
    for (const auto& e : states) {
        ASSERT_FALSE(e.snapshot.empty());
        const cv::Mat snap = cv::imread((w.store().snapshot_dir() / e.snapshot).string());
        EXPECT_EQ(snap.size(), cv::Size(160, 120)) << e.snapshot;
        // Beside it the frame without the overlay (what feedback files for training).
        const cv::Mat clean = cv::imread((w.store().snapshot_dir() / EventStore::frame_file(e.snapshot)).string());
        ASSERT_EQ(clean.size(), cv::Size(160, 120)) << e.snapshot;
        EXPECT_GT(cv::norm(snap, clean, cv::NORM_L1), 0) << "the frame has the overlay too";
    }
    EXPECT_EQ(events_of(w.store(), "ended").size(), 1u);
    EXPECT_EQ(w.hub().get("yard").frames, 100);
    std::lock_guard lk(mu);
    EXPECT_EQ(seen.size(), 5u);
}

TEST(WatchPipeline, NeutralSceneAndFpsLimit) {
    test::TempDir dir;
    test::write_video(dir / "calm.avi", 60, 10, [](int) { return false; });
    test::OrangeClassifier clf;
    auto cfg = base_config(dir / "data");
    cfg.fps = 2;  // 6 s of video at 2 fps: 12 frames classified
    SourceSpec s{"calm", (dir / "calm.avi").string()};
    s.realtime = false;
    cfg.sources.push_back(s);
    Watcher w(cfg, clf);
    w.start();
    ASSERT_TRUE(w.wait_for(120));
    w.stop();
    EXPECT_TRUE(events_of(w.store(), "state").empty());
    EXPECT_EQ(w.hub().get("calm").frames, 12);
    EXPECT_EQ(clf.calls.load(), 12);
}

// Without a dashboard nobody sees the live view: no frame is drawn on or JPEG-encoded for it, while
// the events keep their snapshots. The hub counts where the frames' time went, per stage.
TEST(WatchPipeline, TheLiveViewIsEncodedOnlyForADashboard) {
    for (const bool dashboard : {false, true}) {
        SCOPED_TRACE(dashboard ? "with a dashboard" : "without a dashboard");
        test::TempDir dir;
        test::write_video(dir / "yard.avi", 60, 10, [](int i) { return i >= 20 && i < 40; });
        test::OrangeClassifier clf;
        auto cfg = base_config(dir / "data");
        cfg.decision.min_alarm_seconds = 0;
        if (dashboard) {
            HttpConfig h;
            h.port = 0;
            cfg.http = h;
        }
        SourceSpec s{"yard", (dir / "yard.avi").string()};
        s.realtime = false;
        cfg.sources.push_back(s);
        Watcher w(cfg, clf);
        w.start();
        ASSERT_TRUE(w.wait_for(120));
        w.stop();
        const auto st = w.hub().get("yard");
        EXPECT_EQ(st.frames, 60);
        EXPECT_EQ(st.jpeg_seq, dashboard ? 60u : 0u);
        EXPECT_EQ(st.jpeg.empty(), !dashboard);
        EXPECT_EQ(dashboard, st.live_seconds_sum > 0);
        const auto states = events_of(w.store(), "state");
        ASSERT_FALSE(states.empty());
        EXPECT_EQ(st.events, static_cast<std::int64_t>(states.size()));
        for (const auto& e : states) EXPECT_TRUE(fs::exists(w.store().snapshot_dir() / e.snapshot)) << e.snapshot;
        EXPECT_GT(st.read_seconds_sum, 0);
        EXPECT_GT(st.inference_seconds_sum, 0);
        EXPECT_GT(st.event_seconds_sum, 0);
        EXPECT_EQ(st.late_seconds_max, 0) << "a file played as fast as possible is never behind";
    }
}

TEST(WatchPipeline, SeveralSourcesShareOneClassifier) {
    test::TempDir dir;
    test::write_video(dir / "a.avi", 40, 10, [](int i) { return i >= 10; });
    test::write_video(dir / "b.avi", 40, 10, [](int) { return false; });
    fs::create_directories(dir / "c");
    for (int i = 0; i < 8; ++i) cv::imwrite((dir / "c" / ("img" + std::to_string(i) + ".jpg")).string(), test::scene_frame(i, true));
    test::OrangeClassifier clf;
    auto cfg = base_config(dir / "data");
    for (auto [name, uri] : std::vector<std::pair<std::string, fs::path>>{{"a", dir / "a.avi"}, {"b", dir / "b.avi"}, {"c", dir / "c"}}) {
        SourceSpec s{name, uri.string()};
        s.realtime = false;
        cfg.sources.push_back(s);
    }
    Watcher w(cfg, clf);
    w.start();
    ASSERT_TRUE(w.wait_for(120));
    w.stop();
    EXPECT_EQ(w.hub().get("a").frames, 40);
    EXPECT_EQ(w.hub().get("b").frames, 40);
    EXPECT_EQ(w.hub().get("c").frames, 8);
    EXPECT_EQ(clf.calls.load(), 88);
    int alarms_a = 0, alarms_b = 0, alarms_c = 0;
    for (const auto& e : events_of(w.store(), "state")) {
        if (e.to != "alarm") continue;
        (e.source == "a" ? alarms_a : e.source == "b" ? alarms_b : alarms_c)++;
    }
    EXPECT_EQ(alarms_a, 1);
    EXPECT_EQ(alarms_b, 0);
    EXPECT_EQ(alarms_c, 1);
}

TEST(WatchPipeline, RemovedFolderIsReopenedAndTheOutageLogged) {
    test::TempDir dir;
    const auto folder = dir / "drops";
    fs::create_directories(folder);
    for (int i = 0; i < 3; ++i) cv::imwrite((folder / ("a" + std::to_string(i) + ".jpg")).string(), test::scene_frame(i, false));
    test::OrangeClassifier clf;
    auto cfg = base_config(dir / "data");
    SourceSpec s{"drops", folder.string()};
    s.realtime = false;
    s.loop = true;  // a camera dropping snapshots into a folder: keep watching it
    cfg.sources.push_back(s);
    Watcher w(cfg, clf);
    w.start();
    ASSERT_TRUE(test::eventually([&] { return w.hub().get("drops").frames == 3; }));
    fs::remove_all(folder);
    ASSERT_TRUE(test::eventually([&] { return !events_of(w.store(), "outage").empty(); })) << "no outage event";
    EXPECT_FALSE(w.hub().get("drops").up);
    fs::create_directories(folder);
    for (int i = 0; i < 2; ++i) cv::imwrite((folder / ("b" + std::to_string(i) + ".jpg")).string(), test::scene_frame(i, false));
    ASSERT_TRUE(test::eventually([&] { return !events_of(w.store(), "restored").empty(); })) << "no restored event";
    ASSERT_TRUE(test::eventually([&] { return w.hub().get("drops").frames == 5; }));
    w.stop();
    const auto outages = events_of(w.store(), "outage");
    EXPECT_EQ(outages.size(), 1u) << "one outage, however many reopen attempts";
    EXPECT_NE(outages[0].detail.find("drops"), std::string::npos) << outages[0].detail;
}

TEST(WatchPipeline, RemovedVideoFileIsReopenedAndTheOutageLogged) {
    test::TempDir dir;
    const auto video = dir / "loop.avi";
    test::write_video(video, 10, 10, [](int) { return false; });
    fs::copy_file(video, dir / "spare.avi");
    test::OrangeClassifier clf;
    auto cfg = base_config(dir / "data");
    SourceSpec s{"loop", video.string()};
    s.realtime = true;  // played at its speed, looped like a camera
    s.loop = true;
    cfg.sources.push_back(s);
    Watcher w(cfg, clf);
    w.start();
    ASSERT_TRUE(test::eventually([&] { return w.hub().get("loop").frames >= 12; })) << "did not loop";
    fs::remove(video);
    ASSERT_TRUE(test::eventually([&] { return !events_of(w.store(), "outage").empty(); })) << "no outage event";
    fs::copy_file(dir / "spare.avi", video);
    ASSERT_TRUE(test::eventually([&] { return !events_of(w.store(), "restored").empty(); })) << "no restored event";
    const auto before = w.hub().get("loop").frames;
    ASSERT_TRUE(test::eventually([&] { return w.hub().get("loop").frames > before; }));
    w.stop();
    EXPECT_GE(w.hub().get("loop").outages, 1);
}

TEST(WatchPipeline, ModelWithoutAlarmClassesIsRefused) {
    test::TempDir dir;
    test::OrangeClassifier clf;
    auto cfg = base_config(dir / "data");
    cfg.decision.alarm_classes = {"smoke"};
    cfg.sources.push_back({"x", "/nonexistent.avi"});
    EXPECT_THROW(Watcher(cfg, clf), Error);
}

// A video source can begin part-way into its file (benchmarks stagger identical sources with it),
// on its first open only: a looping source plays the whole file after that.
TEST(WatchSource, AVideoStartsWhereItIsToldOnlyTheFirstTime) {
    test::TempDir dir;
    test::write_video(dir / "v.avi", 40, 10, [](int) { return false; });
    SourceSpec spec{"v", (dir / "v.avi").string()};
    spec.realtime = false;
    spec.start_s = 2.5;  // frame 25
    FrameSource src(spec);
    Frame f;
    auto play = [&](std::int64_t& first) {
        src.open();
        int n = 0;
        first = -1;
        while (src.read(f) == ReadResult::frame) {
            if (first < 0) first = f.index;
            ++n;
        }
        return n;
    };
    std::int64_t first = 0;
    EXPECT_EQ(play(first), 15);
    EXPECT_EQ(first, 25);
    EXPECT_NEAR(f.time, 3.9, 1e-9);
    EXPECT_EQ(play(first), 40);
    EXPECT_EQ(first, 0);
}

TEST(WatchSource, AFolderForgetsImagesThatAreGone) {
    // A camera that rotates its snapshots reuses names: an image that was removed and comes back
    // is new, and the names of removed images are not remembered forever.
    test::TempDir dir;
    const auto folder = dir / "cam";
    fs::create_directories(folder);
    for (const char* n : {"a.jpg", "b.jpg"}) cv::imwrite((folder / n).string(), test::scene_frame(0, false));
    SourceSpec spec{"cam", folder.string()};
    spec.realtime = false;
    FrameSource src(spec);
    Frame f;
    auto frames_now = [&] {
        src.open();
        int n = 0;
        while (src.read(f) == ReadResult::frame) ++n;
        return n;
    };
    EXPECT_EQ(frames_now(), 2);
    EXPECT_EQ(frames_now(), 0);  // nothing new
    fs::remove(folder / "a.jpg");
    EXPECT_EQ(frames_now(), 0);
    cv::imwrite((folder / "a.jpg").string(), test::scene_frame(1, true));
    EXPECT_EQ(frames_now(), 1);
    EXPECT_EQ(frames_now(), 0);
}

TEST(WatchPipeline, TheWatcherPrunesOnItsOwnWhileItRuns) {
    test::TempDir dir;
    const auto data = dir / "data";
    std::vector<Event> old;
    {
        EventStore store(data);  // a previous run, 40 days ago
        for (int i = 0; i < 5; ++i) {
            Event e;
            e.source = "yard";
            e.kind = "state";
            e.from = "idle";
            e.to = "suspected";
            e.cls = "fire";
            e.time_ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count() -
                        40LL * 86400000 + i;
            old.push_back(store.append(e, test::scene_frame(i, true)));
        }
    }
    test::write_video(dir / "calm.avi", 20, 10, [](int) { return false; });
    test::OrangeClassifier clf;
    auto cfg = base_config(data);
    cfg.retention.max_age_days = 30;
    SourceSpec s{"yard", (dir / "calm.avi").string()};
    s.loop = true;  // keeps running, as a camera would
    cfg.sources.push_back(s);
    Watcher w(cfg, clf);
    w.start();
    // Rows first, then the files (after the commit): wait for both.
    ASSERT_TRUE(test::eventually([&] {
        for (const auto& e : old)
            if (w.store().get(e.id) || fs::exists(w.store().snapshot_dir() / e.snapshot)) return false;
        return true;
    })) << "old events not pruned";
    EXPECT_GT(w.hub().get("yard").frames, 0);
    w.stop();
}
