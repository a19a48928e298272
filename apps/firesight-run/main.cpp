// firesight-run: classify images with an engine file, using only the runtime (no libtorch, no
// OpenCV), as it would run on a board. Inputs are binary PPM images or raw float32 tensors
// (size x size x 3, already preprocessed, with --raw). With --bench N and no inputs it times N
// batch-1 inferences instead, in this fresh process, so load time and peak memory are its own.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <sys/resource.h>

#include <cstring>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "firesight/engine/session.h"
#include "firesight/common/error.h"
#include "firesight/common/stats.h"
#include "firesight/common/fileio.h"
#include "ppm.h"

namespace {

// Peak resident memory of this program. VmHWM belongs to this process image alone: getrusage's
// ru_maxrss survives execve, so a child started by posix_spawn (which borrows the parent's memory
// until exec) would report the parent's peak instead of its own.
double peak_rss_mb() {
    if (std::FILE* f = std::fopen("/proc/self/status", "r")) {
        char line[256];
        long kb = -1;
        while (std::fgets(line, sizeof line, f))
            if (std::sscanf(line, "VmHWM: %ld kB", &kb) == 1) break;
        std::fclose(f);
        if (kb >= 0) return static_cast<double>(kb) / 1024.0;
    }
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_maxrss) / 1024.0;  // Linux reports kilobytes
}

