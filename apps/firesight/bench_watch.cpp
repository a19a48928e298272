// firesight bench-watch: frames per second per source, backlog, frame-to-MQTT latency of the
// watcher's events and where each frame's time goes (decode, resize, inference, events, live view)
// with 1, 4 and 8 sources sharing one model, on this machine. Starts its own mosquitto on a free
// loopback port unless --mqtt names a broker. --clip-from makes a camera-sized clip of real fire,
// smoke and neutral photos so a fire/smoke model raises alarms (docs/watch-speed.md).
#include <arpa/inet.h>
#include <mosquitto.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <opencv2/core/utility.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstdio>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "commands.h"
#include "firesight/data/classifier.h"
#include "open_classifier.h"
#include "firesight/common/error.h"
#include "firesight/data/image.h"
#include "firesight/watch/watch.h"

extern char** environ;

namespace firesight::cli {

namespace {

namespace fs = std::filesystem;

struct BenchWatchOptions {
    std::string model, labels, input, mqtt, sources = "1,4,8";
    std::vector<std::string> alarm_classes;
    double seconds = 10, fps = 0, warmup = 2;
    bool http = false, stagger = false;
    // --clip-from: a clip made of a data root's photos (fire/, smoke/, neutral/ ...).
    std::string clip_from, clip_out, clip_size = "1920x1080", codec = "h264";
    double clip_fps = 5, segment_seconds = 6;
    int segments = 8;
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

// Times the model itself, so a frame's "inference" splits into resize/crop (the watcher's
// preprocessing) and the model.
class TimedClassifier : public Classifier {
public:
    explicit TimedClassifier(Classifier& inner) : inner_(inner) {}
    const std::vector<std::string>& class_names() const override { return inner_.class_names(); }
    const data::Preprocess& preprocessing() const override { return inner_.preprocessing(); }
    std::string describe() const override { return inner_.describe(); }
    std::vector<std::vector<float>> probabilities(const std::vector<cv::Mat>& inputs) override {
        const auto t0 = std::chrono::steady_clock::now();
        auto p = inner_.probabilities(inputs);
        model_ns_ += std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count();
        return p;
    }
    std::vector<Prediction> predict_with_maps(const std::vector<cv::Mat>& inputs) override { return inner_.predict_with_maps(inputs); }
    double model_seconds() const { return static_cast<double>(model_ns_.load()) * 1e-9; }

private:
    Classifier& inner_;
    std::atomic<std::int64_t> model_ns_{0};
};

cv::Size parse_size(const std::string& s) {
    int w = 0, h = 0;
    char x = 0;
    std::istringstream in(s);
    if (!(in >> w >> x >> h) || (x != 'x' && x != 'X') || w < 64 || h < 64 || w > 7680 || h > 4320)
        throw Error("--clip-size " + s + ": expected WIDTHxHEIGHT, e.g. 1920x1080");
    return {w, h};
}

// Photos of one class that the model calls that class with at least `min_prob`, in name order: a
// segment of the clip built from them changes the alarm state for sure, so there is latency to time.
std::vector<cv::Mat> confident_photos(Classifier& clf, const fs::path& dir, std::size_t cls, std::size_t want, double min_prob) {
    std::vector<fs::path> files;
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec))
        if (it->is_regular_file()) files.push_back(it->path());
    std::sort(files.begin(), files.end());
    std::vector<cv::Mat> out;
    for (const auto& f : files) {
        if (out.size() >= want) break;
        cv::Mat bgr;
        try {
            bgr = data::decode_image(f);
        } catch (const Error&) {
            continue;
        }
        if (bgr.cols < 200 || bgr.rows < 150) continue;
        const auto p = clf.classify(bgr);
        if (cls < p.size() && p[cls] >= min_prob) out.push_back(bgr);
    }
    return out;
}

// A camera-like clip: segments of `segment_seconds`, each one photo of the data root scaled to
// cover the frame with a slow pan (every frame differs, as a camera's do) and a little sensor
// noise, in the order neutral, fire, neutral, smoke, ... so each fire or smoke segment raises an
// alarm and the neutral one after it clears it.
void make_clip(Classifier& clf, const BenchWatchOptions& o, const fs::path& out) {
    const cv::Size size = parse_size(o.clip_size);
    const auto& names = clf.class_names();
    std::vector<std::string> alarm = o.alarm_classes.empty() ? std::vector<std::string>{"fire", "smoke"} : o.alarm_classes;
    auto index_of = [&](const std::string& n) { return static_cast<std::size_t>(std::find(names.begin(), names.end(), n) - names.begin()); };
    std::string calm;
    for (const auto& n : names)
        if (std::find(alarm.begin(), alarm.end(), n) == alarm.end() && fs::is_directory(fs::path(o.clip_from) / n)) calm = n;
    if (calm.empty()) throw Error("--clip-from " + o.clip_from + ": needs a folder of a class that is not an alarm class (e.g. neutral/)");
    std::vector<std::string> hot;
    for (const auto& a : alarm)
        if (index_of(a) < names.size() && fs::is_directory(fs::path(o.clip_from) / a)) hot.push_back(a);
    if (hot.empty()) throw Error("--clip-from " + o.clip_from + ": needs a folder of an alarm class the model knows (fire/, smoke/)");
    const std::size_t per = static_cast<std::size_t>(o.segments);
    std::map<std::string, std::vector<cv::Mat>> photos;
    for (const auto& c : hot) photos[c] = confident_photos(clf, fs::path(o.clip_from) / c, index_of(c), per, 0.8);
    photos[calm] = confident_photos(clf, fs::path(o.clip_from) / calm, index_of(calm), per, 0.8);
    for (const auto& [c, v] : photos)
        if (v.empty()) throw Error("--clip-from: no photo in " + c + "/ that the model calls " + c + " with 80% or more");
    const bool h264 = o.codec == "h264";
    const int fourcc = h264 ? cv::VideoWriter::fourcc('a', 'v', 'c', '1') : cv::VideoWriter::fourcc('M', 'J', 'P', 'G');
    cv::VideoWriter w(out.string(), fourcc, o.clip_fps, size);
    if (!w.isOpened()) throw Error(out.string() + ": cannot write a " + o.codec + " video here");
    const int frames_per_segment = std::max(1, static_cast<int>(std::lround(o.segment_seconds * o.clip_fps)));
    cv::RNG rng(42);
    cv::Mat noise(size, CV_8SC3);
    std::map<std::string, std::size_t> next;
    std::printf("clip: %s, %dx%d at %.3g fps, %d segments of %.3g s:", out.string().c_str(), size.width, size.height, o.clip_fps, o.segments,
                o.segment_seconds);
    for (int seg = 0; seg < o.segments; ++seg) {
        const std::string cls = seg % 2 == 0 ? calm : hot[static_cast<std::size_t>(seg / 2) % hot.size()];
        const auto& list = photos[cls];
        const cv::Mat& photo = list[next[cls]++ % list.size()];
        std::printf(" %s", cls.c_str());
        // Cover the frame with 12% to spare, then pan across the spare part.
        const double cover = 1.12 * std::max(static_cast<double>(size.width) / photo.cols, static_cast<double>(size.height) / photo.rows);
        cv::Mat big;
        cv::resize(photo, big, {static_cast<int>(photo.cols * cover + 0.5), static_cast<int>(photo.rows * cover + 0.5)}, 0, 0, cv::INTER_LINEAR);
        const int dx = big.cols - size.width, dy = big.rows - size.height;
        for (int i = 0; i < frames_per_segment; ++i) {
            const double a = frames_per_segment > 1 ? static_cast<double>(i) / (frames_per_segment - 1) : 0;
            cv::Mat frame = big(cv::Rect(static_cast<int>(a * dx), static_cast<int>(a * dy / 2), size.width, size.height)).clone();
            rng.fill(noise, cv::RNG::NORMAL, 0, 2.5);
            cv::add(frame, noise, frame, cv::noArray(), CV_8UC3);
            w.write(frame);
        }
    }
    std::printf("\n");
}

struct RunFigures {
    std::vector<watch::SourceStatus> at;
    double model_s = 0, cpu_s = 0;
    std::chrono::steady_clock::time_point when;
};

double cpu_seconds() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

double rss_mb_now() {
    std::ifstream in("/proc/self/statm");
    long pages = 0, resident = 0;
    in >> pages >> resident;
    return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE)) / 1048576.0;
}

