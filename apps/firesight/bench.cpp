// firesight bench: batch-1 latency of the engine (each backend) and, in the same run, of the peers
// on this machine (libtorch eager on the same weights, OpenCV DNN and ONNX Runtime on firesight's
// ONNX export), next to the compute floor. With --int8 an int8 engine of the same model runs too,
// and ONNX Runtime on its QDQ export; with --photos the exported models' classes are checked
// against the engine's. Each runtime is measured in its own forked process (ONNX Runtime in node),
// so load time and peak RSS are its own; every configuration's runs are split into interleaved
// rounds so that load from other processes hits them all alike.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <functional>
#include <random>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "firesight/common/blas_info.h"
#include "firesight/engine/session.h"
#include "firesight/model/engine_convert.h"
#include "firesight/engine/ir.h"
#include "firesight/builder/tflite_graph.h"
#include "firesight/engine/format.h"
#ifdef FIRESIGHT_HAVE_ONNX_EXPORT
#include <opencv2/core/utility.hpp>
#include <opencv2/dnn.hpp>

#include "firesight/builder/onnx_export.h"
#endif
#include "firesight/common/error.h"
#include "firesight/common/progress.h"
#include "firesight/data/image.h"
#include "firesight/model/mobilenet_v2.h"
#include "firesight/model/trained_model.h"

namespace firesight::cli {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

struct BenchOptions {
    std::string model;
    int runs = 200, warmup = 20, reference_runs = 10, rounds = 4;
    std::vector<int> threads;  // each runtime is measured at each of these (default 2; --peers: 1,2)
    std::string int8;          // an int8 engine of the same model
    std::string ort;           // folder where onnxruntime-node is installed (its node_modules/)
    std::string ort_script;    // bench/peers/ort_bench.js
    std::vector<std::string> photos;  // files or folders for the class check
    bool peers = false, json_out = false;
};

double ms_since(Clock::time_point t) { return std::chrono::duration<double, std::milli>(Clock::now() - t).count(); }

long status_kb(const char* key) {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line))
        if (line.rfind(key, 0) == 0) return std::atol(line.c_str() + std::strlen(key));
    return 0;
}

// Runs `measure` in a child process and returns what it reports (a JSON object).
json in_child(const std::function<json()>& measure) {
    int fds[2];
    if (::pipe(fds) != 0) throw Error("bench: pipe failed");
    std::fflush(nullptr);
    const pid_t pid = ::fork();
    if (pid < 0) throw Error("bench: fork failed");
    if (pid == 0) {
        ::close(fds[0]);
        json r;
        try {
            const double start_rss = static_cast<double>(status_kb("VmRSS:")) / 1024.0;
            r = measure();
            // A measurement in another process (node) reports its own memory.
            if (!r.contains("rss_before_mb")) r["rss_before_mb"] = start_rss;
            if (!r.contains("peak_rss_mb")) r["peak_rss_mb"] = static_cast<double>(status_kb("VmHWM:")) / 1024.0;
        } catch (const std::exception& e) {
            r = {{"error", e.what()}};
        }
        const std::string s = r.dump();
        std::size_t off = 0;
        while (off < s.size()) {
            const auto n = ::write(fds[1], s.data() + off, s.size() - off);
            if (n <= 0) break;
            off += static_cast<std::size_t>(n);
        }
        ::close(fds[1]);
        std::fflush(nullptr);
        ::_exit(0);
    }
    ::close(fds[1]);
    std::string s;
    char buf[4096];
    ssize_t n;
    while ((n = ::read(fds[0], buf, sizeof buf)) > 0) s.append(buf, static_cast<std::size_t>(n));
    ::close(fds[0]);
    int status = 0;
    ::waitpid(pid, &status, 0);
    auto r = json::parse(s, nullptr, false);
    if (r.is_discarded()) return {{"error", "measuring process died (status " + std::to_string(status) + ")"}};
    return r;
}

