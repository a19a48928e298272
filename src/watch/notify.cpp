// MQTT and webhook sinks and the outbox dispatcher (see firesight/watch/notify.h).
#include "firesight/watch/notify.h"

#include <mosquitto.h>

#include <chrono>
#include <cstdio>

#include <httplib.h>

#include "firesight/common/error.h"

namespace firesight::watch {

MqttConfig parse_mqtt_arg(const std::string& arg) {
    MqttConfig c;
    const auto colon = arg.rfind(':');
    c.host = colon == std::string::npos ? arg : arg.substr(0, colon);
    if (c.host.empty()) c.host = "127.0.0.1";
    if (colon != std::string::npos) {
        try {
            std::size_t used = 0;
            c.port = std::stoi(arg.substr(colon + 1), &used);
            if (used != arg.size() - colon - 1) throw std::invalid_argument("trailing");
        } catch (const std::exception&) {
            throw Error("--mqtt " + arg + ": bad port (expected host:port)");
        }
        if (c.port < 1 || c.port > 65535) throw Error("--mqtt " + arg + ": port out of range");
    }
    return c;
}

namespace {

struct MosquittoLib {
    MosquittoLib() { mosquitto_lib_init(); }
};

void ensure_lib() { static MosquittoLib lib; }

}  // namespace

MqttSink::MqttSink(MqttConfig config, std::vector<std::string> sources) : config_(std::move(config)), sources_(std::move(sources)) {
    ensure_lib();
    mosq_ = mosquitto_new(config_.client_id.c_str(), true, this);
    if (!mosq_) throw Error("mqtt: cannot create a client");
    if (!config_.username.empty())
        mosquitto_username_pw_set(mosq_, config_.username.c_str(), config_.password.empty() ? nullptr : config_.password.c_str());
    mosquitto_connect_callback_set(mosq_, [](mosquitto*, void* self, int rc) { static_cast<MqttSink*>(self)->on_connect(rc); });
    mosquitto_disconnect_callback_set(mosq_, [](mosquitto*, void* self, int) { static_cast<MqttSink*>(self)->on_disconnect(); });
    mosquitto_publish_callback_set(mosq_, [](mosquitto*, void* self, int mid) { static_cast<MqttSink*>(self)->on_publish(mid); });
    mosquitto_reconnect_delay_set(mosq_, 1, 5, false);
    // connect_async fails at once only on bad arguments; an absent broker is retried by the loop.
    const int rc = mosquitto_connect_async(mosq_, config_.host.c_str(), config_.port, config_.keepalive_s);
    if (rc != MOSQ_ERR_SUCCESS && rc != MOSQ_ERR_ERRNO)
        throw Error("mqtt " + config_.host + ":" + std::to_string(config_.port) + ": " + mosquitto_strerror(rc));
    if (mosquitto_loop_start(mosq_) != MOSQ_ERR_SUCCESS) throw Error("mqtt: cannot start the network thread");
    if (rc == MOSQ_ERR_ERRNO) mosquitto_reconnect_async(mosq_);
}

MqttSink::~MqttSink() {
    mosquitto_disconnect(mosq_);
    mosquitto_loop_stop(mosq_, true);
    mosquitto_destroy(mosq_);
}

void MqttSink::on_connect(int rc) {
    if (rc != 0) return;
    // Home Assistant discovery: one binary sensor per source, on whenever the source is in alarm.
    if (!config_.discovery_prefix.empty()) {
        for (const auto& s : sources_) {
            nlohmann::json cfg{{"name", "firesight " + s},
                               {"unique_id", "firesight_" + s},
                               {"state_topic", config_.topic_prefix + "/" + s + "/state"},
                               {"value_template", "{{ 'ON' if value_json.state == 'alarm' else 'OFF' }}"},
                               {"device_class", "smoke"},
                               {"json_attributes_topic", config_.topic_prefix + "/" + s + "/state"},
                               {"device", {{"identifiers", {"firesight"}}, {"name", "firesight"}}}};
            const auto topic = config_.discovery_prefix + "/binary_sensor/firesight_" + s + "/config";
            const auto payload = cfg.dump();
            mosquitto_publish(mosq_, nullptr, topic.c_str(), static_cast<int>(payload.size()), payload.data(), 1, true);
        }
    }
    {
        std::lock_guard lk(mu_);
        connected_ = true;
    }
    cv_.notify_all();
}

void MqttSink::on_disconnect() {
    {
        std::lock_guard lk(mu_);
        connected_ = false;
    }
    cv_.notify_all();
}

void MqttSink::on_publish(int mid) {
    {
        std::lock_guard lk(mu_);
        acked_.insert(mid);
    }
    cv_.notify_all();
}

bool MqttSink::wait_connected(double seconds) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, std::chrono::duration<double>(seconds), [&] { return connected_.load(); });
}

