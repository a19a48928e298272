// firesight bench-watch: frames per second per source and frame-to-MQTT latency of the watcher
// with 1, 2 and 4 sources sharing one model, on this machine. Starts its own mosquitto on a free
// loopback port unless --mqtt names a broker.
#include <arpa/inet.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "commands.h"
#include "firesight/data/classifier.h"
#include "open_classifier.h"
#include "firesight/common/error.h"
#include "firesight/watch/watch.h"

extern char** environ;

namespace firesight::cli {

namespace {

namespace fs = std::filesystem;

struct BenchWatchOptions {
    std::string model, labels, input, mqtt, sources = "1,2,4";
    std::vector<std::string> alarm_classes;
    double seconds = 10, fps = 0;
};

std::int64_t now_ms() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

int free_port() {
    const int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(s, reinterpret_cast<sockaddr*>(&a), sizeof a);
    socklen_t len = sizeof a;
    ::getsockname(s, reinterpret_cast<sockaddr*>(&a), &len);
    ::close(s);
    return ntohs(a.sin_port);
}

// Collects event messages and how long after its frame each arrived.
struct LatencyProbe {
    mosquitto* m = nullptr;
    std::mutex mu;
    std::vector<double> latencies_ms;
    LatencyProbe(const std::string& host, int port) {
        mosquitto_lib_init();
        m = mosquitto_new(nullptr, true, this);
        mosquitto_connect_callback_set(m, [](mosquitto* c, void*, int rc) {
            if (rc == 0) mosquitto_subscribe(c, nullptr, "firesight/+/event", 1);
        });
        mosquitto_message_callback_set(m, [](mosquitto*, void* self, const mosquitto_message* msg) {
            const auto now = now_ms();
            auto j = nlohmann::json::parse(std::string(static_cast<const char*>(msg->payload), static_cast<std::size_t>(msg->payloadlen)),
                                           nullptr, false);
            if (j.is_discarded() || j.value("kind", "") != "state" || j.value("frame_wall_ms", 0LL) <= 0) return;
            auto* p = static_cast<LatencyProbe*>(self);
            std::lock_guard lk(p->mu);
            p->latencies_ms.push_back(static_cast<double>(now - j["frame_wall_ms"].get<std::int64_t>()));
        });
        mosquitto_connect_async(m, host.c_str(), port, 10);
        mosquitto_loop_start(m);
    }
    ~LatencyProbe() {
        mosquitto_disconnect(m);
        mosquitto_loop_stop(m, true);
        mosquitto_destroy(m);
    }
    std::vector<double> take() {
        std::lock_guard lk(mu);
        return std::exchange(latencies_ms, {});
    }
};

double percentile(std::vector<double> v, double q) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1) + 0.5)];
}

// A clip that alternates two seconds of neutral scene and two of an orange flicker, so a model
// that knows fire produces state changes (and so MQTT messages) to time.
void write_clip(const fs::path& path) {
    cv::VideoWriter w(path.string(), cv::VideoWriter::fourcc('M', 'J', 'P', 'G'), 10, {320, 240});
    if (!w.isOpened()) throw Error(path.string() + ": cannot write");
    for (int i = 0; i < 200; ++i) {
        cv::Mat f(240, 320, CV_8UC3, cv::Scalar(90, 110, 80));
        for (int y = 0; y < 240; y += 8) cv::line(f, {0, y}, {320, y}, cv::Scalar(70 + (y * 7 + i) % 30, 100, 70), 1);
        if ((i / 20) % 2 == 1)
            cv::ellipse(f, {160, 150}, {70 + i % 4 * 6, 60 + i % 3 * 8}, 0, 0, 360, cv::Scalar(20, 110 + i % 5 * 15, 240), cv::FILLED);
        w.write(f);
    }
}