// Times `runs` inferences on one fixed input (a smooth pattern within the usual [-1, 1] range, so
// no backend meets denormals or an all-zero shortcut) after a warm-up that packs weights and
// faults in the buffers.
int bench(const std::string& model, firesight::engine::Session& session, double load_ms, int runs,
          const std::string& backend, int threads, bool json) {
    using namespace firesight;
    const auto in = session.engine().inputs().at(0);
    std::size_t n = 1;
    for (std::size_t i = 1; i < in.shape.size(); ++i) n *= static_cast<std::size_t>(in.shape[i]);
    std::vector<float> x(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = static_cast<float>(std::sin(0.37 * static_cast<double>(i % 1009)));
    const int warmup = std::max(2, runs / 10);
    for (int i = 0; i < warmup; ++i) session.run(x, 1);
    std::vector<double> ms;
    ms.reserve(static_cast<std::size_t>(runs));
    for (int i = 0; i < runs; ++i) {
        const auto t0 = std::chrono::steady_clock::now();
        session.run(x, 1);
        ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    const double rss_mb = peak_rss_mb();
    std::error_code ec;
    const auto file_size = std::filesystem::file_size(model, ec);
    const double median = percentile(ms, 0.5), p90 = percentile(ms, 0.9), min = *std::min_element(ms.begin(), ms.end());
    if (json) {
        nlohmann::json j = {{"model", model},           {"load_ms", load_ms},   {"latency_median_ms", median},
                            {"latency_p90_ms", p90},    {"latency_min_ms", min}, {"runs", runs},
                            {"warmup_runs", warmup},    {"threads", threads},   {"backend", backend},
                            {"peak_rss_mb", rss_mb},    {"file_bytes", ec ? 0 : file_size}};
        std::printf("%s\n", j.dump().c_str());
    } else {
        std::printf("%s: load %.1f ms, latency median %.3f ms, p90 %.3f ms, min %.3f ms over %d runs (%s, %d threads), "
                    "peak RSS %.1f MB, file %.2f MB\n",
                    model.c_str(), load_ms, median, p90, min, runs, backend.c_str(), threads, rss_mb,
                    static_cast<double>(ec ? 0 : file_size) / 1e6);
    }
    return 0;
}

// One input's top classes ("img.ppm  fire 91.2%  smoke 6.0% ...") or, with json, one JSON line with
// every probability (and logit) at full precision (scripts/arm64.sh compares them across machines).
void print_result(const std::string& name, const std::vector<float>& probs, const std::vector<float>& logits,
                  const std::vector<std::size_t>& order, std::size_t k,
                  const std::vector<std::string>& class_names, bool json) {
    auto class_name = [&](std::size_t c) { return c < class_names.size() ? class_names[c] : std::to_string(c); };
    if (json) {
        nlohmann::json top = nlohmann::json::array();
        for (std::size_t i = 0; i < k; ++i) top.push_back({{"class", class_name(order[i])}, {"probability", probs[order[i]]}});
        nlohmann::json j = {{"input", name}, {"top", top}, {"probabilities", probs}};
        if (!logits.empty()) j["logits"] = logits;
        std::printf("%s\n", j.dump().c_str());
        return;
    }
    std::printf("%s", name.c_str());
    for (std::size_t i = 0; i < k; ++i) std::printf("  %s %.1f%%", class_name(order[i]).c_str(), 100.0 * probs[order[i]]);
    std::printf("\n");
}

}  // namespace

int main(int argc, char** argv) {
    using namespace firesight;
    CLI::App app{"firesight-run: classify images with a firesight engine file (.fse)"};
    std::string model, backend = "auto";
    std::vector<std::string> inputs;
    int threads = 1, top = 3, bench_runs = 0;
    bool raw = false, json = false, dense = false;
    app.add_option("--model,-m", model, "Engine file (.fse)")->required();
    app.add_option("--backend", backend,
                   "auto (default: native-int8 for int8 engines on AVX512-VNNI CPUs, else xnnpack), reference, xnnpack, "
                   "native-int8 (AVX512-VNNI kernels for int8 engines) or xnnpack-fused (f32 inverted-residual blocks fused)");
    app.add_option("--threads", threads, "Worker threads")->check(CLI::Range(1, 256));
    app.add_option("--top,-k", top, "Classes to print per input")->check(CLI::PositiveNumber);
    app.add_flag("--raw", raw, "Inputs are raw float32 NHWC tensors, already preprocessed");
    app.add_flag("--dense", dense,
                 "Keep XNNPACK on its dense kernels even where its sparse path applies (ARM, pruned fp32 engines "
                 "with symmetric stride-2 padding): to compare the two");
    app.add_option("--bench", bench_runs, "Without inputs: time N batch-1 inferences on a synthetic input")
        ->check(CLI::Range(1, 1000000));
    app.add_flag("--json", json,
                 "Print JSON: with inputs, one object per input (file, top classes, every probability at full "
                 "precision); with --bench, the figures as one object");
    app.add_option("inputs", inputs, "PPM (P6) images, or raw tensors with --raw");
    CLI11_PARSE(app, argc, argv);
    if (bench_runs > 0 && !inputs.empty()) {
        std::fprintf(stderr, "firesight-run: error: --bench times a synthetic input; give no input files with it\n");
        return 2;
    }
    if (bench_runs == 0 && inputs.empty()) {
        std::fprintf(stderr, "firesight-run: error: no inputs (give PPM images, raw tensors with --raw, or --bench N)\n");
        return 2;
    }
    try {
        const auto t0 = std::chrono::steady_clock::now();
        auto e = engine::Engine::load(model);
        engine::SessionOptions options{engine::parse_backend(backend), threads};
        options.sparse = !dense;
        engine::Session session(e, options);
        backend = engine::backend_name(session.backend());  // what auto chose, in every message below
        const auto load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        const auto& meta = e->metadata();
        const std::size_t per = static_cast<std::size_t>(meta.size) * meta.size * 3;
        int failures = 0;
        std::fprintf(stderr, "loaded %s in %.1f ms (%s, %d threads)\n", model.c_str(), load_ms, backend.c_str(), threads);
        if (bench_runs > 0) return bench(model, session, load_ms, bench_runs, backend, threads, json);
        for (const auto& path : inputs) {
            try {
                const auto bytes = read_file_bytes(path);
                std::vector<float> x;
                if (raw) {
                    if (bytes.size() != per * sizeof(float))
                        throw Error(path + ": raw tensor has " + std::to_string(bytes.size()) + " bytes, expected " +
                                    std::to_string(per * sizeof(float)));
                    x.resize(per);
                    std::memcpy(x.data(), bytes.data(), bytes.size());
                } else {
                    x = run::preprocess(run::decode_ppm(bytes, path), meta);
                }
                const auto& out = session.run(x);
                const std::vector<float> probs(out[0], out[0] + session.output_size(0));
                // The logits output (when the engine has one): in an int8 engine they are the last
                // layer's int8 values times one scale, so equal logits mean equal int8 bytes.
                std::vector<float> logits;
                if (out.size() > 1) logits.assign(out[1], out[1] + session.output_size(1));
                std::vector<std::size_t> order(probs.size());
                std::iota(order.begin(), order.end(), 0);
                const auto k = std::min<std::size_t>(static_cast<std::size_t>(top), order.size());
                std::partial_sort(order.begin(), order.begin() + static_cast<long>(k), order.end(),
                                  [&](auto a, auto b) { return probs[a] > probs[b]; });
                print_result(std::filesystem::path(path).filename().string(), probs, logits, order, k, meta.class_names, json);
            } catch (const Error& err) {
                std::fprintf(stderr, "firesight-run: error: %s\n", err.what());
                ++failures;
            }
        }
        return failures ? 1 : 0;
    } catch (const std::exception& err) {
        std::fprintf(stderr, "firesight-run: error: %s\n", err.what());
        return 1;
    }
}