double peak_rss_mb() {
    rusage u{};
    ::getrusage(RUSAGE_SELF, &u);
    return static_cast<double>(u.ru_maxrss) / 1024.0;
}

std::string load_text() {
    double l[3] = {0, 0, 0};
    if (::getloadavg(l, 3) < 1) return "?";
    char b[48];
    std::snprintf(b, sizeof b, "%.2f", l[0]);
    return b;
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
    TimedClassifier timed(*clf);
    std::random_device rd;
    const fs::path tmp = fs::temp_directory_path() / ("firesight-bench-watch-" + std::to_string(rd()));
    fs::create_directories(tmp);
    std::string input = o.input;
    if (input.empty() && !o.clip_from.empty()) {
        input = !o.clip_out.empty() ? o.clip_out : (tmp / (o.codec == "h264" ? "clip.mp4" : "clip.avi")).string();
        make_clip(*clf, o, input);
    } else if (input.empty()) {
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
    double clip_seconds = 0;
    {
        cv::VideoCapture probe_cap(input);
        if (probe_cap.get(cv::CAP_PROP_FPS) > 0) clip_seconds = probe_cap.get(cv::CAP_PROP_FRAME_COUNT) / probe_cap.get(cv::CAP_PROP_FPS);
        std::printf("model: %s\ninput: %s (%dx%d, %.3g fps, looped; %s)\nOpenCV threads %d, %s, dashboard %s\n", clf->describe().c_str(), input.c_str(),
                    static_cast<int>(probe_cap.get(cv::CAP_PROP_FRAME_WIDTH)), static_cast<int>(probe_cap.get(cv::CAP_PROP_FRAME_HEIGHT)),
                    probe_cap.get(cv::CAP_PROP_FPS),
                    o.fps > 0 ? ("each source processes " + std::to_string(o.fps).substr(0, 5) + " fps, paced as a camera").c_str()
                              : "as fast as the model allows",
                    cv::getNumThreads(), std::getenv("FIRESIGHT_THREADS") ? ("FIRESIGHT_THREADS=" + std::string(std::getenv("FIRESIGHT_THREADS"))).c_str() : "engine threads default",
                    o.http ? "on (live view encoded every frame)" : "off");
        std::printf("%u CPU cores; %.0f s per run after %.0f s of warm-up; sources %s\n\n", std::thread::hardware_concurrency(), o.seconds, o.warmup,
                    o.stagger ? "staggered through the clip" : "in step (all change state on the same frame)");
    }
    std::printf("%-7s %-9s %-9s %-6s %-8s %-8s %-7s %-8s | %-7s %-7s %-7s %-7s %-8s | %-5s %-6s %-7s %-7s %-5s\n", "sources", "fps/src", "fps min", "events", "p50 ms",
                "p90 ms", "lag p50", "lag max", "read", "resize", "model", "live", "event", "cores", "CPU/f", "RSS MB", "peak MB", "load");
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
        if (o.http) {
            watch::HttpConfig h;
            h.port = 0;
            cfg.http = h;
        }
        for (int i = 0; i < n; ++i) {
            watch::SourceSpec s{"s" + std::to_string(i), input};
            s.loop = true;
            s.realtime = o.fps > 0;
            // Staggered, the sources show the clip's scenes at different times, as separate cameras
            // would; otherwise every source changes state on the same frame (the worst case).
            if (o.stagger) s.start_s = clip_seconds * i / n;
            cfg.sources.push_back(s);
        }
        LatencyProbe probe(host, port);
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        watch::Watcher w(cfg, timed);
        auto snap = [&] { return RunFigures{w.hub().all(), timed.model_seconds(), cpu_seconds(), std::chrono::steady_clock::now()}; };
        w.start();
        std::this_thread::sleep_for(std::chrono::duration<double>(o.warmup));
        const auto a = snap();
        probe.take();  // events of the warm-up are not counted
        // Backlog: how far behind its due time each source reads, sampled through the run.
        std::vector<double> lag;
        const auto until = a.when + std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(o.seconds));
        while (std::chrono::steady_clock::now() < until) {
            std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(std::chrono::milliseconds(200), until - std::chrono::steady_clock::now()));
            for (const auto& s : w.hub().all()) lag.push_back(s.late_seconds_last);
        }
        const auto b = snap();
        const std::string load = load_text();
        std::this_thread::sleep_for(std::chrono::milliseconds(500));  // let the last messages land
        w.stop();
        const double dt = std::chrono::duration<double>(b.when - a.when).count();
        std::int64_t frames = 0, events = 0;
        double read = 0, infer = 0, live = 0, event = 0;
        std::vector<double> per_source;
        for (std::size_t i = 0; i < b.at.size(); ++i) {
            const auto &x = a.at[i], &y = b.at[i];
            frames += y.frames - x.frames;
            events += y.events - x.events;
            read += y.read_seconds_sum - x.read_seconds_sum;
            infer += y.inference_seconds_sum - x.inference_seconds_sum;
            live += y.live_seconds_sum - x.live_seconds_sum;
            event += y.event_seconds_sum - x.event_seconds_sum;
            per_source.push_back(static_cast<double>(y.frames - x.frames) / dt);
        }
        const double model = b.model_s - a.model_s;
        const auto lat = probe.take();
        const double nf = std::max<double>(1, static_cast<double>(frames));
        auto ms = [](double v) {
            char t[32];
            std::snprintf(t, sizeof t, "%.1f", v);
            return std::string(t);
        };
        std::printf("%-7d %-9.2f %-9.2f %-6zu %-8s %-8s %-7.0f %-8.0f | %-7.1f %-7.1f %-7.1f %-7.1f %-8s | %-5.2f %-6.1f %-7.0f %-7.0f %-5s\n", n, percentile(per_source, 0.5),
                    *std::min_element(per_source.begin(), per_source.end()), lat.size(), lat.empty() ? "-" : ms(percentile(lat, 0.5)).c_str(),
                    lat.empty() ? "-" : ms(percentile(lat, 0.9)).c_str(), 1000.0 * percentile(lag, 0.5),
                    lag.empty() ? 0.0 : 1000.0 * *std::max_element(lag.begin(), lag.end()), 1000.0 * read / nf, 1000.0 * (infer - model) / nf,
                    1000.0 * model / nf, 1000.0 * live / nf, events ? ms(1000.0 * event / static_cast<double>(events)).c_str() : "-", (b.cpu_s - a.cpu_s) / dt,
                    1000.0 * (b.cpu_s - a.cpu_s) / nf, rss_mb_now(), peak_rss_mb(), load.c_str());
        std::fflush(stdout);
        if (frames == 0) rc = 1;
    }
    std::printf("\nfps/src: median and slowest source's frames per second; events: state changes received over MQTT in the run;\n"
                "p50/p90: frame read -> event message received by an MQTT subscriber (QoS 1, loopback broker);\n"
                "lag: how far behind its due time a source read its frame (backlog; 0 = none), sampled every 0.2 s of the run;\n"
                "per frame, ms (means): read = grab + decode, resize = the watcher's resize/crop, model = the engine, live = overlay + JPEG of the\n"
                "dashboard's view; event = per state change: alarm snapshot with its activation map, JPEGs, SQLite, hand-off to MQTT;\n"
                "cores: CPU time of this process / wall time; CPU/f: its CPU ms per frame, events included (what load from others cannot inflate); RSS now and the process's peak; load: 1-minute load average at the end of the run.\n");
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
    auto* sub = app.add_subcommand("bench-watch", "Measure the watcher: fps per source, backlog, frame-to-MQTT latency and where a frame's time goes, with 1, 4, 8 sources");
    sub->add_option("--model,-m", o->model, "Model: .tflite, run folder, model.pt or engine file")->required();
    sub->add_option("--labels", o->labels, "Labels file for a .tflite model");
    sub->add_option("--input", o->input, "Video or image folder every source plays (default: --clip-from's clip, else a generated one)");
    sub->add_option("--clip-from", o->clip_from, "Data root (fire/, smoke/, neutral/): make the clip from photos the model classifies right");
    sub->add_option("--clip-out", o->clip_out, "Keep the clip made by --clip-from here (reuse it with --input)");
    sub->add_option("--clip-size", o->clip_size, "Clip frame size (default 1920x1080)");
    sub->add_option("--clip-fps", o->clip_fps, "Clip frame rate (default 5)")->check(CLI::PositiveNumber);
    sub->add_option("--clip-segments", o->segments, "Photos in the clip, neutral and alarm in turn (default 8)")->check(CLI::Range(2, 1000));
    sub->add_option("--segment-seconds", o->segment_seconds, "Seconds each photo is shown (default 6)")->check(CLI::PositiveNumber);
    sub->add_option("--codec", o->codec, "Clip codec: h264 (as IP cameras send) or mjpg (default h264)")->check(CLI::IsMember({"h264", "mjpg"}));
    sub->add_option("--alarm-class", o->alarm_classes, "Alarm class(es) (default fire, smoke)");
    sub->add_option("--sources", o->sources, "Comma-separated source counts (default 1,4,8)");
    sub->add_option("--seconds", o->seconds, "Seconds measured per run, after the warm-up (default 10)")->check(CLI::PositiveNumber);
    sub->add_option("--warmup", o->warmup, "Seconds before measuring (default 2)")->check(CLI::NonNegativeNumber);
    sub->add_option("--fps", o->fps, "Pace each source at this rate (default 0: as fast as possible)")->check(CLI::NonNegativeNumber);
    sub->add_flag("--stagger", o->stagger, "Start source i at i/n of the clip (separate cameras), not all in step");
    sub->add_flag("--http", o->http, "Run the dashboard too (its live view is encoded every frame)");
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