bool MqttSink::deliver(const Event& e, std::string& error) {
    if (!wait_connected(2.0)) {
        error = "not connected to " + config_.host + ":" + std::to_string(config_.port);
        return false;
    }
    // Publish an event once per process: after a reconnect libmosquitto itself resends what was
    // in flight, and publishing again here would deliver it twice.
    if (in_flight_event_ != e.id) {
        const auto payload = e.to_json().dump();
        if (e.kind == "state") {
            nlohmann::json st{{"state", e.to}, {"class", e.cls}, {"score", e.score}, {"time_ms", e.time_ms}, {"event_id", e.id}};
            const auto sp = st.dump();
            const auto topic = config_.topic_prefix + "/" + e.source + "/state";
            mosquitto_publish(mosq_, nullptr, topic.c_str(), static_cast<int>(sp.size()), sp.data(), 1, true);
        }
        const auto topic = config_.topic_prefix + "/" + e.source + "/event";
        int mid = 0;
        const int rc = mosquitto_publish(mosq_, &mid, topic.c_str(), static_cast<int>(payload.size()), payload.data(), 1, false);
        if (rc != MOSQ_ERR_SUCCESS) {
            error = std::string("publish: ") + mosquitto_strerror(rc);
            return false;
        }
        std::lock_guard lk(mu_);
        in_flight_event_ = e.id;
        in_flight_mid_ = mid;
    }
    std::unique_lock lk(mu_);
    const bool acked = cv_.wait_for(lk, std::chrono::duration<double>(config_.ack_timeout_s), [&] { return acked_.count(in_flight_mid_) > 0; });
    if (acked) {
        acked_.clear();  // also drops the state messages acknowledged meanwhile
        in_flight_event_ = -1;
        in_flight_mid_ = -1;
        return true;
    }
    if (connected_) {
        // Connected and still no acknowledgement: the library dropped it; publish again next time.
        in_flight_event_ = -1;
        error = "no acknowledgement from the broker";
    } else {
        error = "broker went away before acknowledging";
    }
    return false;
}

WebhookSink::WebhookSink(std::string url) {
    const auto scheme = url.find("://");
    if (scheme == std::string::npos || (url.rfind("http://", 0) != 0 && url.rfind("https://", 0) != 0))
        throw Error("--webhook " + url + ": expected an http:// or https:// URL");
    const auto slash = url.find('/', scheme + 3);
    base_ = slash == std::string::npos ? url : url.substr(0, slash);
    path_ = slash == std::string::npos ? "/" : url.substr(slash);
    if (base_.size() <= scheme + 3) throw Error("--webhook " + url + ": no host");
}

bool WebhookSink::deliver(const Event& e, std::string& error) {
    httplib::Client cli(base_);
    cli.set_connection_timeout(3, 0);
    cli.set_read_timeout(5, 0);
    cli.set_write_timeout(5, 0);
    auto res = cli.Post(path_.c_str(), e.to_json().dump(), "application/json");
    if (!res) {
        error = "webhook " + base_ + path_ + ": " + httplib::to_string(res.error());
        return false;
    }
    if (res->status < 200 || res->status >= 300) {
        error = "webhook " + base_ + path_ + ": HTTP " + std::to_string(res->status);
        return false;
    }
    return true;
}

Dispatcher::Dispatcher(EventStore& store, Sink& sink, double max_backoff_s) : store_(store), sink_(sink), max_backoff_s_(max_backoff_s) {}

Dispatcher::~Dispatcher() { stop(); }

void Dispatcher::start() {
    if (thread_.joinable()) return;
    stop_ = false;
    thread_ = std::thread([this] { loop(); });
}

void Dispatcher::stop() {
    {
        std::lock_guard lk(mu_);
        stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

void Dispatcher::wake() {
    {
        std::lock_guard lk(mu_);
        woken_ = true;
    }
    cv_.notify_all();
}

void Dispatcher::loop() {
    double backoff = 0.2;
    std::int64_t last_failed = -1;
    for (;;) {
        {
            std::lock_guard lk(mu_);
            if (stop_) return;
            woken_ = false;
        }
        std::optional<EventStore::Pending> p;
        try {
            p = store_.next_pending(sink_.name());
        } catch (const Error& e) {
            std::fprintf(stderr, "firesight: %s: %s\n", sink_.name().c_str(), e.what());
        }
        if (!p) {
            std::unique_lock lk(mu_);
            cv_.wait_for(lk, std::chrono::seconds(1), [&] { return stop_ || woken_; });
            continue;
        }
        std::string error;
        if (sink_.deliver(p->event, error)) {
            store_.mark_delivered(sink_.name(), p->event.id);
            ++delivered_;
            backoff = 0.2;
            last_failed = -1;
            continue;
        }
        store_.mark_failed(p->outbox_id, error);
        if (last_failed != p->outbox_id)
            std::fprintf(stderr, "firesight: %s: event %lld queued: %s\n", sink_.name().c_str(), static_cast<long long>(p->event.id),
                         error.c_str());
        last_failed = p->outbox_id;
        std::unique_lock lk(mu_);
        cv_.wait_for(lk, std::chrono::duration<double>(backoff), [&] { return stop_; });
        backoff = std::min(backoff * 2, max_backoff_s_);
    }
}

}  // namespace firesight::watch