json summarize(std::vector<double> ms, double load_ms, double total_ms) {
    std::sort(ms.begin(), ms.end());
    auto pct = [&](double p) { return ms[std::min(ms.size() - 1, static_cast<std::size_t>(p * static_cast<double>(ms.size() - 1) + 0.5))]; };
    return {{"runs", ms.size()},     {"median_ms", pct(0.5)}, {"p90_ms", pct(0.9)}, {"p99_ms", pct(0.99)},
            {"load_ms", load_ms},    {"throughput_per_s", 1000.0 * static_cast<double>(ms.size()) / total_ms}};
}

template <class F>
json time_runs(int warmup, int runs, double load_ms, const std::string& label, F&& once) {
    for (int i = 0; i < warmup; ++i) once();
    std::vector<double> ms;
    ProgressBar bar(label, static_cast<std::size_t>(runs));
    const auto start = Clock::now();
    for (int i = 0; i < runs; ++i) {
        const auto t = Clock::now();
        once();
        ms.push_back(ms_since(t));
        bar.update(static_cast<std::size_t>(i + 1));
    }
    const double total = ms_since(start);
    bar.finish();
    return {{"samples", ms}, {"load_ms", load_ms}, {"total_ms", total}};
}

// Peak fp32 FMA lanes per cycle per core from the CPU flags (2 FMA units assumed), the clock, and
// how many int8 multiply-adds one fp32 FMA lane's width does (4 with VNNI's vpdpbusd, else 2).
struct ComputeRate {
    int lanes = 8;
    double mhz = 2500.0;
    int int8_per_lane = 2;
};
ComputeRate compute_rate() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    ComputeRate r;
    double mhz = 0;
    while (std::getline(in, line)) {
        if (line.rfind("flags", 0) == 0) {
            if (line.find(" avx512f") != std::string::npos) r.lanes = 32;
            else if (line.find(" fma") != std::string::npos) r.lanes = 16;
            if (line.find("vnni") != std::string::npos) r.int8_per_lane = 4;
        }
        if (line.rfind("cpu MHz", 0) == 0 && mhz == 0) mhz = std::atof(line.substr(line.find(':') + 1).c_str());
    }
    if (mhz > 0) r.mhz = mhz;
    return r;
}

struct TmpRemover {
    std::filesystem::path p;
    ~TmpRemover() {
        std::error_code e;
        if (!p.empty()) std::filesystem::remove(p, e);
    }
};

std::string shell_quote(const std::string& s) {
    std::string q = "'";
    for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return q + "'";
}

// Runs a command and parses the last line it printed as JSON.
json run_json_command(const std::string& command) {
    std::fflush(nullptr);
    FILE* p = ::popen(command.c_str(), "r");
    if (!p) throw Error("bench: cannot run " + command);
    std::string out;
    char buf[65536];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    const int status = ::pclose(p);
    while (!out.empty() && out.back() == '\n') out.pop_back();
    const auto nl = out.rfind('\n');
    auto r = json::parse(nl == std::string::npos ? out : out.substr(nl + 1), nullptr, false);
    if (r.is_discarded() || !r.is_object()) throw Error("bench: " + command + " exited with status " + std::to_string(status) + " and no JSON");
    if (r.contains("error")) throw Error("bench: " + r["error"].get<std::string>());
    return r;
}

// Writes floats to a file (raw, native byte order).
void write_floats(const std::filesystem::path& p, const std::vector<float>& v) {
    std::ofstream f(p, std::ios::binary);
    f.write(reinterpret_cast<const char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(float)));
    if (!f) throw Error(p.string() + ": cannot write");
}

// NHWC image(s) -> NCHW, as ONNX models and OpenCV blobs take them.
std::vector<float> to_nchw(const float* x, int count, int size) {
    const std::size_t hw = static_cast<std::size_t>(size) * static_cast<std::size_t>(size);
    std::vector<float> v(hw * 3 * static_cast<std::size_t>(count));
    for (std::size_t n = 0; n < static_cast<std::size_t>(count); ++n)
        for (std::size_t c = 0; c < 3; ++c)
            for (std::size_t i = 0; i < hw; ++i) v[(n * 3 + c) * hw + i] = x[(n * hw + i) * 3 + c];
    return v;
}

