// firesight-watch run as a service would run it: a subprocess on a generated image folder with a
// small engine file and a real mosquitto, driven with the signals systemd sends. SIGHUP reloads the
// config (new thresholds change what alarms; a broken file keeps the old config); SIGTERM stops
// with exit status 0 and every decided event stored; kill -9 with the broker down, then a restart,
// delivers what was queued. The only time limits are generous stop deadlines.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/stat.h>

#include <fstream>
#include <regex>
#include <sstream>

#include <httplib.h>
#include <mosquitto.h>

#include "engine/graph_helpers.h"
#include "firesight/data/engine_classifier.h"
#include "firesight/watch/events.h"
#include "test_util.h"
#include "watch_test_util.h"

using namespace firesight;
namespace fs = std::filesystem;

namespace {

std::string watch_program() { return (test::binary_dir() / "apps" / "firesight-watch" / "firesight-watch").string(); }

// An engine that calls orange "fire": the mean RGB of an 8x8 view, then
// fire logit = 2 * (R - B) - 2, neutral logit = 0. An orange frame scores about 0.8, a grey-green
// one about 0.1, so thresholds either side of 0.8 decide whether orange alarms.
void write_orange_engine(const fs::path& path, bool feature_map = true) {
    engine::testing::GraphMaker m(1);
    if (!feature_map) {  // the pool straight on the input: no feature map to draw
        const auto pooled = m.pool(m.input({1, 8, 8, 3}));
        engine::Op fc;
        fc.kind = engine::OpKind::FullyConnected;
        fc.inputs = {pooled, m.g.add_constant("w", {2, 3}, {2.f, 0.f, -2.f, 0.f, 0.f, 0.f}), m.g.add_constant("b", {2}, {-2.f, 0.f})};
        fc.outputs = {m.act({1, 2})};
        m.g.ops.push_back(fc);
        m.g.outputs = {m.softmax(fc.outputs[0]), fc.outputs[0]};
        m.g.metadata.class_names = {"fire", "neutral"};
        m.g.metadata.size = m.g.metadata.resize_shorter = 8;
        engine::save_engine(m.g, path);
        return;
    }
    // A 1x1 identity convolution first, so the graph has a feature map for class activation maps
    // (the alarm snapshot), as a real model does.
    engine::Op conv;
    conv.kind = engine::OpKind::Conv2D;
    conv.groups = 1;
    conv.stride_h = conv.stride_w = 1;
    conv.dilation_h = conv.dilation_w = 1;
    conv.inputs = {m.input({1, 8, 8, 3}), m.g.add_constant("k", {3, 1, 1, 3}, {1, 0, 0, 0, 1, 0, 0, 0, 1}),
                   m.g.add_constant("kb", {3}, {0, 0, 0})};
    conv.outputs = {m.act({1, 8, 8, 3})};
    m.g.ops.push_back(conv);
    const auto pooled = m.pool(conv.outputs[0]);
    engine::Op fc;
    fc.kind = engine::OpKind::FullyConnected;
    fc.inputs = {pooled, m.g.add_constant("w", {2, 3}, {2.f, 0.f, -2.f, 0.f, 0.f, 0.f}), m.g.add_constant("b", {2}, {-2.f, 0.f})};
    fc.outputs = {m.act({1, 2})};
    m.g.ops.push_back(fc);
    m.g.outputs = {m.softmax(fc.outputs[0]), fc.outputs[0]};
    m.g.metadata.class_names = {"fire", "neutral"};
    m.g.metadata.size = m.g.metadata.resize_shorter = 8;
    engine::save_engine(m.g, path);
}

// One image into the watched folder, written aside and renamed so the watcher never reads half.
void drop_image(const fs::path& folder, const std::string& name, bool fire) {
    const cv::Mat img(48, 64, CV_8UC3, fire ? cv::Scalar(20, 130, 240) : cv::Scalar(90, 110, 80));
    std::vector<unsigned char> png;
    ASSERT_TRUE(cv::imencode(".png", img, png));
    const auto tmp = folder / (name + ".tmp");  // not an image name: the watcher skips it
    std::ofstream(tmp, std::ios::binary).write(reinterpret_cast<const char*>(png.data()), static_cast<std::streamsize>(png.size()));
    fs::rename(tmp, folder / (name + ".png"));
}

// Frames the service has classified, from its dashboard's /metrics (-1 when it does not answer).
long frames_processed(int port) {
    httplib::Client cli("127.0.0.1", port);
    cli.set_connection_timeout(2, 0);
    auto res = cli.Get("/metrics");
    if (!res || res->status != 200) return -1;
    std::smatch m;
    static const std::regex re(R"(firesight_frames_processed_total\{source="cam"\} (\d+))");
    return std::regex_search(res->body, m, re) ? std::stol(m[1]) : -1;
}

struct Config {
    fs::path folder, folder2, data, engine;
    int mqtt_port = 0, http_port = 0;
    double enter = 0.95, exit = 0.5;
};

void write_config(const fs::path& path, const Config& c) {
    std::ofstream out(path.string() + ".new");
    out << "model = \"" << c.engine.string() << "\"\nfps = 10\nloop = true\ndata_dir = \"" << c.data.string() << "\"\n"
        << "[sources]\ncam = \"" << c.folder.string() << "\"\n"
        << (c.folder2.empty() ? std::string() : "cam2 = \"" + c.folder2.string() + "\"\n")
        << "[decision]\nalarm_classes = [\"fire\"]\nenter = " << c.enter << "\nexit = " << c.exit
        << "\nema_alpha = 1.0\nk = 2\nn = 3\nclear_frames = 1\nmin_alarm_seconds = 0\n";
    if (c.mqtt_port) out << "[mqtt]\nport = " << c.mqtt_port << "\nclient_id = \"firesight-service-test\"\n";
    if (c.http_port) out << "[http]\nlisten = \"127.0.0.1:" << c.http_port << "\"\n";
    out.close();
    fs::rename(path.string() + ".new", path);  // the service never reads half a file
}

// firesight-watch as a child process, stdout and stderr into one log file.
class Service {
public:
    Service(const fs::path& config, const fs::path& log, bool journal = false)
        : Service(std::vector<std::string>{"--config", config.string()}, log, journal) {}
    Service(const std::vector<std::string>& args, const fs::path& log, bool journal = false) : log_(log) {
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
        posix_spawn_file_actions_adddup2(&fa, 1, 2);
        std::vector<std::string> env;
        for (char** e = environ; *e; ++e)
            if (std::string(*e).rfind("JOURNAL_STREAM=", 0) != 0) env.emplace_back(*e);
        if (journal) {
            // What systemd sets: the device and inode of the stream stdout and stderr go to.
            std::ofstream(log, std::ios::app).flush();
            struct stat st {};
            ::stat(log.c_str(), &st);
            env.push_back("JOURNAL_STREAM=" + std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino));
        }
        std::vector<char*> envp;
        for (auto& e : env) envp.push_back(e.data());
        envp.push_back(nullptr);
        // Under qemu (arm64 tests on x86) the emulator starts the program: no binfmt_misc here.
        const auto command = test::program_argv(watch_program());
        const std::string& exe = command.front();
        std::vector<const char*> argv;
        for (const auto& a : command) argv.push_back(a.c_str());
        for (const auto& a : args) argv.push_back(a.c_str());
        argv.push_back(nullptr);
        const int rc = ::posix_spawn(&pid_, exe.c_str(), &fa, nullptr, const_cast<char**>(argv.data()), envp.data());
        posix_spawn_file_actions_destroy(&fa);
        EXPECT_EQ(rc, 0) << "cannot start " << exe;
    }
    ~Service() {
        if (pid_ > 0) {
            ::kill(pid_, SIGKILL);
            ::waitpid(pid_, nullptr, 0);
        }
    }
    std::string log() const {
        std::ifstream in(log_);
        std::stringstream s;
        s << in.rdbuf();
        return s.str();
    }
    bool logged(const std::string& text, double seconds = 60) const {
        return test::eventually([&] { return log().find(text) != std::string::npos; }, seconds);
    }
    std::size_t count(const std::string& text) const {
        const auto l = log();
        std::size_t n = 0;
        for (auto p = l.find(text); p != std::string::npos; p = l.find(text, p + 1)) ++n;
        return n;
    }
    void signal(int sig) { ::kill(pid_, sig); }
    bool alive() const { return pid_ > 0 && ::waitpid(pid_, nullptr, WNOHANG) == 0; }
    // Waits for the exit (at most `seconds`); the exit status, or -1 when it is still running,
    // 128 + N when a signal ended it.
    int wait_exit(double seconds) {
        int st = 0;
        const bool done = test::eventually([&] { return ::waitpid(pid_, &st, WNOHANG) == pid_; }, seconds);
        if (!done) return -1;
        pid_ = -1;
        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }

private:
    fs::path log_;
    pid_t pid_ = -1;
};

