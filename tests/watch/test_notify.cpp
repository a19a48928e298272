// Notifications against a real mosquitto broker (started here on a free loopback port) and a
// real HTTP receiver: payloads, retained state, Home Assistant discovery, and every event once,
// in order, across a broker restart in the middle of an alarm.
#include <gtest/gtest.h>

#include <mosquitto.h>
#include <sys/mount.h>

#include <opencv2/imgcodecs.hpp>

#include <cstring>
#include <regex>

#include <httplib.h>

#include "firesight/watch/watch.h"
#include "test_util.h"
#include "watch_test_util.h"

using namespace firesight;
using namespace firesight::watch;
namespace fs = std::filesystem;

namespace {

struct Message {
    std::string topic, payload;
    bool retained;
};

// A test MQTT client subscribed to everything. Persistent session (clean_session false) so a
// broker restart keeps its subscription and queues what arrives while it reconnects.
class Subscriber {
public:
    Subscriber(int port, const std::string& id, bool persistent = true) {
        mosquitto_lib_init();
        m_ = mosquitto_new(id.c_str(), !persistent, this);
        mosquitto_connect_callback_set(m_, [](mosquitto* m, void*, int rc) {
            if (rc == 0) mosquitto_subscribe(m, nullptr, "#", 1);
        });
        mosquitto_subscribe_callback_set(m_, [](mosquitto*, void* self, int, int, const int*) {
            static_cast<Subscriber*>(self)->subscribed_ = true;
        });
        mosquitto_message_callback_set(m_, [](mosquitto*, void* self, const mosquitto_message* msg) {
            auto* s = static_cast<Subscriber*>(self);
            std::lock_guard lk(s->mu_);
            s->messages_.push_back({msg->topic, std::string(static_cast<const char*>(msg->payload), static_cast<std::size_t>(msg->payloadlen)),
                                    msg->retain});
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
    bool subscribed() const { return subscribed_; }
    std::vector<Message> on(const std::string& topic) const {
        std::lock_guard lk(mu_);
        std::vector<Message> out;
        for (const auto& m : messages_)
            if (m.topic == topic) out.push_back(m);
        return out;
    }
    std::vector<std::int64_t> event_ids(const std::string& topic) const {
        std::vector<std::int64_t> ids;
        for (const auto& m : on(topic)) ids.push_back(nlohmann::json::parse(m.payload).at("event_id").get<std::int64_t>());
        return ids;
    }

private:
    mosquitto* m_;
    std::atomic<bool> subscribed_{false};
    mutable std::mutex mu_;
    std::vector<Message> messages_;
};

MqttConfig mqtt_at(int port, const std::string& id) {
    MqttConfig c;
    c.port = port;
    c.client_id = id;
    c.ack_timeout_s = 3;
    return c;
}

std::vector<std::int64_t> iota_ids(std::int64_t first, std::int64_t last) {
    std::vector<std::int64_t> v;
    for (auto i = first; i <= last; ++i) v.push_back(i);
    return v;
}

// Runs recorded fire probabilities through a state machine and stores every state change.
void feed(AlarmStateMachine& m, EventStore& store, const std::string& source, const std::vector<float>& fire, double& t) {
    for (float p : fire) {
        const auto d = m.update({p, 1 - p}, t);
        t += 1;
        if (!d.changed()) continue;
        store.append(state_event(source, d, static_cast<std::int64_t>(t * 1000), static_cast<std::int64_t>(t)));
    }
}

}  // namespace

TEST(WatchMqtt, AlarmFromAVideoArrivesWithItsPayloads) {
    test::TempDir dir;
    test::Broker broker(dir / "broker");
    broker.start();
    Subscriber sub(broker.port(), "sub-payloads");
    ASSERT_TRUE(test::eventually([&] { return sub.subscribed(); }, 30));

    test::write_video(dir / "yard.avi", 60, 10, [](int i) { return i >= 15 && i < 40; });
    test::OrangeClassifier clf;
    WatchConfig cfg;
    cfg.data_dir = dir / "data";
    cfg.fps = 0;
    cfg.decision.min_alarm_seconds = 0.5;
    cfg.mqtt = mqtt_at(broker.port(), "firesight-payloads");
    SourceSpec s{"yard", (dir / "yard.avi").string()};
    s.realtime = false;
    cfg.sources.push_back(s);
    Watcher w(cfg, clf);
    w.start();
    ASSERT_TRUE(w.wait_for(120));
    ASSERT_TRUE(test::eventually([&] { return w.store().pending_count("mqtt") == 0; })) << "events not delivered";
    w.stop();

    const auto events = sub.on("firesight/yard/event");
    ASSERT_EQ(events.size(), 5u);  // suspected, alarm, cleared, idle, ended
    const auto alarm = nlohmann::json::parse(events[1].payload);
    EXPECT_EQ(alarm["kind"], "state");
    EXPECT_EQ(alarm["from"], "suspected");
    EXPECT_EQ(alarm["to"], "alarm");
    EXPECT_EQ(alarm["class"], "fire");
    EXPECT_EQ(alarm["source"], "yard");
    EXPECT_GT(alarm["peak"].get<double>(), 0.6);
    EXPECT_GE(alarm["frame"].get<int>(), 15);
    EXPECT_TRUE(alarm["probabilities"].contains("fire"));
    EXPECT_FALSE(alarm["snapshot"].get<std::string>().empty());
    EXPECT_EQ(nlohmann::json::parse(events[4].payload)["kind"], "ended");
    EXPECT_EQ(sub.event_ids("firesight/yard/event"), iota_ids(1, 5));

    const auto states = sub.on("firesight/yard/state");
    ASSERT_EQ(states.size(), 4u);
    EXPECT_EQ(nlohmann::json::parse(states[1].payload)["state"], "alarm");

    // A client connecting later gets the retained state and the Home Assistant discovery config.
    Subscriber late(broker.port(), "sub-late", false);
    ASSERT_TRUE(test::eventually([&] { return !late.on("firesight/yard/state").empty() &&
                                              !late.on("homeassistant/binary_sensor/firesight_yard/config").empty(); }, 30));
    const auto st = late.on("firesight/yard/state").back();
    EXPECT_TRUE(st.retained);
    EXPECT_EQ(nlohmann::json::parse(st.payload)["state"], "idle");
    const auto ha = nlohmann::json::parse(late.on("homeassistant/binary_sensor/firesight_yard/config").back().payload);
    EXPECT_EQ(ha["state_topic"], "firesight/yard/state");
    EXPECT_EQ(ha["unique_id"], "firesight_yard");
    EXPECT_TRUE(late.on("homeassistant/binary_sensor/firesight_yard/config").back().retained);
}

TEST(WatchMqtt, BrokerRestartDuringAnAlarmDeliversEveryEventInOrder) {
    test::TempDir dir;
    test::Broker broker(dir / "broker");
    broker.start();
    Subscriber sub(broker.port(), "sub-restart");
    ASSERT_TRUE(test::eventually([&] { return sub.subscribed(); }, 30));

    EventStore store(dir / "data", {"mqtt"});
    MqttSink sink(mqtt_at(broker.port(), "firesight-restart"), {"cam"});
    Dispatcher dispatcher(store, sink, 1.0);
    store.set_listener([&](const Event&) { dispatcher.wake(); });
    dispatcher.start();

    DecisionConfig dc;
    dc.min_alarm_seconds = 0;
    AlarmStateMachine machine(dc, {"fire", "neutral"});
    double t = 0;
    feed(machine, store, "cam", {0.02f, 0.02f, 0.9f, 0.9f, 0.9f, 0.9f, 0.9f}, t);
    ASSERT_EQ(machine.state(), AlarmState::alarm);
    ASSERT_TRUE(test::eventually([&] { return sub.on("firesight/cam/event").size() == 2; })) << "alarm not delivered";
    ASSERT_TRUE(test::eventually([&] { return store.pending_count("mqtt") == 0; })) << "alarm not acknowledged";

    broker.stop();
    // While the broker is gone the fire dies down and flares up again: all of it is queued.
    feed(machine, store, "cam", std::vector<float>(12, 0.02f), t);
    feed(machine, store, "cam", std::vector<float>(8, 0.95f), t);
    Event outage;
    outage.source = "cam";
    outage.kind = "outage";
    outage.detail = "test";
    store.append(outage);
    const auto total = store.count();
    ASSERT_GE(total, 7);
    ASSERT_TRUE(test::eventually([&] { return !sink.connected(); }, 30));
    std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // let the dispatcher fail and back off
    EXPECT_EQ(store.pending_count("mqtt"), total - 2);

    broker.start();
    ASSERT_TRUE(test::eventually([&] { return store.pending_count("mqtt") == 0; }, 90)) << "queue not drained";
    ASSERT_TRUE(test::eventually([&] { return static_cast<std::int64_t>(sub.on("firesight/cam/event").size()) >= total; }, 60));
    std::this_thread::sleep_for(std::chrono::milliseconds(500));  // a late message would arrive now
    // QoS 1 is at least once: a message the broker had sent the subscriber but saw no PUBACK for
    // before it stopped comes again after the restart (seen once in CI: events 1 and 2). A consumer
    // drops repeats by event_id; what must hold is that the first arrival of each is every event,
    // in order, none lost.
    std::vector<std::int64_t> first;
    for (const auto id : sub.event_ids("firesight/cam/event")) {
        if (std::find(first.begin(), first.end(), id) != first.end()) continue;
        first.push_back(id);
    }
    EXPECT_EQ(first, iota_ids(1, total));
    dispatcher.stop();
}

TEST(WatchMqtt, EventsWaitForABrokerThatIsNotUpYet) {
    test::TempDir dir;
    test::Broker broker(dir / "broker");
    EventStore store(dir / "data", {"mqtt"});
    MqttSink sink(mqtt_at(broker.port(), "firesight-late"), {"cam"});
    Dispatcher dispatcher(store, sink, 1.0);
    dispatcher.start();
    for (int i = 0; i < 3; ++i) {
        Event e;
        e.source = "cam";
        e.kind = "outage";
        e.detail = "event " + std::to_string(i);
        store.append(e);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(1000));
    EXPECT_EQ(store.pending_count("mqtt"), 3);
    broker.start();
    Subscriber sub(broker.port(), "sub-late-broker");
    // The subscriber may connect after some events went out; count what the outbox says.
    ASSERT_TRUE(test::eventually([&] { return store.pending_count("mqtt") == 0; }, 90));
    dispatcher.stop();
}

TEST(WatchWebhook, PostsEveryEventOnceInOrderAcrossAReceiverOutage) {
    test::TempDir dir;
    const int port = test::free_port();
    std::mutex mu;
    std::vector<std::int64_t> received;
    int refused = 0;
    auto serve = [&](httplib::Server& svr) {
        svr.Post("/hook", [&](const httplib::Request& req, httplib::Response& res) {
            const auto j = nlohmann::json::parse(req.body);
            std::lock_guard lk(mu);
            // Refuse every third first attempt: a receiver error must be retried, not skipped.
            const auto id = j.at("event_id").get<std::int64_t>();
            if (id % 3 == 0 && refused < id / 3) {
                ++refused;
                res.status = 500;
                return;
            }
            received.push_back(id);
            res.set_content("ok", "text/plain");
        });
        ASSERT_TRUE(svr.bind_to_port("127.0.0.1", port));
    };
    auto svr = std::make_unique<httplib::Server>();
    serve(*svr);
    std::thread th([&] { svr->listen_after_bind(); });

    EventStore store(dir / "data", {"webhook"});
    WebhookSink sink("http://127.0.0.1:" + std::to_string(port) + "/hook");
    Dispatcher dispatcher(store, sink, 0.5);
    store.set_listener([&](const Event&) { dispatcher.wake(); });
    dispatcher.start();
    auto add = [&](int n) {
        for (int i = 0; i < n; ++i) {
            Event e;
            e.source = "cam";
            e.kind = "state";
            e.from = "idle";
            e.to = "suspected";
            store.append(e);
        }
    };
    add(4);
    ASSERT_TRUE(test::eventually([&] { return store.pending_count("webhook") == 0; }));
    svr->stop();
    th.join();
    add(4);
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
    EXPECT_EQ(store.pending_count("webhook"), 4);
    svr = std::make_unique<httplib::Server>();
    serve(*svr);
    th = std::thread([&] { svr->listen_after_bind(); });
    ASSERT_TRUE(test::eventually([&] { return store.pending_count("webhook") == 0; }));
    dispatcher.stop();
    svr->stop();
    th.join();
    std::lock_guard lk(mu);
    EXPECT_EQ(received, iota_ids(1, 8));
    EXPECT_GE(refused, 2);
}

namespace {

// A webhook receiver on a free loopback port that keeps every payload.
class Receiver {
public:
    Receiver() : port_(test::free_port()) {
        svr_.Post("/hook", [this](const httplib::Request& req, httplib::Response& res) {
            std::lock_guard lk(mu_);
            got_.push_back(nlohmann::json::parse(req.body));
            res.set_content("ok", "text/plain");
        });
        ok_ = svr_.bind_to_port("127.0.0.1", port_);
        th_ = std::thread([this] { svr_.listen_after_bind(); });
    }
    ~Receiver() {
        svr_.stop();
        th_.join();
    }
    bool ok() const { return ok_; }
    std::string url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/hook"; }
    std::vector<nlohmann::json> got() const {
        std::lock_guard lk(mu_);
        return got_;
    }

private:
    int port_;
    bool ok_ = false;
    httplib::Server svr_;
    std::thread th_;
    mutable std::mutex mu_;
    std::vector<nlohmann::json> got_;
};

// Fills the filesystem holding `path` until a write fails for want of space.
void fill(const fs::path& path) {
    std::FILE* f = std::fopen(path.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    const std::vector<char> block(16384, 'x');
    while (std::fwrite(block.data(), 1, block.size(), f) == block.size() && std::fflush(f) == 0) {
    }
    std::fclose(f);
}

double metric(int port, const std::string& name) {
    httplib::Client cli("127.0.0.1", port);
    auto r = cli.Get("/metrics");
    std::smatch m;
    if (!r || !std::regex_search(r->body, m, std::regex("\n" + name + " ([0-9.e+]+)"))) return -1;
    return std::stod(m[1]);
}

}  // namespace

// A full disk must not stop an alarm: it goes out over MQTT and the webhook, the failure is counted
// in /metrics, and the events are written, under the ids already sent, once space is back.
TEST(WatchDiskFull, AlarmsGoOutWhileTheDiskIsFullAndAreStoredWhenSpaceReturns) {
    test::TempDir dir;
    const auto data = dir / "data";
    fs::create_directories(data);
    if (::mount("tmpfs", data.c_str(), "tmpfs", 0, "size=1m") != 0)
        GTEST_SKIP() << "cannot mount a 1 MiB tmpfs on " << data << ": " << std::strerror(errno) << " (needs root)";
    struct Unmount {
        fs::path p;
        ~Unmount() { ::umount2(p.c_str(), MNT_DETACH); }
    } unmount{data};

    test::Broker broker(dir / "broker");
    broker.start();
    Subscriber sub(broker.port(), "sub-diskfull");
    ASSERT_TRUE(test::eventually([&] { return sub.subscribed(); }, 30));
    Receiver hook;
    ASSERT_TRUE(hook.ok());

    const auto frames = dir / "frames";
    fs::create_directories(frames);
    auto add_frames = [&](const std::string& prefix, int n, bool fire) {
        for (int i = 0; i < n; ++i) {
            const auto tmp = dir / "tmp.jpg";
            cv::imwrite(tmp.string(), test::scene_frame(i, fire));
            fs::rename(tmp, frames / (prefix + std::to_string(i) + ".jpg"));  // whole files only
        }
    };
    add_frames("a", 3, false);
    test::OrangeClassifier clf;
    WatchConfig cfg;
    cfg.data_dir = data;
    cfg.fps = 0;
    cfg.decision.min_alarm_seconds = 0;
    cfg.mqtt = mqtt_at(broker.port(), "firesight-diskfull");
    cfg.webhook = hook.url();
    HttpConfig http;
    http.port = 0;
    cfg.http = http;
    SourceSpec s{"cam", frames.string()};
    s.realtime = false;
    s.loop = true;  // a camera dropping snapshots into a folder
    cfg.sources.push_back(s);
    Watcher w(cfg, clf);
    w.start();
    ASSERT_TRUE(test::eventually([&] { return w.hub().get("cam").frames == 3; }));
    const auto stored_before = w.store().count();

    fill(data / "filler");
    add_frames("b", 8, true);
    auto alarm_of = [](const std::vector<nlohmann::json>& events) {
        for (const auto& e : events)
            if (e.value("to", "") == "alarm") return e;
        return nlohmann::json();
    };
    ASSERT_TRUE(test::eventually([&] { return !alarm_of(hook.got()).is_null(); })) << "alarm not posted to the webhook";
    ASSERT_TRUE(test::eventually([&] {
        for (const auto& m : sub.on("firesight/cam/event"))
            if (nlohmann::json::parse(m.payload).value("to", "") == "alarm") return true;
        return false;
    })) << "alarm not published over MQTT";
    const auto alarm = alarm_of(hook.got());
    EXPECT_EQ(w.store().count(), stored_before) << "the disk was full, yet events were written";
    EXPECT_GT(metric(w.http_port(), "firesight_store_failures_total"), 0);
    EXPECT_GE(metric(w.http_port(), "firesight_events_held"), 2);
    // The dashboard still shows it, snapshot included (from memory).
    httplib::Client cli("127.0.0.1", w.http_port());
    auto snap = cli.Get(("/snapshots/" + alarm["snapshot"].get<std::string>()).c_str());
    ASSERT_TRUE(snap);
    EXPECT_EQ(snap->status, 200);

    fs::remove(data / "filler");
    const auto id = alarm["event_id"].get<std::int64_t>();
    ASSERT_TRUE(test::eventually([&] { return w.store().count() >= stored_before + 2; })) << "storing did not resume";
    const auto stored = w.store().get(id);
    ASSERT_TRUE(stored);
    EXPECT_EQ(stored->to, "alarm");
    EXPECT_FALSE(cv::imread((w.store().snapshot_dir() / stored->snapshot).string()).empty());
    EXPECT_EQ(metric(w.http_port(), "firesight_events_held"), 0);
    // Written as delivered: nothing is sent a second time.
    ASSERT_TRUE(test::eventually([&] { return w.store().pending_count("mqtt") == 0 && w.store().pending_count("webhook") == 0; }));
    add_frames("c", 40, false);  // the fire goes out: new events are stored as usual
    ASSERT_TRUE(test::eventually([&] {
        for (const auto& e : w.store().recent(50))
            if (e.to == "idle") return true;
        return false;
    }));
    ASSERT_TRUE(test::eventually([&] { return w.store().pending_count("webhook") == 0; }));
    w.stop();
    std::vector<std::int64_t> ids;
    for (const auto& e : hook.got()) ids.push_back(e["event_id"].get<std::int64_t>());
    EXPECT_EQ(ids, iota_ids(1, static_cast<std::int64_t>(ids.size()))) << "each event once, in order";
}