std::filesystem::path default_ort_script() {
    std::error_code ec;
    const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
    // build/apps/firesight/firesight -> <source>/bench/peers/ort_bench.js
    if (!ec) {
        const auto p = exe.parent_path().parent_path().parent_path().parent_path() / "bench" / "peers" / "ort_bench.js";
        if (std::filesystem::exists(p, ec)) return p;
    }
    return "bench/peers/ort_bench.js";
}

bool is_int8_graph(const engine::Graph& g) {
    for (const auto& t : g.tensors)
        if (t.dtype == engine::DType::I8) return true;
    return false;
}

std::size_t argmax(const std::vector<float>& v) { return static_cast<std::size_t>(std::max_element(v.begin(), v.end()) - v.begin()); }

void run_bench(BenchOptions o) {
    report_blas();  // libtorch is several times slower on the reference BLAS: say which one this is
    if (o.threads.empty()) o.threads = o.peers ? std::vector<int>{1, 2} : std::vector<int>{2};
    const std::filesystem::path in = o.model;
    std::error_code ec;
    if (!std::filesystem::exists(in, ec)) throw Error(o.model + ": no such file or directory");
    if (!o.int8.empty() && !std::filesystem::exists(o.int8, ec)) throw Error(o.int8 + ": no such file or directory");
    if (!o.ort.empty() && !std::filesystem::exists(std::filesystem::path(o.ort) / "node_modules" / "onnxruntime-node", ec))
        throw Error(o.ort + ": no node_modules/onnxruntime-node in it (npm install --ignore-scripts --prefix " + o.ort + " onnxruntime-node)");
    if (o.ort_script.empty()) o.ort_script = default_ort_script().string();
    if (!o.ort.empty() && !std::filesystem::exists(o.ort_script, ec)) throw Error(o.ort_script + ": no such file (--ort-script)");
    // The engine file to measure: the given .fse, or one built now into a temp file.
    std::filesystem::path fse = in;
    std::filesystem::path tmp;
    const bool have_torch_source = in.extension() != ".fse";
    const std::string stem = (std::filesystem::temp_directory_path() / ("firesight-bench-" + std::to_string(::getpid()))).string();
    if (have_torch_source) {
        tmp = stem + ".fse";
        engine::Graph g;
        if (in.extension() == ".tflite") {
            g = engine::graph_from_tflite_file(in);
        } else {
            g = model::trained_model_to_graph(model::load_trained_model(in));
        }
        engine::save_engine(g, tmp);
        fse = tmp;
    }
    TmpRemover remover{tmp};

    json report = {{"model", o.model}, {"threads", o.threads.size() == 1 ? json(o.threads[0]) : json(o.threads)}, {"batch", 1},
                   {"runtimes", json::array()}};
    if (!o.int8.empty()) report["int8_model"] = o.int8;
    const auto file_bytes = std::filesystem::file_size(fse);
    std::int64_t macs = 0;
    int size = 224;
    engine::Metadata metadata;
    {
        auto e = engine::Engine::load(fse);
        macs = e->macs();
        metadata = e->metadata();
        size = metadata.size;
    }
    if (!o.int8.empty()) {
        auto e = engine::Engine::load(o.int8);
        if (!is_int8_graph(e->graph())) throw Error(o.int8 + ": not an int8 engine (--int8)");
        if (e->metadata().size != size || e->macs() != macs)
            throw Error(o.int8 + ": not the same model as " + o.model + " (input size or MACs differ)");
    }
    const std::size_t per = static_cast<std::size_t>(size) * size * 3;
    std::vector<float> input(per);
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> dist(-1.f, 1.f);
    for (auto& v : input) v = dist(rng);
    const std::vector<float> input_nchw = to_nchw(input.data(), 1, size);

    // Every configuration is measured in `rounds` slices, interleaved, so a burst of load from
    // other processes lands on all of them rather than on whichever ran at that moment.
    struct Job {
        std::string name, precision, note;
        int threads = 1, runs = 0, warmup = 0;
        std::function<json(int runs, int warmup)> measure;
    };
    std::vector<Job> jobs;
    report["peers_not_measured"] = json::array();
    auto engine_job = [&](const std::filesystem::path& file, engine::Backend backend, const std::string& precision, int threads) {
        const bool ref = backend == engine::Backend::Reference;
        const std::string name = std::string("firesight-") + engine::backend_name(backend);
        jobs.push_back({name, precision, ref ? "single-threaded oracle, fewer runs" : "", ref ? 1 : threads, ref ? o.reference_runs : o.runs,
                        ref ? 1 : o.warmup, [&, file, backend, ref, name, threads](int runs, int warmup) {
                            const auto t0 = Clock::now();
                            auto e = engine::Engine::load(file);
                            engine::Session s(e, {backend, ref ? 1 : threads});
                            s.prepare(1);  // buffers planned, weights packed: ready to serve
                            const double load = ms_since(t0);
                            const auto t1 = Clock::now();
                            s.run(input);
                            const double first = ms_since(t1);
                            auto r = time_runs(warmup, runs, load, name, [&] { s.run(input); });
                            r["first_run_ms"] = first;
                            return r;
                        }});
    };
#ifdef FIRESIGHT_HAVE_ONNX_EXPORT
    const std::filesystem::path onnx = stem + ".onnx", onnx_int8 = stem + "-int8.onnx", onnx_u8 = stem + "-int8-u8.onnx",
                                input_file = stem + "-input.f32";
    TmpRemover onnx_remover{onnx}, onnx_int8_remover{onnx_int8}, onnx_u8_remover{onnx_u8}, input_remover{input_file};
    engine::save_onnx(engine::load_graph(fse), onnx);
    if (!o.int8.empty()) {
        engine::save_onnx(engine::load_graph(o.int8), onnx_int8);
        engine::save_onnx(engine::load_graph(o.int8), onnx_u8, {true});
    }
    if (!o.ort.empty()) write_floats(input_file, input_nchw);
    auto opencv_job = [&](const std::filesystem::path& file, const std::string& precision, int threads) {
        jobs.push_back({"opencv-dnn (onnx)", precision, "", threads, o.runs, o.warmup, [&, file, threads](int runs, int warmup) {
                            cv::setNumThreads(threads);
                            const auto t0 = Clock::now();
                            cv::dnn::Net net = cv::dnn::readNetFromONNX(file.string());
                            const int dims[4] = {1, 3, size, size};
                            cv::Mat blob(4, dims, CV_32F);
                            std::copy(input_nchw.begin(), input_nchw.end(), blob.ptr<float>());
                            const double load = ms_since(t0);
                            const auto t1 = Clock::now();
                            net.setInput(blob);
                            net.forward();  // OpenCV fuses layers and allocates on its first run
                            const double first = ms_since(t1);
                            auto res = time_runs(warmup, runs, load, "opencv-dnn", [&] {
                                net.setInput(blob);
                                net.forward();
                            });
                            res["first_run_ms"] = first;
                            return res;
                        }});
    };
    const std::string node = "NODE_PATH=" + shell_quote((std::filesystem::path(o.ort) / "node_modules").string()) + " node " + shell_quote(o.ort_script);
    auto ort_job = [&](const std::filesystem::path& file, const std::string& precision, const std::string& note, int threads) {
        jobs.push_back({"onnxruntime (node)", precision, note, threads, o.runs,
                        o.warmup, [&, file, threads](int runs, int warmup) {
                            return run_json_command(node + " time " + shell_quote(file.string()) + " " + std::to_string(threads) + " " +
                                                    shell_quote(input_file.string()) + " " + std::to_string(runs) + " " + std::to_string(warmup));
                        }});
    };
#endif
    for (int threads : o.threads) {
        if (engine::backend_available(engine::Backend::Xnnpack)) engine_job(fse, engine::Backend::Xnnpack, "fp32", threads);
        // The same engine with its large inverted-residual blocks fused (issue 14, section 3).
        if (engine::backend_available(engine::Backend::XnnpackFused)) engine_job(fse, engine::Backend::XnnpackFused, "fp32", threads);
        if (!o.int8.empty()) {
            if (engine::backend_available(engine::Backend::NativeInt8)) engine_job(o.int8, engine::Backend::NativeInt8, "int8", threads);
            if (engine::backend_available(engine::Backend::Xnnpack)) engine_job(o.int8, engine::Backend::Xnnpack, "int8", threads);
        }
        if (have_torch_source) {
            jobs.push_back({"libtorch-eager", "fp32", "", threads, o.runs, o.warmup, [&, threads](int runs, int warmup) {
                                torch::set_num_threads(threads);
                                const auto t0 = Clock::now();
                                model::MobileNetV2 net{nullptr};
                                if (in.extension() == ".tflite") {
                                    net = model::import_mobilenet_v2(in).net;
                                } else {
                                    net = model::load_trained_model(in).net;
                                }
                                net->eval();
                                auto x = torch::from_blob(input.data(), {1, size, size, 3}).permute({0, 3, 1, 2}).contiguous();
                                torch::InferenceMode guard;
                                const double load = ms_since(t0);
                                const auto t1 = Clock::now();
                                net->forward(x);
                                const double first = ms_since(t1);
                                auto r = time_runs(warmup, runs, load, "libtorch-eager", [&] { net->forward(x); });
                                r["first_run_ms"] = first;
                                return r;
                            }});
        }
#ifdef FIRESIGHT_HAVE_ONNX_EXPORT
        opencv_job(onnx, "fp32", threads);
        if (!o.ort.empty()) {
            ort_job(onnx, "fp32", "", threads);
            if (!o.int8.empty()) {
                ort_job(onnx_int8, "int8", "QDQ export, int8 activations", threads);
                ort_job(onnx_u8, "int8", "QDQ export, uint8 activations", threads);
            }
        }
#endif
    }
    // The oracle once, at one thread (it is too slow to matter next to the others).
    if (!o.peers && engine::backend_available(engine::Backend::Reference)) engine_job(fse, engine::Backend::Reference, "fp32", 1);
#ifdef FIRESIGHT_HAVE_ONNX_EXPORT
    if (o.ort.empty()) report["peers_not_measured"].push_back("onnxruntime (give --ort DIR, where npm installed onnxruntime-node)");
#else
    report["peers_not_measured"].push_back("opencv-dnn and onnxruntime (this firesight was built without ONNX export)");
#endif
    struct Acc {
        std::vector<double> samples, loads, firsts, round_medians;
        double total_ms = 0, peak = 0, before = 1e300;
        std::string error, version;
    };
    auto median_of = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        return v.empty() ? 0.0 : v[v.size() / 2];
    };
    std::vector<Acc> acc(jobs.size());
    for (int round = 0; round < o.rounds; ++round)
        for (std::size_t j = 0; j < jobs.size(); ++j) {
            if (!acc[j].error.empty()) continue;
            const int share = std::max(1, jobs[j].runs / o.rounds + (round < jobs[j].runs % o.rounds ? 1 : 0));
            auto r = in_child([&] { return jobs[j].measure(share, jobs[j].warmup); });
            if (r.contains("error")) {
                acc[j].error = r["error"].get<std::string>();
                continue;
            }
            std::vector<double> mine;
            for (const auto& v : r["samples"]) mine.push_back(v.get<double>());
            acc[j].samples.insert(acc[j].samples.end(), mine.begin(), mine.end());
            acc[j].round_medians.push_back(median_of(mine));
            acc[j].loads.push_back(r["load_ms"].get<double>());
            acc[j].firsts.push_back(r["first_run_ms"].get<double>());
            acc[j].total_ms += r["total_ms"].get<double>();
            acc[j].peak = std::max(acc[j].peak, r["peak_rss_mb"].get<double>());
            acc[j].before = std::min(acc[j].before, r["rss_before_mb"].get<double>());
            if (r.contains("version") && r["version"].is_string()) acc[j].version = r["version"].get<std::string>();
        }

    const auto rate = compute_rate();
    auto floor_ms = [&](int threads, const std::string& precision) {
        const double per_s = static_cast<double>(threads) * rate.lanes * (precision == "int8" ? rate.int8_per_lane : 1) * rate.mhz * 1e6;
        return static_cast<double>(macs) / per_s * 1e3;
    };
    for (std::size_t j = 0; j < jobs.size(); ++j) {
        json r;
        if (!acc[j].error.empty() || acc[j].samples.empty()) {
            r = {{"error", acc[j].error.empty() ? "no samples" : acc[j].error}};
        } else {
            r = summarize(acc[j].samples, median_of(acc[j].loads), acc[j].total_ms);
            r["first_run_ms"] = median_of(acc[j].firsts);
            r["peak_rss_mb"] = acc[j].peak;
            r["rss_before_mb"] = acc[j].before;
            r["round_medians_ms"] = acc[j].round_medians;
            r["floor_share"] = floor_ms(jobs[j].threads, jobs[j].precision) / r["median_ms"].get<double>();
            if (!acc[j].version.empty()) r["version"] = acc[j].version;
        }
        r["runtime"] = jobs[j].name;
        r["precision"] = jobs[j].precision;
        r["threads"] = jobs[j].threads;
        if (!jobs[j].note.empty()) r["note"] = jobs[j].note;
        report["runtimes"].push_back(r);
    }
    report["rounds"] = o.rounds;

    const int max_threads = *std::max_element(o.threads.begin(), o.threads.end());
    report["macs"] = macs;
    report["engine_file_bytes"] = file_bytes;
    report["compute_floor_ms"] = floor_ms(max_threads, "fp32");
    report["floor_assumes"] = std::to_string(rate.lanes) + " fp32 FMA/cycle per core x " + std::to_string(static_cast<int>(rate.mhz)) +
                              " MHz; int8: " + std::to_string(rate.int8_per_lane) + " multiply-adds per fp32 lane" +
                              (rate.int8_per_lane == 4 ? " (VNNI)" : "");
    report["compute_floors"] = json::array();
    for (int t : o.threads) report["compute_floors"].push_back({{"threads", t}, {"fp32_ms", floor_ms(t, "fp32")}, {"int8_ms", floor_ms(t, "int8")}});

    // The class check: the engine and ONNX Runtime (on firesight's export) on the same photos.
    if (!o.photos.empty()) {
#ifdef FIRESIGHT_HAVE_ONNX_EXPORT
        if (o.ort.empty()) throw Error("bench: --photos compares with ONNX Runtime and needs --ort");
        std::vector<std::filesystem::path> files;
        for (const auto& p : o.photos) {
            if (std::filesystem::is_directory(p, ec)) {
                std::vector<std::filesystem::path> found;
                for (const auto& e : std::filesystem::directory_iterator(p))
                    if (e.is_regular_file() && e.path().filename() != "LICENSE" && e.path().extension() != ".tsv" && e.path().extension() != ".md")
                        found.push_back(e.path());
                std::sort(found.begin(), found.end());
                files.insert(files.end(), found.begin(), found.end());
            } else {
                files.emplace_back(p);
            }
        }
        const data::Preprocess pre{metadata.size, metadata.resize_shorter, metadata.mean, metadata.scale};
        std::vector<float> pixels;
        std::vector<std::string> names;
        for (const auto& f : files) {
            try {
                const cv::Mat x = data::preprocess(data::decode_image(f), pre);
                pixels.insert(pixels.end(), reinterpret_cast<const float*>(x.data), reinterpret_cast<const float*>(x.data) + per);
                names.push_back(f.string());
            } catch (const std::exception& e) {
                std::fprintf(stderr, "bench: %s: skipped (%s)\n", f.string().c_str(), e.what());
            }
        }
        if (names.empty()) throw Error("bench: no photo could be decoded (--photos)");
        const int count = static_cast<int>(names.size());
        const std::filesystem::path photos_file = stem + "-photos.f32";
        TmpRemover photos_remover{photos_file};
        write_floats(photos_file, to_nchw(pixels.data(), count, size));
        json checks = json::array();
        auto check = [&](const std::filesystem::path& engine_file, const std::filesystem::path& onnx_file, const std::string& precision,
                         const std::string& what) {
            engine::Session s(engine::Engine::load(engine_file), {engine::Backend::Auto, 1});
            const auto mine = s.probabilities(pixels, count);
            const auto ort = run_json_command(node + " run " + shell_quote(onnx_file.string()) + " 1 " + shell_quote(photos_file.string()));
            int agree = 0;
            double max_diff = 0;
            json differing = json::array();
            for (int i = 0; i < count; ++i) {
                const auto theirs = ort["outputs"][static_cast<std::size_t>(i)][0].get<std::vector<float>>();
                const auto& ours = mine[static_cast<std::size_t>(i)];
                if (theirs.size() != ours.size()) throw Error("bench: onnxruntime gave " + std::to_string(theirs.size()) + " probabilities, the engine " + std::to_string(ours.size()));
                for (std::size_t k = 0; k < ours.size(); ++k) max_diff = std::max(max_diff, static_cast<double>(std::fabs(ours[k] - theirs[k])));
                if (argmax(ours) == argmax(theirs)) ++agree;
                else differing.push_back({{"photo", names[static_cast<std::size_t>(i)]}, {"engine", argmax(ours)}, {"onnxruntime", argmax(theirs)}});
            }
            checks.push_back({{"precision", precision}, {"onnx", what}, {"engine_backend", engine::backend_name(s.backend())}, {"photos", count},
                              {"same_top1", agree}, {"max_abs_prob_diff", max_diff}, {"differing", differing}});
        };
        check(fse, onnx, "fp32", "opset 10");
        if (!o.int8.empty()) {
            check(o.int8, onnx_int8, "int8", "QDQ, int8 activations");
            check(o.int8, onnx_u8, "int8", "QDQ, uint8 activations");
        }
        report["class_check"] = checks;
#else
        throw Error("bench: --photos needs ONNX export, which this firesight was built without");
#endif
    }

    if (o.json_out) {
        std::printf("%s\n", report.dump(2).c_str());
        return;
    }
    std::printf("model %s: %.1f M MACs, engine file %.2f MB, batch 1, %d interleaved rounds\n", o.model.c_str(), static_cast<double>(macs) / 1e6,
                static_cast<double>(file_bytes) / 1e6, o.rounds);
    std::printf("%-20s %-5s %3s %6s %9s %13s %8s %8s %8s %8s %7s %12s\n", "runtime", "prec", "thr", "runs", "median ms", "round medians",
                "p90 ms", "p99 ms", "img/s", "load ms", "floor", "peak RSS MB");
    for (const auto& r : report["runtimes"]) {
        const auto name = r["runtime"].get<std::string>();
        if (r.contains("error")) {
            std::printf("%-20s %-5s %3d error: %s\n", name.c_str(), r["precision"].get<std::string>().c_str(), r["threads"].get<int>(),
                        r["error"].get<std::string>().c_str());
            continue;
        }
        const auto rm = r["round_medians_ms"].get<std::vector<double>>();
        char spread[64];
        std::snprintf(spread, sizeof spread, "%.2f-%.2f", *std::min_element(rm.begin(), rm.end()), *std::max_element(rm.begin(), rm.end()));
        std::printf("%-20s %-5s %3d %6d %9.2f %13s %8.2f %8.2f %8.1f %8.1f %6.0f%% %6.1f (+%.1f)\n", name.c_str(),
                    r["precision"].get<std::string>().c_str(), r["threads"].get<int>(), r["runs"].get<int>(), r["median_ms"].get<double>(), spread,
                    r["p90_ms"].get<double>(), r["p99_ms"].get<double>(), r["throughput_per_s"].get<double>(), r["load_ms"].get<double>(),
                    100.0 * r["floor_share"].get<double>(), r["peak_rss_mb"].get<double>(), r["peak_rss_mb"].get<double>() - r["rss_before_mb"].get<double>());
    }
    for (const auto& f : report["compute_floors"])
        std::printf("%-20s %-5s %3d %6s %9.2f   int8 %.2f ms  (%s)\n", "compute floor", "fp32", f["threads"].get<int>(), "", f["fp32_ms"].get<double>(),
                    f["int8_ms"].get<double>(), report["floor_assumes"].get<std::string>().c_str());
    for (const auto& p : report["peers_not_measured"]) std::printf("not measured: %s\n", p.get<std::string>().c_str());
    if (report.contains("class_check"))
        for (const auto& c : report["class_check"]) {
            std::printf("class check %s: onnxruntime on the ONNX export (%s) vs the engine (%s): same top-1 class on %d of %d photos, max |prob diff| %.4f\n",
                        c["precision"].get<std::string>().c_str(), c["onnx"].get<std::string>().c_str(), c["engine_backend"].get<std::string>().c_str(), c["same_top1"].get<int>(),
                        c["photos"].get<int>(), c["max_abs_prob_diff"].get<double>());
            for (const auto& d : c["differing"])
                std::printf("  %s: engine class %d, onnxruntime class %d\n", d["photo"].get<std::string>().c_str(), d["engine"].get<int>(),
                            d["onnxruntime"].get<int>());
        }
    std::printf("load ms: file to a session ready to run (xnnpack packs its weights here); floor: the compute floor at that\n"
                "precision and thread count as a share of the median; round medians: lowest and highest median of one round;\n"
                "peak RSS: the measuring process (+growth over its size before loading). onnxruntime is timed inside node\n"
                "(session.run awaited, so a few microseconds of JavaScript per run are included).\n");
}

