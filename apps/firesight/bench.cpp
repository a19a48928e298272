// firesight bench: batch-1 latency of the engine (each backend) and, in the same run, of the peers
// on this machine (libtorch eager on the same weights), next to the compute floor.
// Each runtime is measured in its own forked process, so load time and peak RSS are its own.
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
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
#include "firesight/model/mobilenet_v2.h"
#include "firesight/common/progress.h"
#include "firesight/model/trained_model.h"

namespace firesight::cli {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;

struct BenchOptions {
    std::string model;
    int runs = 200, warmup = 20, threads = 2, reference_runs = 10, rounds = 4;
    bool json_out = false;
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
            r["rss_before_mb"] = start_rss;
            r["peak_rss_mb"] = static_cast<double>(status_kb("VmHWM:")) / 1024.0;
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

// Peak fp32 FMA lanes per cycle per core, from the CPU flags (2 FMA units assumed).
std::pair<int, double> fma_rate() {
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    int lanes = 8;
    double mhz = 0;
    while (std::getline(in, line)) {
        if (line.rfind("flags", 0) == 0) {
            if (line.find(" avx512f") != std::string::npos) lanes = 32;
            else if (line.find(" fma") != std::string::npos) lanes = 16;
        }
        if (line.rfind("cpu MHz", 0) == 0 && mhz == 0) mhz = std::atof(line.substr(line.find(':') + 1).c_str());
    }
    return {lanes, mhz > 0 ? mhz : 2500.0};
}

struct TmpRemover {
    std::filesystem::path p;
    ~TmpRemover() {
        std::error_code e;
        if (!p.empty()) std::filesystem::remove(p, e);
    }
};

void run_bench(const BenchOptions& o) {
    report_blas();  // libtorch is several times slower on the reference BLAS: say which one this is
    const std::filesystem::path in = o.model;
    std::error_code ec;
    if (!std::filesystem::exists(in, ec)) throw Error(o.model + ": no such file or directory");
    // The engine file to measure: the given .fse, or one built now into a temp file.
    std::filesystem::path fse = in;
    std::filesystem::path tmp;
    const bool have_torch_source = in.extension() != ".fse";
    if (have_torch_source) {
        tmp = std::filesystem::temp_directory_path() / ("firesight-bench-" + std::to_string(::getpid()) + ".fse");
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

    json report = {{"model", o.model}, {"threads", o.threads}, {"batch", 1}, {"runtimes", json::array()}};
    const auto file_bytes = std::filesystem::file_size(fse);
    std::int64_t macs = 0;
    int size = 224;
    {
        auto e = engine::Engine::load(fse);
        macs = e->macs();
        size = e->metadata().size;
    }
    const std::size_t per = static_cast<std::size_t>(size) * size * 3;
    std::vector<float> input(per);
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> dist(-1.f, 1.f);
    for (auto& v : input) v = dist(rng);

    // Every runtime is measured in `rounds` slices, interleaved, so a burst of load from other
    // processes lands on all of them rather than on whichever ran at that moment.
    struct Job {
        std::string name, note;
        int runs = 0, warmup = 0;
        std::function<json(int runs, int warmup)> measure;
    };
    std::vector<Job> jobs;
    for (auto backend : {engine::Backend::Xnnpack, engine::Backend::Reference}) {
        if (!engine::backend_available(backend)) continue;
        const bool ref = backend == engine::Backend::Reference;
        const std::string name = std::string("firesight-") + engine::backend_name(backend);
        jobs.push_back({name, ref ? "single-threaded oracle, fewer runs" : "", ref ? o.reference_runs : o.runs, ref ? 1 : o.warmup,
                        [&, backend, ref, name](int runs, int warmup) {
                            const auto t0 = Clock::now();
                            auto e = engine::Engine::load(fse);
                            engine::Session s(e, {backend, ref ? 1 : o.threads});
                            s.prepare(1);  // buffers planned, weights packed: ready to serve
                            const double load = ms_since(t0);
                            const auto t1 = Clock::now();
                            s.run(input);
                            const double first = ms_since(t1);
                            auto r = time_runs(warmup, runs, load, name, [&] { s.run(input); });
                            r["first_run_ms"] = first;
                            return r;
                        }});
    }
    if (have_torch_source) {
        jobs.push_back({"libtorch-eager", "", o.runs, o.warmup, [&](int runs, int warmup) {
                            torch::set_num_threads(o.threads);
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
    report["peers_not_measured"] = json::array();
#ifdef FIRESIGHT_HAVE_ONNX_EXPORT
    const auto onnx = std::filesystem::temp_directory_path() / ("firesight-bench-" + std::to_string(::getpid()) + ".onnx");
    TmpRemover onnx_remover{onnx};
    engine::save_onnx(engine::load_graph(fse), onnx);
    jobs.push_back({"opencv-dnn (onnx)", "", o.runs, o.warmup, [&](int runs, int warmup) {
                        cv::setNumThreads(o.threads);
                        const auto t0 = Clock::now();
                        cv::dnn::Net net = cv::dnn::readNetFromONNX(onnx.string());
                        const int dims[4] = {1, 3, size, size};
                        cv::Mat blob(4, dims, CV_32F);
                        float* p = blob.ptr<float>();
                        for (int c = 0; c < 3; ++c)
                            for (int i = 0; i < size * size; ++i) p[c * size * size + i] = input[static_cast<std::size_t>(i * 3 + c)];
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
#else
    report["peers_not_measured"].push_back("opencv-dnn (this firesight was built without ONNX export)");
#endif
    struct Acc {
        std::vector<double> samples, loads, firsts;
        double total_ms = 0, peak = 0, before = 1e300;
        std::string error;
    };
    std::vector<Acc> acc(jobs.size());
    for (int round = 0; round < o.rounds; ++round)
        for (std::size_t j = 0; j < jobs.size(); ++j) {
            const int share = std::max(1, jobs[j].runs / o.rounds + (round < jobs[j].runs % o.rounds ? 1 : 0));
            auto r = in_child([&] { return jobs[j].measure(share, jobs[j].warmup); });
            if (r.contains("error")) {
                acc[j].error = r["error"].get<std::string>();
                continue;
            }
            for (const auto& v : r["samples"]) acc[j].samples.push_back(v.get<double>());
            acc[j].loads.push_back(r["load_ms"].get<double>());
            acc[j].firsts.push_back(r["first_run_ms"].get<double>());
            acc[j].total_ms += r["total_ms"].get<double>();
            acc[j].peak = std::max(acc[j].peak, r["peak_rss_mb"].get<double>());
            acc[j].before = std::min(acc[j].before, r["rss_before_mb"].get<double>());
        }
    auto median_of = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        return v.empty() ? 0.0 : v[v.size() / 2];
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
        }
        r["runtime"] = jobs[j].name;
        if (!jobs[j].note.empty()) r["note"] = jobs[j].note;
        report["runtimes"].push_back(r);
    }
    report["rounds"] = o.rounds;

    const auto [lanes, mhz] = fma_rate();
    const double peak = static_cast<double>(o.threads) * lanes * mhz * 1e6;
    report["macs"] = macs;
    report["engine_file_bytes"] = file_bytes;
    report["compute_floor_ms"] = static_cast<double>(macs) / peak * 1e3;
    report["floor_assumes"] = std::to_string(o.threads) + " cores x " + std::to_string(lanes) + " fp32 FMA/cycle x " +
                              std::to_string(static_cast<int>(mhz)) + " MHz";

    if (o.json_out) {
        std::printf("%s\n", report.dump(2).c_str());
        return;
    }
    std::printf("model %s: %.1f M MACs, engine file %.2f MB, batch 1, %d threads, %d interleaved rounds\n", o.model.c_str(),
                static_cast<double>(macs) / 1e6, static_cast<double>(file_bytes) / 1e6, o.threads, o.rounds);
    std::printf("%-20s %6s %10s %10s %10s %10s %10s %12s\n", "runtime", "runs", "median ms", "p90 ms", "p99 ms", "img/s", "load ms",
                "peak RSS MB");
    for (const auto& r : report["runtimes"]) {
        if (r.contains("error")) {
            std::printf("%-20s error: %s\n", r["runtime"].get<std::string>().c_str(), r["error"].get<std::string>().c_str());
            continue;
        }
        std::printf("%-20s %6d %10.2f %10.2f %10.2f %10.1f %10.1f %6.1f (+%.1f)\n", r["runtime"].get<std::string>().c_str(),
                    r["runs"].get<int>(), r["median_ms"].get<double>(), r["p90_ms"].get<double>(), r["p99_ms"].get<double>(),
                    r["throughput_per_s"].get<double>(), r["load_ms"].get<double>(), r["peak_rss_mb"].get<double>(),
                    r["peak_rss_mb"].get<double>() - r["rss_before_mb"].get<double>());
    }
    std::printf("%-20s %6s %10.2f   (%s)\n", "compute floor", "", report["compute_floor_ms"].get<double>(),
                report["floor_assumes"].get<std::string>().c_str());
    for (const auto& p : report["peers_not_measured"]) std::printf("not measured: %s\n", p.get<std::string>().c_str());
    std::printf("load ms: file to a session ready to run (xnnpack packs its weights here); peak RSS: the measuring process,\n"
                "(+growth over its size before loading). Reference backend: single-threaded oracle, fewer runs.\n");
}

void add_bench(CLI::App& app) {
    auto opt = std::make_shared<BenchOptions>();
    auto* sub = app.add_subcommand("bench", "Measure engine latency per backend against the peers on this machine");
    sub->add_option("--model,-m", opt->model, ".fse engine, .tflite or trained run (the latter two also bench libtorch)")->required();
    sub->add_option("--runs", opt->runs, "Timed runs per runtime")->check(CLI::PositiveNumber);
    sub->add_option("--warmup", opt->warmup, "Untimed runs first")->check(CLI::NonNegativeNumber);
    sub->add_option("--reference-runs", opt->reference_runs, "Timed runs of the (slow) reference backend")->check(CLI::PositiveNumber);
    sub->add_option("--threads", opt->threads, "Threads per runtime")->check(CLI::Range(1, 256));
    sub->add_option("--rounds", opt->rounds, "Interleaved slices the runs of each runtime are split into")->check(CLI::Range(1, 100));
    sub->add_flag("--json", opt->json_out, "Print JSON");
    sub->callback([opt]() { run_bench(*opt); });
}

}  // namespace

FIRESIGHT_COMMAND(bench, 60, add_bench);

}  // namespace firesight::cli
