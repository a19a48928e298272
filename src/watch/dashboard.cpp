// The web dashboard on cpp-httplib (see firesight/watch.h): page, MJPEG live views, events,
// snapshots, /healthz and /metrics. Loopback by default; a token whenever one is configured.
#include <httplib.h>

#include <atomic>
#include <regex>
#include <thread>

#include "dashboard_page.h"
#include "firesight/error.h"
#include "firesight/fileio.h"
#include "firesight/watch.h"

namespace firesight::watch {

struct Dashboard::Impl {
    HttpConfig config;
    LiveHub& hub;
    EventStore& store;
    std::function<std::string()> extra_metrics;
    httplib::Server server;
    std::thread thread;
    std::atomic<bool> stopping{false};

    Impl(HttpConfig c, LiveHub& h, EventStore& s, std::function<std::string()> m)
        : config(std::move(c)), hub(h), store(s), extra_metrics(std::move(m)) {}

    bool authorised(const httplib::Request& req) const {
        if (config.token.empty()) return true;
        if (req.has_param("token") && req.get_param_value("token") == config.token) return true;
        return req.get_header_value("Authorization") == "Bearer " + config.token;
    }

    void routes() {
        server.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
            // /healthz stays open so a supervisor can probe without the token; it reveals nothing.
            if (req.path == "/healthz" || authorised(req)) return httplib::Server::HandlerResponse::Unhandled;
            res.status = 401;
            res.set_content("token required: add ?token=... or an Authorization: Bearer header\n", "text/plain");
            return httplib::Server::HandlerResponse::Handled;
        });
        server.Get("/", [](const httplib::Request&, httplib::Response& res) { res.set_content(kDashboardPage, "text/html; charset=utf-8"); });
        server.Get("/api/state", [this](const httplib::Request&, httplib::Response& res) {
            nlohmann::json j{{"classes", hub.classes()}, {"sources", nlohmann::json::array()}};
            for (const auto& s : hub.all())
                j["sources"].push_back({{"name", s.name}, {"uri", s.uri}, {"kind", s.kind}, {"state", to_string(s.state)},
                                        {"up", s.up}, {"ended", s.ended}, {"frames", s.frames}, {"alarms", s.alarms},
                                        {"outages", s.outages}, {"probabilities", s.probabilities},
                                        {"last_frame_ms", s.last_frame_wall_ms}});
            res.set_content(j.dump(), "application/json");
        });
        server.Get("/api/events", [this](const httplib::Request& req, httplib::Response& res) {
            int limit = 50;
            if (req.has_param("limit")) limit = std::clamp(std::atoi(req.get_param_value("limit").c_str()), 1, 1000);
            nlohmann::json j = nlohmann::json::array();
            for (const auto& e : store.recent(limit, req.has_param("source") ? req.get_param_value("source") : "")) j.push_back(e.to_json());
            res.set_content(j.dump(), "application/json");
        });
        server.Get(R"(/snapshots/([A-Za-z0-9_.-]+\.jpg))", [this](const httplib::Request& req, httplib::Response& res) {
            const std::string name = req.matches[1];
            if (name.find("..") != std::string::npos) {
                res.status = 400;
                return;
            }
            try {
                res.set_content(read_file_text(store.snapshot_dir() / name), "image/jpeg");
            } catch (const Error&) {
                res.status = 404;
            }
        });
        server.Get(R"(/live/([A-Za-z0-9_-]+)\.jpg)", [this](const httplib::Request& req, httplib::Response& res) {
            try {
                auto s = hub.get(req.matches[1]);
                if (s.jpeg.empty()) {
                    res.status = 503;
                    res.set_content("no frame yet\n", "text/plain");
                    return;
                }
                res.set_header("Cache-Control", "no-store");
                res.set_content(std::string(s.jpeg.begin(), s.jpeg.end()), "image/jpeg");
            } catch (const std::out_of_range&) {
                res.status = 404;
            }
        });
        server.Get(R"(/stream/([A-Za-z0-9_-]+))", [this](const httplib::Request& req, httplib::Response& res) {
            const std::string name = req.matches[1];
            try {
                hub.get(name);
            } catch (const std::out_of_range&) {
                res.status = 404;
                return;
            }
            res.set_header("Cache-Control", "no-store");
            auto seq = std::make_shared<std::uint64_t>(0);
            res.set_chunked_content_provider("multipart/x-mixed-replace; boundary=firesightframe",
                                             [this, name, seq](std::size_t, httplib::DataSink& sink) {
                                                 if (stopping) return false;
                                                 std::vector<unsigned char> jpeg;
                                                 if (!hub.wait_jpeg(name, *seq, jpeg, 1.0)) return !stopping.load();
                                                 const std::string head = "--firesightframe\r\nContent-Type: image/jpeg\r\nContent-Length: " +
                                                                          std::to_string(jpeg.size()) + "\r\n\r\n";
                                                 if (!sink.write(head.data(), head.size())) return false;
                                                 if (!sink.write(reinterpret_cast<const char*>(jpeg.data()), jpeg.size())) return false;
                                                 return sink.write("\r\n", 2);
                                             });
        });
        server.Get("/healthz", [this](const httplib::Request&, httplib::Response& res) {
            nlohmann::json j{{"status", "ok"}, {"sources", nlohmann::json::object()}};
            bool ok = true;
            for (const auto& s : hub.all()) {
                j["sources"][s.name] = {{"up", s.up}, {"ended", s.ended}, {"state", to_string(s.state)}};
                if (!s.up && !s.ended) ok = false;
            }
            if (!ok) j["status"] = "degraded";
            res.status = ok ? 200 : 503;
            res.set_content(j.dump(), "application/json");
        });
        server.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
            res.set_content(extra_metrics ? extra_metrics() : std::string(), "text/plain; version=0.0.4");
        });
    }
};

Dashboard::Dashboard(HttpConfig config, LiveHub& hub, EventStore& store, std::function<std::string()> extra_metrics)
    : impl_(std::make_unique<Impl>(std::move(config), hub, store, std::move(extra_metrics))) {
    if (!is_loopback(impl_->config.host) && impl_->config.token.empty())
        throw Error("--http " + impl_->config.host + ": binding beyond loopback needs a token");
    impl_->routes();
}

Dashboard::~Dashboard() { stop(); }

int Dashboard::start() {
    auto& c = impl_->config;
    port_ = c.port == 0 ? impl_->server.bind_to_any_port(c.host) : (impl_->server.bind_to_port(c.host, c.port) ? c.port : -1);
    if (port_ <= 0) throw Error("--http " + c.host + ":" + std::to_string(c.port) + ": cannot bind (in use or not a local address)");
    impl_->thread = std::thread([this] { impl_->server.listen_after_bind(); });
    return port_;
}

void Dashboard::stop() {
    if (!impl_) return;
    impl_->stopping = true;
    impl_->server.stop();
    if (impl_->thread.joinable()) impl_->thread.join();
}

}  // namespace firesight::watch
