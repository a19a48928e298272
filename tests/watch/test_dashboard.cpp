// The web dashboard: endpoints over HTTP, the token rule, and the page in a real headless
// Chromium showing the event list and the live image (its screenshot is kept in the build dir).
#include <gtest/gtest.h>

#include <httplib.h>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>

#include <opencv2/imgcodecs.hpp>

#include <regex>

#include "firesight/common/fileio.h"
#include "firesight/watch/watch.h"
#include "test_util.h"
#include "browser_test_util.h"
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

namespace {

// Sends raw bytes to the dashboard and returns the status of its reply, 0 when it closed the
// connection without one (both count as a refusal for garbage).
int raw_status(int port, const std::string& bytes) {
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(static_cast<uint16_t>(port));
    if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
        ::close(s);
        return -1;
    }
    timeval tv{20, 0};
    ::setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(s, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    for (std::size_t sent = 0; sent < bytes.size();) {
        const auto n = ::send(s, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) break;  // the server may hang up on a huge request before reading it all
        sent += static_cast<std::size_t>(n);
    }
    std::string reply;
    char buf[4096];
    for (ssize_t n; reply.find("\r\n") == std::string::npos && (n = ::recv(s, buf, sizeof buf, 0)) > 0;) reply.append(buf, static_cast<std::size_t>(n));
    ::close(s);
    std::smatch m;
    if (std::regex_search(reply, m, std::regex("^HTTP/1\\.[01] (\\d{3})"))) return std::stoi(m[1]);
    return 0;
}

WatchConfig finished_fire_config(const test::TempDir& dir, HttpConfig http) {
    test::write_video(dir / "yard.avi", 60, 10, [](int i) { return i >= 15 && i < 40; });
    WatchConfig c;
    c.data_dir = dir / "data";
    c.fps = 0;
    c.decision.min_alarm_seconds = 0.5;
    c.http = http;
    SourceSpec s{"yard", (dir / "yard.avi").string()};
    s.realtime = false;
    c.sources.push_back(s);
    return c;
}

std::optional<Event> first_event_to(EventStore& store, const std::string& to) {
    auto all = store.recent(1000);
    for (auto it = all.rbegin(); it != all.rend(); ++it)
        if (it->to == to && it->kind == "state") return *it;
    return std::nullopt;
}

}  // namespace