void add_bench(CLI::App& app) {
    auto opt = std::make_shared<BenchOptions>();
    auto* sub = app.add_subcommand("bench", "Measure engine latency per backend against the peers on this machine");
    sub->add_option("--model,-m", opt->model, ".fse engine, .tflite or trained run (the latter two also bench libtorch)")->required();
    sub->add_option("--int8", opt->int8, "An int8 engine (.fse) of the same model: timed on native-int8 and xnnpack, and its QDQ ONNX export");
    sub->add_option("--runs", opt->runs, "Timed runs per configuration")->check(CLI::PositiveNumber);
    sub->add_option("--warmup", opt->warmup, "Untimed runs first")->check(CLI::NonNegativeNumber);
    sub->add_option("--reference-runs", opt->reference_runs, "Timed runs of the (slow) reference backend")->check(CLI::PositiveNumber);
    sub->add_option("--threads", opt->threads, "Thread counts, each runtime measured at each (default 2; with --peers 1,2)")
        ->delimiter(',')
        ->check(CLI::Range(1, 256));
    sub->add_option("--rounds", opt->rounds, "Interleaved slices the runs of each configuration are split into")->check(CLI::Range(1, 100));
    sub->add_option("--ort", opt->ort, "Folder where onnxruntime-node is installed (npm install --ignore-scripts --prefix DIR onnxruntime-node)");
    sub->add_option("--ort-script", opt->ort_script, "bench/peers/ort_bench.js (found from the executable's place by default)");
    sub->add_option("--photos", opt->photos, "Photos (files or folders) on which ONNX Runtime's classes are checked against the engine's");
    sub->add_flag("--peers", opt->peers, "The peers side by side: threads 1,2 unless given, no reference backend");
    sub->add_flag("--json", opt->json_out, "Print JSON");
    sub->callback([opt]() { run_bench(*opt); });
}

}  // namespace

FIRESIGHT_COMMAND(bench, 60, add_bench);

}  // namespace firesight::cli
