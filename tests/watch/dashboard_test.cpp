// The web dashboard: endpoints over HTTP, the token rule, and the page in a real headless
// Chromium showing the event list and the live image (its screenshot is kept in the build dir).
#include <gtest/gtest.h>

#include <httplib.h>

#include <opencv2/imgcodecs.hpp>

#include <regex>

#include "firesight/watch.h"
#include "test_util.h"
#include "watch_test_util.h"

using namespace firesight;
using namespace firesight::watch;
namespace fs = std::filesystem;

namespace {

// A camera-like source: a looping video played in real time, with a fire in the middle of it.
WatchConfig live_config(const test::TempDir& dir, HttpConfig http) {
    test::write_video(dir / "cam.avi", 40, 10, [](int i) { return i >= 10 && i < 30; });
    WatchConfig c;
    c.data_dir = dir / "data";
    c.fps = 5;
    c.decision.min_alarm_seconds = 0.5;
    c.http = http;
    SourceSpec s{"cam", (dir / "cam.avi").string()};
    s.loop = true;
    c.sources.push_back(s);
    return c;
}

HttpConfig any_port(const std::string& host = "127.0.0.1", const std::string& token = {}) {
    HttpConfig h;
    h.host = host;
    h.port = 0;
    h.token = token;
    return h;
}

}  // namespace

TEST(WatchDashboard, EndpointsServeStateEventsSnapshotsAndMetrics) {
    test::TempDir dir;
    test::OrangeClassifier clf;
    Watcher w(live_config(dir, any_port()), clf);
    w.start();
    ASSERT_GT(w.http_port(), 0);
    ASSERT_TRUE(test::eventually([&] { return w.store().count() >= 2; })) << "no events";
    httplib::Client cli("127.0.0.1", w.http_port());
    cli.set_read_timeout(30, 0);

    auto page = cli.Get("/");
    ASSERT_TRUE(page);
    EXPECT_EQ(page->status, 200);
    EXPECT_NE(page->body.find("id=\"events\""), std::string::npos);

    auto health = cli.Get("/healthz");
    ASSERT_TRUE(health);
    EXPECT_EQ(health->status, 200);
    EXPECT_EQ(nlohmann::json::parse(health->body)["status"], "ok");

    auto events = cli.Get("/api/events?limit=10");
    ASSERT_TRUE(events);
    const auto ev = nlohmann::json::parse(events->body);
    ASSERT_GE(ev.size(), 2u);
    const std::string snap = ev[0]["snapshot"];
    ASSERT_FALSE(snap.empty());
    auto jpeg = cli.Get(("/snapshots/" + snap).c_str());
    ASSERT_TRUE(jpeg);
    EXPECT_EQ(jpeg->status, 200);
    EXPECT_EQ(jpeg->body.substr(0, 2), std::string("\xFF\xD8"));
    auto bad = cli.Get("/snapshots/..%2Fevents.db");
    ASSERT_TRUE(bad);
    EXPECT_NE(bad->status, 200);

    auto state = cli.Get("/api/state");
    ASSERT_TRUE(state);
    const auto st = nlohmann::json::parse(state->body);
    EXPECT_EQ(st["sources"][0]["name"], "cam");
    EXPECT_EQ(st["classes"], nlohmann::json({"fire", "neutral"}));

    auto live = cli.Get("/live/cam.jpg");
    ASSERT_TRUE(live);
    EXPECT_EQ(live->status, 200);
    EXPECT_FALSE(cv::imdecode(std::vector<unsigned char>(live->body.begin(), live->body.end()), cv::IMREAD_COLOR).empty());

    // The MJPEG stream: read until two frames have come, then hang up.
    std::string stream;
    cli.Get("/stream/cam", [&](const char* data, std::size_t n) {
        stream.append(data, n);
        std::size_t parts = 0;
        for (auto p = stream.find("--firesightframe"); p != std::string::npos; p = stream.find("--firesightframe", p + 1)) ++parts;
        return parts < 3;
    });
    EXPECT_NE(stream.find("Content-Type: image/jpeg"), std::string::npos);
    EXPECT_NE(stream.find("\xFF\xD8"), std::string::npos);

    auto metrics = cli.Get("/metrics");
    ASSERT_TRUE(metrics);
    EXPECT_NE(metrics->get_header_value("Content-Type").find("text/plain"), std::string::npos);
    std::smatch m;
    ASSERT_TRUE(std::regex_search(metrics->body, m, std::regex("firesight_frames_processed_total\\{source=\"cam\"\\} (\\d+)"))) << metrics->body;
    EXPECT_GT(std::stoi(m[1]), 0);
    EXPECT_NE(metrics->body.find("# TYPE firesight_inference_seconds summary"), std::string::npos);
    EXPECT_NE(metrics->body.find("firesight_alarms_total{source=\"cam\"}"), std::string::npos);
    w.stop();
}