TEST(WatchDashboard, HostileRequestsAreRefusedAndTheServerKeepsServing) {
    test::TempDir dir;
    test::OrangeClassifier clf;
    Watcher w(live_config(dir, any_port("127.0.0.1", "s3cret")), clf);
    w.start();
    ASSERT_TRUE(test::eventually([&] { return first_event_to(w.store(), "suspected").has_value(); })) << "no event";
    const auto snap = first_event_to(w.store(), "suspected")->snapshot;
    const int port = w.http_port();
    // Bait outside the snapshot folder, and symlinks inside it pointing out.
    const auto secret = dir / "secret.jpg";
    cv::imwrite(secret.string(), test::scene_frame(0, false));
    fs::create_symlink(secret, w.store().snapshot_dir() / "planted.jpg");
    fs::create_symlink(w.store().dir() / "events.db", w.store().snapshot_dir() / "db.jpg");
    auto get = [](const std::string& target, const std::string& headers = {}) {
        return "GET " + target + " HTTP/1.1\r\nHost: x\r\n" + headers + "Connection: close\r\n\r\n";
    };
    // The positive control: the same request shape does serve a real snapshot.
    ASSERT_EQ(raw_status(port, get("/snapshots/" + snap + "?token=s3cret")), 200);

    const std::string tok = "?token=s3cret";
    const std::vector<std::string> hostile{
        "GARBAGE\r\n\r\n",
        "GET\r\n\r\n",
        "GET /api/state HTTP/1.1\r\n\r\n",
        "\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  // a TLS hello on the plain port
        "GET /" + std::string(200000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n",
        get("/api/state" + tok, "X-Big: " + std::string(200000, 'b') + "\r\n"),
        "BREW /api/state" + tok + " HTTP/1.1\r\nHost: x\r\n\r\n",
        "DELETE /api/events" + tok + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "PUT /snapshots/" + snap + tok + " HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
        "POST /api/events/1/feedback" + tok + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 99999999\r\n\r\n{",
        get("/api/events"),
        get("/api/events?token="),
        get("/api/events?token=s3cre"),
        get("/api/events?token=s3cret1"),
        get("/api/events?token=S3CRET"),
        get("/api/events", "Authorization: Bearer\r\n"),
        get("/api/events", "Authorization: Bearer s3cre\r\n"),
        get("/api/events", "Authorization: Basic czNjcmV0\r\n"),
        get("/snapshots/" + snap),  // a real snapshot, but no token
        get("/metrics?token=%00s3cret"),
        get("/snapshots/../events.db" + tok),
        get("/snapshots/..%2fevents.db" + tok),
        get("/snapshots/%2e%2e%2fevents.db" + tok),
        get("/snapshots/%2e%2e/%2e%2e/secret.jpg" + tok),
        get("/snapshots/%252e%252e%252fsecret.jpg" + tok),
        get("/snapshots/..%5c..%5csecret.jpg" + tok),
        get("/snapshots/..\\..\\secret.jpg" + tok),
        get("/snapshots/" + secret.string() + tok),
        get("/snapshots/%2f" + secret.relative_path().string() + tok),
        get("/snapshots//etc/passwd" + tok),
        get("/snapshots/" + snap + "%00.png" + tok),
        get("/snapshots/x%00/../../secret.jpg" + tok),
        get("/snapshots/planted.jpg" + tok),
        get("/snapshots/db.jpg" + tok),
        get("/snapshots/.hidden.jpg" + tok),
        get("/snapshots/events.db" + tok),
        get("/live/..%2f..%2fsecret.jpg" + tok),
        get("/stream/%2e%2e" + tok),
    };
    for (std::size_t i = 0; i < hostile.size(); ++i) {
        const int status = raw_status(port, hostile[i]);
        EXPECT_TRUE(status == 0 || (status >= 400 && status < 500))
            << "request " << i << " got " << status << ": " << hostile[i].substr(0, 120);
    }
    // Well-formed but wrong, through a normal client: no body leaks what was asked for.
    httplib::Client cli("127.0.0.1", port);
    for (const char* path : {"/snapshots/db.jpg?token=s3cret", "/snapshots/planted.jpg?token=s3cret", "/api/events?token=nope"}) {
        auto r = cli.Get(path);
        ASSERT_TRUE(r) << path;
        EXPECT_GE(r->status, 400) << path;
        EXPECT_EQ(r->body.find("SQLite format"), std::string::npos) << path;
        EXPECT_EQ(r->body.find("\xFF\xD8"), std::string::npos) << path;
    }
    auto health = cli.Get("/healthz");
    ASSERT_TRUE(health) << "the server stopped serving";
    EXPECT_EQ(health->status, 200);
    EXPECT_EQ(cli.Get(("/snapshots/" + snap + "?token=s3cret").c_str())->status, 200);
    w.stop();
}

TEST(WatchDashboard, FeedbackFilesTheSnapshotAndRecordsTheVerdict) {
    test::TempDir dir;
    test::OrangeClassifier clf;
    Watcher w(finished_fire_config(dir, any_port("127.0.0.1", "s3cret")), clf);
    w.start();
    ASSERT_TRUE(w.wait_for(120));
    const auto alarm = first_event_to(w.store(), "alarm");
    ASSERT_TRUE(alarm);
    ASSERT_FALSE(alarm->snapshot.empty());
    const auto feedback = dir / "data" / "feedback";
    const std::string stem = "event-" + std::to_string(alarm->id) + "-yard.jpg";
    httplib::Client cli("127.0.0.1", w.http_port());
    const auto url = "/api/events/" + std::to_string(alarm->id) + "/feedback?token=s3cret";
    auto post = [&](const std::string& path, const std::string& body, const std::string& type = "application/json") {
        auto r = cli.Post(path.c_str(), body, type.c_str());
        return r ? r->status : -1;
    };

    ASSERT_EQ(post(url, R"({"verdict": "false_alarm"})"), 200);
    EXPECT_FALSE(cv::imread((feedback / "neutral" / stem).string()).empty());
    // Filed is the frame without the overlay, not the annotated snapshot.
    EXPECT_EQ(read_file_text(feedback / "neutral" / stem), read_file_text(w.store().snapshot_dir() / EventStore::frame_file(alarm->snapshot)));
    EXPECT_EQ(w.store().get(alarm->id)->verdict, "false_alarm");
    EXPECT_GT(w.store().get(alarm->id)->verdict_ms, 0);
    // Changing one's mind moves the copy to the class folder.
    ASSERT_EQ(post(url, R"({"verdict": "confirmed"})"), 200);
    EXPECT_FALSE(cv::imread((feedback / "fire" / stem).string()).empty());
    EXPECT_FALSE(fs::exists(feedback / "neutral" / stem));
    EXPECT_EQ(w.store().get(alarm->id)->verdict, "confirmed");
    const auto events = nlohmann::json::parse(cli.Get("/api/events?token=s3cret")->body);
    bool listed = false;
    for (const auto& e : events) listed = listed || (e["id"] == alarm->id && e["verdict"] == "confirmed");
    EXPECT_TRUE(listed);
    for (const auto& f : fs::recursive_directory_iterator(feedback))
        EXPECT_EQ(f.path().string().find(".tmp"), std::string::npos) << "temp file left: " << f.path();

    // Refusals, each with its own status, and none of them writes anything.
    EXPECT_EQ(post("/api/events/" + std::to_string(alarm->id) + "/feedback", R"({"verdict": "false_alarm"})"), 401);
    EXPECT_EQ(post(url, R"({"verdict": "maybe"})"), 400);
    EXPECT_EQ(post(url, R"(not json)"), 400);
    EXPECT_EQ(post(url, "verdict=false_alarm", "application/x-www-form-urlencoded"), 415);
    EXPECT_EQ(post("/api/events/999999/feedback?token=s3cret", R"({"verdict": "false_alarm"})"), 404);
    std::int64_t ended = 0;
    for (const auto& e : w.store().recent(100))
        if (e.kind == "ended") ended = e.id;
    ASSERT_GT(ended, 0);
    EXPECT_EQ(post("/api/events/" + std::to_string(ended) + "/feedback?token=s3cret", R"({"verdict": "confirmed"})"), 409);
    EXPECT_TRUE(w.store().get(ended)->verdict.empty());
    EXPECT_EQ(w.store().get(alarm->id)->verdict, "confirmed");
    w.stop();
}

TEST(WatchDashboard, FeedbackAlsoFilesTheRegionThatFired) {
    test::TempDir dir;
    EventStore store(dir / "data");
    Event e;
    e.source = "gate";
    e.kind = "state";
    e.from = "suspected";
    e.to = "alarm";
    e.cls = "smoke";
    e.region = cv::Rect(40, 30, 64, 48);
    e = store.append(e, test::scene_frame(2, true));
    ASSERT_EQ(store.get(e.id)->region, e.region);
    const auto r = record_feedback(store, dir / "fb", e.id, "confirmed");
    EXPECT_EQ(r.label, "smoke");
    ASSERT_EQ(r.files.size(), 2u);
    EXPECT_EQ(r.files[1], dir / "fb" / "smoke" / ("event-" + std::to_string(e.id) + "-gate-region.jpg"));
    EXPECT_EQ(cv::imread(r.files[0].string()).size(), cv::Size(160, 120));
    EXPECT_EQ(cv::imread(r.files[1].string()).size(), cv::Size(64, 48));
    // The snapshot pruned away: a clear refusal, no verdict recorded.
    Event gone = e;
    gone = store.append(gone, test::scene_frame(3, true));
    fs::remove(store.snapshot_dir() / gone.snapshot);
    try {
        record_feedback(store, dir / "fb", gone.id, "false_alarm");
        ADD_FAILURE() << "no error for a missing snapshot";
    } catch (const FeedbackError& err) {
        EXPECT_EQ(err.status, 410);
    }
    EXPECT_TRUE(store.get(gone.id)->verdict.empty());
}

TEST(WatchDashboard, ClickingFalseAlarmInChromiumFilesTheSnapshot) {
    const std::string chromium = test::find_program({"/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"});
    ASSERT_FALSE(chromium.empty()) << "chromium is not installed (scripts/deps.txt lists it)";
    test::TempDir dir;
    test::OrangeClassifier clf;
    Watcher w(finished_fire_config(dir, any_port("127.0.0.1", "s3cret")), clf);
    w.start();
    ASSERT_TRUE(w.wait_for(120));  // the video has ended: the event list no longer changes
    const auto alarm = first_event_to(w.store(), "alarm");
    ASSERT_TRUE(alarm);
    test::Browser b(chromium, dir / "profile");
    ASSERT_TRUE(b.ok());
    const std::string session = b.open("http://127.0.0.1:" + std::to_string(w.http_port()) + "/?token=s3cret");
    ASSERT_FALSE(session.empty()) << "Chromium opened no tab";
    // A real mouse click on the "false alarm" button of the alarm's row (the page redraws the
    // table every second, so a click that lands mid-redraw is tried again rather than assumed).
    const auto copy = dir / "data" / "feedback" / "neutral" / ("event-" + std::to_string(alarm->id) + "-yard.jpg");
    const bool filed = b.click_until("#event-" + std::to_string(alarm->id) + " button[data-verdict=\"false_alarm\"]", session,
                                     [&] { return w.store().get(alarm->id)->verdict == "false_alarm"; });
    ASSERT_TRUE(filed) << "no false-alarm button on the page, or the click did not record a verdict";
    EXPECT_FALSE(cv::imread(copy.string()).empty()) << copy;
    ASSERT_TRUE(test::eventually([&] {
        const auto status = b.eval("document.getElementById('feedback-status').textContent", session);
        return status.is_string() && status.get<std::string>().find("filed under neutral") != std::string::npos;
    }, 30)) << "the page did not say where it was filed";
    EXPECT_TRUE(test::eventually([&] {
        const auto v = b.eval("(document.querySelector('#event-" + std::to_string(alarm->id) + " .verdict') || {}).textContent", session);
        return v.is_string() && v.get<std::string>() == "false alarm";
    }, 30));
    w.stop();
}