int run_bench_watch(const BenchWatchOptions& o) {
    auto clf = open_classifier(o.model, o.labels);
    std::random_device rd;
    const fs::path tmp = fs::temp_directory_path() / ("firesight-bench-watch-" + std::to_string(rd()));
    fs::create_directories(tmp);
    std::string input = o.input;
    if (input.empty()) {
        input = (tmp / "clip.avi").string();
        write_clip(input);
    }
    std::string host = "127.0.0.1";
    int port = 0;
    pid_t broker = -1;
    if (o.mqtt.empty()) {
        const char* exe = ::access("/usr/sbin/mosquitto", X_OK) == 0 ? "/usr/sbin/mosquitto" : "/usr/bin/mosquitto";
        if (::access(exe, X_OK) != 0) throw Error("bench-watch: mosquitto not installed; give --mqtt host:port");
        port = free_port();
        const auto conf = (tmp / "mosquitto.conf").string();
        std::ofstream(conf) << "listener " << port << " 127.0.0.1\nallow_anonymous true\nlog_dest none\n";
        const char* argv[] = {exe, "-c", conf.c_str(), nullptr};
        if (::posix_spawn(&broker, exe, nullptr, nullptr, const_cast<char**>(argv), environ) != 0) throw Error("bench-watch: cannot start mosquitto");
        std::this_thread::sleep_for(std::chrono::milliseconds(500));
    } else {
        auto m = watch::parse_mqtt_arg(o.mqtt);
        host = m.host;
        port = m.port;
    }
    std::printf("model: %s\ninput: %s (looped, %s)\n\n", clf->describe().c_str(), input.c_str(),
                o.fps > 0 ? ("paced at " + std::to_string(o.fps) + " fps per source").c_str() : "as fast as the model allows");
    std::printf("%-8s %-12s %-12s %-14s %-8s %-18s %-18s\n", "sources", "fps/source", "fps total", "inference ms", "events",
                "latency p50 ms", "latency p95 ms");
    std::stringstream list(o.sources);
    std::string item;
    int rc = 0;
    while (std::getline(list, item, ',')) {
        const int n = std::stoi(item);
        if (n < 1 || n > 64) throw Error("--sources: counts must be between 1 and 64");
        watch::WatchConfig cfg;
        cfg.model = o.model;
        cfg.fps = o.fps;
        cfg.data_dir = tmp / ("data-" + std::to_string(n));
        if (!o.alarm_classes.empty()) cfg.decision.alarm_classes = o.alarm_classes;
        // Quick decisions so the clip's fire segments produce state changes to time.
        cfg.decision.k = 2;
        cfg.decision.n = 3;
        cfg.decision.clear_frames = 2;
        cfg.decision.min_alarm_seconds = 0;
        watch::MqttConfig mc;
        mc.host = host;
        mc.port = port;
        mc.client_id = "firesight-bench-" + std::to_string(n);
        mc.discovery_prefix.clear();
        cfg.mqtt = mc;
        for (int i = 0; i < n; ++i) {
            watch::SourceSpec s{"s" + std::to_string(i), input};
            s.loop = true;
            s.realtime = o.fps > 0;
            cfg.sources.push_back(s);
        }
        LatencyProbe probe(host, port);
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        watch::Watcher w(cfg, *clf);
        w.start();
        std::this_thread::sleep_for(std::chrono::duration<double>(o.seconds));
        const auto all = w.hub().all();
        std::this_thread::sleep_for(std::chrono::milliseconds(500));  // let the last messages land
        w.stop();
        std::int64_t frames = 0;
        double infer = 0;
        std::vector<double> per_source;
        for (const auto& s : all) {
            frames += s.frames;
            infer += s.inference_seconds_sum;
            per_source.push_back(static_cast<double>(s.frames) / o.seconds);
        }
        const auto lat = probe.take();
        std::printf("%-8d %-12.2f %-12.2f %-14.1f %-8zu %-18s %-18s\n", n, percentile(per_source, 0.5), static_cast<double>(frames) / o.seconds,
                    frames ? 1000.0 * infer / static_cast<double>(frames) : 0.0, lat.size(),
                    lat.empty() ? "-" : std::to_string(static_cast<int>(percentile(lat, 0.5))).c_str(),
                    lat.empty() ? "-" : std::to_string(static_cast<int>(percentile(lat, 0.95))).c_str());
        std::fflush(stdout);
        if (frames == 0) rc = 1;
    }
    std::printf("\nlatency: frame read -> event message received by an MQTT subscriber (QoS 1, loopback broker).\n");
    if (broker > 0) {
        ::kill(broker, SIGTERM);
        ::waitpid(broker, nullptr, 0);
    }
    std::error_code ec;
    fs::remove_all(tmp, ec);
    return rc;
}

void add_bench_watch(CLI::App& app) {
    auto o = std::make_shared<BenchWatchOptions>();
    auto* sub = app.add_subcommand("bench-watch", "Measure the watcher: fps per source and frame-to-MQTT latency with 1, 2, 4 sources");
    sub->add_option("--model,-m", o->model, "Model: .tflite, run folder, model.pt or engine file")->required();
    sub->add_option("--labels", o->labels, "Labels file for a .tflite model");
    sub->add_option("--input", o->input, "Video or image folder every source plays (default: a generated clip)");
    sub->add_option("--alarm-class", o->alarm_classes, "Alarm class(es) (default fire, smoke)");
    sub->add_option("--sources", o->sources, "Comma-separated source counts (default 1,2,4)");
    sub->add_option("--seconds", o->seconds, "Seconds per run (default 10)")->check(CLI::PositiveNumber);
    sub->add_option("--fps", o->fps, "Pace each source at this rate (default 0: as fast as possible)")->check(CLI::NonNegativeNumber);
    sub->add_option("--mqtt", o->mqtt, "Broker host:port (default: start a private mosquitto)");
    sub->callback([o]() {
        const int rc = run_bench_watch(*o);
        if (rc) throw CLI::RuntimeError(rc);
    });
}

}  // namespace

// The macro needs an identifier; this command name has a dash.
static CommandRegistrar firesight_command_bench_watch("bench-watch", 80, add_bench_watch);

}  // namespace firesight::cli