// The "state" transitions the service printed ("idle -> suspected", ...), in order.
std::vector<std::string> printed_transitions(const std::string& log) {
    std::vector<std::string> out;
    static const std::regex re(R"(  cam\s+(\w+ -> \w+))");
    for (std::sregex_iterator it(log.begin(), log.end(), re), end; it != end; ++it) out.push_back((*it)[1]);
    return out;
}

std::vector<std::string> stored_transitions(watch::EventStore& store) {
    auto events = store.recent(1000, "cam");
    std::reverse(events.begin(), events.end());
    std::vector<std::string> out;
    for (const auto& e : events)
        if (e.kind == "state") out.push_back(e.from + " -> " + e.to);
    return out;
}

// A subscriber on everything: the event ids that reached the broker.
class Subscriber {
public:
    explicit Subscriber(int port) {
        mosquitto_lib_init();
        m_ = mosquitto_new("service-test-sub", true, this);
        mosquitto_connect_callback_set(m_, [](mosquitto* m, void*, int rc) {
            if (rc == 0) mosquitto_subscribe(m, nullptr, "firesight/+/event", 1);
        });
        mosquitto_subscribe_callback_set(m_, [](mosquitto*, void* self, int, int, const int*) { static_cast<Subscriber*>(self)->subscribed = true; });
        mosquitto_message_callback_set(m_, [](mosquitto*, void* self, const mosquitto_message* msg) {
            auto* s = static_cast<Subscriber*>(self);
            const auto j = nlohmann::json::parse(std::string(static_cast<const char*>(msg->payload), static_cast<std::size_t>(msg->payloadlen)));
            std::lock_guard lk(s->mu_);
            s->ids_.insert(j.at("event_id").get<std::int64_t>());
        });
        mosquitto_reconnect_delay_set(m_, 1, 1, false);
        mosquitto_connect_async(m_, "127.0.0.1", port, 10);
        mosquitto_loop_start(m_);
    }
    ~Subscriber() {
        mosquitto_disconnect(m_);
        mosquitto_loop_stop(m_, true);
        mosquitto_destroy(m_);
    }
    bool has(std::int64_t id) const {
        std::lock_guard lk(mu_);
        return ids_.count(id) > 0;
    }
    std::atomic<bool> subscribed{false};

private:
    mosquitto* m_;
    mutable std::mutex mu_;
    std::set<std::int64_t> ids_;
};

