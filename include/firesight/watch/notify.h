// Notification sinks (MQTT through libmosquitto, HTTP webhook) and the dispatcher that drains an
// EventStore outbox into one sink: in order, retrying with back-off, marking each event delivered.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "firesight/watch/events.h"

struct mosquitto;

namespace firesight::watch {

class Sink {
public:
    virtual ~Sink() = default;
    virtual std::string name() const = 0;
    // True once the receiver has acknowledged the event; false (with a reason) to retry later.
    virtual bool deliver(const Event& e, std::string& error) = 0;
};

struct MqttConfig {
    std::string host = "127.0.0.1";
    int port = 1883;
    std::string client_id = "firesight";
    std::string topic_prefix = "firesight";
    std::string discovery_prefix = "homeassistant";  // "" disables Home Assistant discovery
    std::string username, password;
    int keepalive_s = 10;
    double ack_timeout_s = 5;
    bool operator==(const MqttConfig&) const = default;
};
// "host:port" or "host" (port 1883). Throws Error on a bad port.
MqttConfig parse_mqtt_arg(const std::string& arg);

// Publishes firesight/<source>/event (QoS 1) for every event and firesight/<source>/state
// (QoS 1, retained) for state changes; on every (re)connect the Home Assistant discovery config
// of each source (retained). Reconnects by itself in libmosquitto's network thread.
class MqttSink : public Sink {
public:
    MqttSink(MqttConfig config, std::vector<std::string> sources);
    ~MqttSink() override;
    std::string name() const override { return "mqtt"; }
    bool deliver(const Event& e, std::string& error) override;
    bool connected() const { return connected_; }

private:
    void on_connect(int rc);
    void on_disconnect();
    void on_publish(int mid);
    bool wait_connected(double seconds);
    MqttConfig config_;
    std::vector<std::string> sources_;
    mosquitto* mosq_ = nullptr;
    std::atomic<bool> connected_{false};
    std::mutex mu_;
    std::condition_variable cv_;
    std::set<int> acked_;
    std::int64_t in_flight_event_ = -1;  // event published but not yet acknowledged
    int in_flight_mid_ = -1;
};

class WebhookSink : public Sink {
public:
    explicit WebhookSink(std::string url);  // http://host[:port]/path or https://...
    std::string name() const override { return "webhook"; }
    bool deliver(const Event& e, std::string& error) override;

private:
    std::string base_, path_;
};

// Drains one sink's outbox on its own thread; wake() after an append avoids waiting for the poll.
class Dispatcher {
public:
    Dispatcher(EventStore& store, Sink& sink, double max_backoff_s = 5.0);
    ~Dispatcher();
    void start();
    void stop();
    void wake();
    std::int64_t delivered() const { return delivered_; }

private:
    void loop();
    EventStore& store_;
    Sink& sink_;
    double max_backoff_s_;
    std::thread thread_;
    std::mutex mu_;
    std::condition_variable cv_;
    bool stop_ = false, woken_ = false;
    std::atomic<std::int64_t> delivered_{0};
};

}  // namespace firesight::watch
