// The web dashboard on cpp-httplib (see firesight/watch/watch.h): page, MJPEG live views, events,
// snapshots, /healthz and /metrics. Loopback by default; a token whenever one is configured.
#include <fcntl.h>
#include <httplib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <regex>
#include <thread>

#include "dashboard_page.h"
#include "firesight/common/error.h"
#include "firesight/common/fileio.h"
#include "firesight/watch/watch.h"

namespace firesight::watch {

namespace {

// Compares the whole expected token whatever the guess, so the time taken does not tell an
// attacker how many leading characters were right (it depends on the token's length only).
bool same_token(const std::string& given, const std::string& expected) {
    unsigned char diff = given.size() == expected.size() ? 0 : 1;
    for (std::size_t i = 0; i < expected.size(); ++i) diff |= static_cast<unsigned char>(expected[i] ^ (i < given.size() ? given[i] : 0));
    return diff == 0;
}

// A snapshot name as the store makes them: letters, digits, '_', '-', '.', ending .jpg, no "..",
// not hidden. Anything else (decoded traversal, NUL, backslash, slash) never reaches the disk.
bool plain_snapshot_name(const std::string& name) {
    if (name.size() < 5 || name.size() > 200 || name[0] == '.' || name.find("..") != std::string::npos) return false;
    for (char c : name)
        if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '-' && c != '.') return false;
    return name.compare(name.size() - 4, 4, ".jpg") == 0;
}

// Reads a regular file directly in `dir` without following a symlink (one planted in the
// snapshot folder must not serve files from elsewhere). nullopt when it is not that.
std::optional<std::string> read_plain_file(const std::filesystem::path& dir, const std::string& name) {
    const int fd = ::open((dir / name).c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) return std::nullopt;
    struct stat st {};
    std::optional<std::string> out;
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        std::string data(static_cast<std::size_t>(st.st_size), '\0');
        std::size_t got = 0;
        for (ssize_t n; got < data.size() && (n = ::read(fd, data.data() + got, data.size() - got)) > 0;) got += static_cast<std::size_t>(n);
        if (got == data.size()) out = std::move(data);
    }
    ::close(fd);
    return out;
}

void json_error(httplib::Response& res, int status, const std::string& what) {
    res.status = status;
    res.set_content(nlohmann::json{{"error", what}}.dump(), "application/json");
}

}  // namespace

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
        if (req.has_param("token") && same_token(req.get_param_value("token"), config.token)) return true;
        const std::string auth = req.get_header_value("Authorization");
        return auth.rfind("Bearer ", 0) == 0 && same_token(auth.substr(7), config.token);
    }

    std::filesystem::path feedback_dir() const { return config.feedback_dir.empty() ? store.dir() / "feedback" : config.feedback_dir; }

    void routes() {
        // Bounds for hostile clients: bodies are small JSON, nothing else is uploaded.
        server.set_payload_max_length(64 * 1024);
        server.set_read_timeout(10, 0);
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
        server.Get(R"(/snapshots/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
            const std::string name = req.matches[1];
            if (!plain_snapshot_name(name)) return json_error(res, 400, "not a snapshot name");
            auto jpeg = read_plain_file(store.snapshot_dir(), name);
            if (!jpeg) jpeg = store.held_snapshot(name);  // a full disk holds it in memory
            if (!jpeg) return json_error(res, 404, "no such snapshot");
            res.set_content(std::move(*jpeg), "image/jpeg");
        });
        server.Post(R"(/api/events/(\d{1,18})/feedback)", [this](const httplib::Request& req, httplib::Response& res) {
            // JSON only: a plain HTML form on another site cannot send it without the browser
            // asking first, so a page the operator visits cannot file verdicts for them.
            if (req.get_header_value("Content-Type").rfind("application/json", 0) != 0)
                return json_error(res, 415, "send {\"verdict\": \"false_alarm\" | \"confirmed\"} as application/json");
            const auto body = nlohmann::json::parse(req.body, nullptr, false);
            if (!body.is_object() || !body.contains("verdict") || !body["verdict"].is_string())
                return json_error(res, 400, "expected {\"verdict\": \"false_alarm\" | \"confirmed\"}");
            try {
                const auto r = record_feedback(store, feedback_dir(), std::stoll(req.matches[1]), body["verdict"].get<std::string>());
                nlohmann::json j{{"id", std::stoll(req.matches[1])}, {"verdict", r.verdict}, {"label", r.label}, {"files", nlohmann::json::array()}};
                for (const auto& f : r.files) j["files"].push_back(f.string());
                res.set_content(j.dump(), "application/json");
            } catch (const FeedbackError& e) {
                json_error(res, e.status, e.what());
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