class WatchService : public ::testing::Test {
protected:
    void SetUp() override {
        if (::access(watch_program().c_str(), X_OK) != 0) GTEST_FAIL() << watch_program() << " is not built";
        c.folder = dir / "in";
        c.data = dir / "data";
        c.engine = dir / "orange.fse";
        fs::create_directories(c.folder);
        write_orange_engine(c.engine);
    }
    test::TempDir dir;
    Config c;
};

TEST_F(WatchService, SighupReloadsTheConfigAndSigtermStopsWithEveryEventStored) {
    test::Broker broker(dir / "broker");
    broker.start();
    c.mqtt_port = broker.port();
    c.http_port = test::free_port();
    c.enter = 0.95;  // orange (about 0.8) does not alarm yet
    c.exit = 0.5;
    write_config(dir / "watch.toml", c);
    Service svc(dir / "watch.toml", dir / "log");
    ASSERT_TRUE(svc.logged("watching 1 source(s)")) << svc.log();
    ASSERT_TRUE(svc.logged("SIGHUP reloads")) << svc.log();

    for (int i = 0; i < 4; ++i) drop_image(c.folder, "a" + std::to_string(i), true);
    // Four orange frames classified, none over 0.95: no transition at all.
    ASSERT_TRUE(test::eventually([&] { return frames_processed(c.http_port) == 4; })) << svc.log();
    EXPECT_EQ(printed_transitions(svc.log()).size(), 0u) << svc.log();

    // Lower thresholds: the same orange now alarms, on the next frames.
    c.enter = 0.5;
    c.exit = 0.3;
    write_config(dir / "watch.toml", c);
    svc.signal(SIGHUP);
    ASSERT_TRUE(svc.logged("config reloaded: decision settings")) << svc.log();
    for (int i = 0; i < 3; ++i) drop_image(c.folder, "b" + std::to_string(i), true);
    ASSERT_TRUE(svc.logged("suspected -> alarm")) << svc.log();

    // A broken file is refused; the running config stays (the alarm still clears at exit 0.3).
    {
        std::ofstream(dir / "watch.toml") << "[decision]\nenter = \"high\"\n";
    }
    svc.signal(SIGHUP);
    ASSERT_TRUE(svc.logged("config reload failed, still running the previous config")) << svc.log();
    EXPECT_NE(svc.log().find("decision.enter: must be a number"), std::string::npos) << svc.log();
    drop_image(c.folder, "c0", false);
    ASSERT_TRUE(svc.logged("alarm -> cleared")) << svc.log();
    ASSERT_TRUE(svc.alive());

    // Then SIGTERM: exit 0 within a generous deadline, everything printed is stored.
    drop_image(c.folder, "d0", true);
    drop_image(c.folder, "d1", true);
    const auto asked = std::chrono::steady_clock::now();
    svc.signal(SIGTERM);
    EXPECT_EQ(svc.wait_exit(30), 0) << svc.log();
    // Reported, not asserted (the machine may be loaded): systemd allows 10 s (TimeoutStopSec).
    std::printf("firesight-watch stopped %.2f s after SIGTERM\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - asked).count());
    EXPECT_NE(svc.log().find("stopping"), std::string::npos) << svc.log();
    watch::EventStore store(c.data, {"mqtt"});
    const auto printed = printed_transitions(svc.log());
    ASSERT_GE(printed.size(), 3u) << svc.log();
    EXPECT_EQ(stored_transitions(store), printed) << svc.log();
}

TEST_F(WatchService, KilledWithTheBrokerDownItSendsTheQueuedEventsAfterARestart) {
    test::Broker broker(dir / "broker");
    c.mqtt_port = broker.port();  // not started: every event waits in the outbox
    c.enter = 0.5;
    c.exit = 0.3;
    write_config(dir / "watch.toml", c);
    std::vector<std::int64_t> queued;
    {
        // Logged as systemd would collect it: <N> priority prefixes.
        Service svc(dir / "watch.toml", dir / "log1", /*journal=*/true);
        ASSERT_TRUE(svc.logged("watching 1 source(s)")) << svc.log();
        for (int i = 0; i < 3; ++i) drop_image(c.folder, "a" + std::to_string(i), true);
        ASSERT_TRUE(svc.logged("suspected -> alarm")) << svc.log();
        EXPECT_NE(svc.log().find("<6>firesight: watching 1 source(s)"), std::string::npos) << svc.log();
        EXPECT_TRUE(std::regex_search(svc.log(), std::regex(R"((^|\n)<4>\S+  cam\s+suspected -> alarm)"))) << svc.log();
        svc.signal(SIGKILL);
        EXPECT_EQ(svc.wait_exit(30), 128 + SIGKILL);
        watch::EventStore store(c.data, {"mqtt"});
        for (const auto& e : store.recent(100)) queued.push_back(e.id);
        EXPECT_EQ(static_cast<std::int64_t>(queued.size()), store.pending_count("mqtt"));
        EXPECT_EQ(stored_transitions(store), printed_transitions(svc.log())) << svc.log();
    }
    ASSERT_GE(queued.size(), 2u);  // idle -> suspected -> alarm at least

    for (const auto& f : fs::directory_iterator(c.folder)) fs::remove(f.path());  // nothing new to see
    broker.start();
    Subscriber sub(broker.port());
    ASSERT_TRUE(test::eventually([&] { return sub.subscribed.load(); }, 30));
    Service svc(dir / "watch.toml", dir / "log2");
    ASSERT_TRUE(test::eventually([&] {
        return std::all_of(queued.begin(), queued.end(), [&](std::int64_t id) { return sub.has(id); });
    }, 90)) << svc.log();
    svc.signal(SIGTERM);
    EXPECT_EQ(svc.wait_exit(30), 0) << svc.log();
    watch::EventStore store(c.data, {"mqtt"});
    EXPECT_EQ(store.pending_count("mqtt"), 0);
}

// A reload that changes more than the decision settings (here a source added) restarts the
// watcher inside the process: the events queued for a broker that is down stay queued and go out
// when it is back, and the new source runs.
TEST_F(WatchService, SighupWithANewSourceRestartsTheWatcherAndKeepsTheQueue) {
    test::Broker broker(dir / "broker");
    c.mqtt_port = broker.port();  // down for now
    c.enter = 0.5;
    c.exit = 0.3;
    write_config(dir / "watch.toml", c);
    Service svc(dir / "watch.toml", dir / "log");
    ASSERT_TRUE(svc.logged("watching 1 source(s)")) << svc.log();
    for (int i = 0; i < 3; ++i) drop_image(c.folder, "a" + std::to_string(i), true);
    ASSERT_TRUE(svc.logged("suspected -> alarm")) << svc.log();

    c.folder2 = dir / "in2";
    fs::create_directories(c.folder2);
    write_config(dir / "watch.toml", c);
    svc.signal(SIGHUP);
    ASSERT_TRUE(svc.logged("config reloaded: sources changed; restarting the watcher")) << svc.log();
    ASSERT_TRUE(svc.logged("watching 2 source(s)")) << svc.log();
    for (int i = 0; i < 3; ++i) drop_image(c.folder2, "b" + std::to_string(i), true);
    ASSERT_TRUE(svc.logged("cam2       suspected -> alarm")) << svc.log();

    broker.start();
    Subscriber sub(broker.port());
    ASSERT_TRUE(test::eventually([&] { return sub.subscribed.load(); }, 30));
    // Queued before the reload (ids 1, 2: cam's first transitions) and after it: all delivered.
    ASSERT_TRUE(test::eventually([&] { return sub.has(1) && sub.has(2); }, 90)) << svc.log();
    svc.signal(SIGTERM);
    EXPECT_EQ(svc.wait_exit(30), 0) << svc.log();
    watch::EventStore store(c.data, {"mqtt"});
    EXPECT_EQ(stored_transitions(store), printed_transitions(svc.log())) << svc.log();
    EXPECT_EQ(store.recent(100, "cam2").empty(), false);
}

// A source that hangs (a stream whose server accepts and never answers: OpenCV waits 30 s
// before giving up on it) cannot hold up a stop: after 5 s the service exits anyway, status 0,
// with what it decided stored.
TEST_F(WatchService, SigtermWithAStuckSourceStillStopsWithinTheGrace) {
    const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(::bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(::listen(listener, 8), 0);  // the kernel completes the handshake; nobody ever reads
    socklen_t len = sizeof a;
    ::getsockname(listener, reinterpret_cast<sockaddr*>(&a), &len);
    const std::string stream = "http://127.0.0.1:" + std::to_string(ntohs(a.sin_port)) + "/video.mjpg";
    c.enter = 0.5;
    c.exit = 0.3;
    write_config(dir / "watch.toml", c);
    Service svc({"--config", (dir / "watch.toml").string(), "--source", "stuck=" + stream}, dir / "log");
    ASSERT_TRUE(svc.logged("watching 2 source(s)")) << svc.log();
    for (int i = 0; i < 3; ++i) drop_image(c.folder, "a" + std::to_string(i), true);
    ASSERT_TRUE(svc.logged("suspected -> alarm")) << svc.log();
    const auto asked = std::chrono::steady_clock::now();
    svc.signal(SIGTERM);
    EXPECT_EQ(svc.wait_exit(30), 0) << svc.log();
    std::printf("firesight-watch with a stuck source stopped %.2f s after SIGTERM\n",
                std::chrono::duration<double>(std::chrono::steady_clock::now() - asked).count());
    ::close(listener);
    EXPECT_NE(svc.log().find("stopping took over 5 s"), std::string::npos) << svc.log();
    watch::EventStore store(c.data);
    EXPECT_EQ(stored_transitions(store), printed_transitions(svc.log())) << svc.log();
}

// Without a config file there is nothing to reload: SIGHUP is a hangup and stops, cleanly.
TEST_F(WatchService, WithoutAConfigFileSighupStops) {
    Service svc({"--model", c.engine.string(), "--source", "cam=" + c.folder.string(), "--loop", "--alarm-class", "fire", "--data",
                 c.data.string()},
                dir / "log");
    ASSERT_TRUE(svc.logged("watching 1 source(s)")) << svc.log();
    EXPECT_EQ(svc.log().find("SIGHUP reloads"), std::string::npos) << svc.log();
    svc.signal(SIGHUP);
    EXPECT_EQ(svc.wait_exit(30), 0) << svc.log();
}

TEST_F(WatchService, RefusesAModelThatIsNotAnEngineWithTheConfigExitStatus) {
    c.engine = dir / "model.tflite";
    std::ofstream(c.engine) << "not a model";
    write_config(dir / "watch.toml", c);
    Service svc(dir / "watch.toml", dir / "log");
    EXPECT_EQ(svc.wait_exit(60), 78) << svc.log();
    EXPECT_NE(svc.log().find("engine files (.fse) only"), std::string::npos) << svc.log();
}

// The alarm snapshot asks the engine for class activation maps. On a graph where that cannot run
// the snapshot goes without a map, and every later frame is still classified: the plain session
// is kept (it used to be replaced by the one that fails, blinding the watcher after one alarm).
TEST(WatchServiceEngine, MapsThatCannotRunLeaveTheClassifierWorking) {
    test::TempDir dir;
    write_orange_engine(dir / "flat.fse", /*feature_map=*/false);
    for (const char* backend : {"reference", "xnnpack"}) {
        if (std::string(backend) == "xnnpack" && !engine::backend_available(engine::Backend::Xnnpack)) continue;
        SCOPED_TRACE(backend);
        engine::SessionOptions o;
        o.backend = engine::parse_backend(backend);
        o.threads = 1;
        auto clf = open_engine_classifier(dir / "flat.fse", o);
        const cv::Mat orange(48, 64, CV_8UC3, cv::Scalar(20, 130, 240));
        const std::vector<cv::Mat> in{data::preprocess(orange, clf->preprocessing())};
        const auto before = clf->probabilities(in);
        try {
            clf->predict_with_maps(in);
        } catch (const std::exception&) {
            // refused: fine, as long as the classifier still works
        }
        const auto after = clf->probabilities(in);
        ASSERT_EQ(after.size(), 1u);
        EXPECT_NEAR(after[0][0], before[0][0], 1e-5f);
        EXPECT_GT(after[0][0], 0.7f);
    }
}

}  // namespace