TEST(WatchDashboard, TokenIsRequiredWhenSetAndInventedBeyondLoopback) {
    test::TempDir dir;
    test::OrangeClassifier clf;
    {
        Watcher w(live_config(dir, any_port("127.0.0.1", "s3cret")), clf);
        w.start();
        httplib::Client cli("127.0.0.1", w.http_port());
        EXPECT_EQ(cli.Get("/api/state")->status, 401);
        EXPECT_EQ(cli.Get("/api/state?token=wrong")->status, 401);
        EXPECT_EQ(cli.Get("/api/state?token=s3cret")->status, 200);
        EXPECT_EQ(cli.Get("/metrics", {{"Authorization", "Bearer s3cret"}})->status, 200);
        EXPECT_EQ(cli.Get("/healthz")->status != 401, true);
        w.stop();
    }
    {
        Watcher w(live_config(dir, any_port("0.0.0.0")), clf);
        EXPECT_EQ(w.http_token().size(), 32u);
        w.start();
        httplib::Client cli("127.0.0.1", w.http_port());
        EXPECT_EQ(cli.Get("/api/events")->status, 401);
        EXPECT_EQ(cli.Get(("/api/events?token=" + w.http_token()).c_str())->status, 200);
        w.stop();
    }
}

TEST(WatchDashboard, PageShowsEventsAndTheLiveImageInHeadlessChromium) {
    const std::string chromium = test::find_program({"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"});
    ASSERT_FALSE(chromium.empty()) << "chromium is not installed (scripts/deps.txt lists it)";
    test::TempDir dir;
    test::OrangeClassifier clf;
    Watcher w(live_config(dir, any_port()), clf);
    w.start();
    ASSERT_TRUE(test::eventually([&] { return w.store().count() >= 2 && w.hub().get("cam").frames > 0; })) << "no events";
    const std::string url = "http://127.0.0.1:" + std::to_string(w.http_port()) + "/";
    auto browser = [&](const std::string& what, const std::string& profile) {
        return chromium + " --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking"
                          " --disable-component-update --disable-sync --disable-dev-shm-usage --hide-scrollbars"
                          " --user-data-dir=" + test::shell_quote((dir / profile).string()) +
               " --virtual-time-budget=6000 --window-size=1280,900 " + what + " " + test::shell_quote(url);
    };
    const auto dom = test::run_command("timeout 150 " + browser("--dump-dom", "profile-dom") + " 2>/dev/null");
    ASSERT_EQ(dom.exit_code, 0) << dom.out;
    EXPECT_NE(dom.out.find("class=\"event\""), std::string::npos) << "no event rows in:\n" << dom.out;
    EXPECT_NE(dom.out.find("suspected"), std::string::npos);
    EXPECT_TRUE(std::regex_search(dom.out, std::regex("<img class=\"live\"[^>]*data-loaded=\"1\""))) << "live image did not load:\n" << dom.out;

    const fs::path shot = test::binary_dir() / "tests" / "watch" / "dashboard.png";
    fs::remove(shot);
    const auto r = test::run_command("timeout 150 " + browser("--screenshot=" + test::shell_quote(shot.string()), "profile-shot"));
    ASSERT_EQ(r.exit_code, 0) << r.out;
    const cv::Mat png = cv::imread(shot.string());
    ASSERT_FALSE(png.empty()) << "no screenshot at " << shot;
    EXPECT_EQ(png.cols, 1280);
    w.stop();
}

TEST(WatchDashboard, AnHttpStreamThatClosesIsReopenedAndLogged) {
    // Watcher A serves MJPEG; watcher B watches that stream over HTTP (OpenCV/FFmpeg), as it
    // would an IP camera. A goes away and comes back on the same port.
    test::TempDir dir;
    test::OrangeClassifier clf_a, clf_b;
    HttpConfig fixed;
    fixed.port = test::free_port();
    auto cfg_a = live_config(dir, fixed);
    auto a = std::make_unique<Watcher>(cfg_a, clf_a);
    a->start();
    WatchConfig cfg_b;
    cfg_b.data_dir = dir / "data-b";
    cfg_b.fps = 0;
    cfg_b.reopen_min_s = 0.2;
    cfg_b.reopen_max_s = 1;
    cfg_b.sources.push_back({"relay", "http://127.0.0.1:" + std::to_string(fixed.port) + "/stream/cam"});
    Watcher b(cfg_b, clf_b);
    b.start();
    auto count = [&](const std::string& kind) {
        int n = 0;
        for (const auto& e : b.store().recent(1000)) n += e.kind == kind;
        return n;
    };
    ASSERT_TRUE(test::eventually([&] { return b.hub().get("relay").frames >= 3; })) << "no frames from the stream";
    a->stop();
    a.reset();
    ASSERT_TRUE(test::eventually([&] { return count("outage") >= 1; })) << "closed stream not noticed";
    EXPECT_FALSE(b.hub().get("relay").up);
    a = std::make_unique<Watcher>(cfg_a, clf_a);
    a->start();
    ASSERT_TRUE(test::eventually([&] { return count("restored") >= 1; })) << "stream not reopened";
    const auto before = b.hub().get("relay").frames;
    ASSERT_TRUE(test::eventually([&] { return b.hub().get("relay").frames > before; }));
    b.stop();
    a->stop();
    EXPECT_EQ(count("outage"), 1);
}
