// Evaluating compressed engine variants with the runtime itself (accuracy, size, latency, memory)
// and reporting them: results.json, a text table, a Pareto chart and a self-contained report.html.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "firesight/eval/eval.h"

namespace firesight::eval {

// Preprocessed evaluation images, ready for the engine.
struct EvalImages {
    std::vector<std::string> classes;
    std::vector<std::vector<float>> inputs;  // one NHWC f32 tensor per image, preprocessed as the engine expects
    std::vector<int> labels;                 // index into classes
    std::vector<std::string> paths;          // where each image came from (for messages)
};

struct VariantResult {
    std::string name;                 // e.g. "fp32", "int8-entropy", "prune50-k16-int8"
    nlohmann::json settings;          // what was done: sparsity, k, int8, calibration, finetune steps...
    std::filesystem::path engine;     // the .fse file
    Metrics metrics;                  // accuracy, per-class recall, confusion (from eval.h)
    std::uint64_t size_bytes = 0, gzip_bytes = 0;
    double latency_ms = 0, latency_p90_ms = 0;  // batch 1, 1 thread, median of N runs (fresh process)
    double peak_rss_mb = 0;                     // of that fresh process
    double accuracy_drop = 0;                   // points below the fp32 variant
    std::string backend;                        // runtime backend timed: the faster of xnnpack and native-int8 for int8 engines
};

// Reads each image with the project's preprocessing (src/data) at the engine's input size, mean and
// scale (from the engine's metadata). An image that cannot be read is skipped and listed in *skipped
// (path and reason) when given; it never aborts the whole set. Labels index into `classes`.
EvalImages load_eval_images(const std::filesystem::path& engine, const std::vector<std::string>& paths,
                            const std::vector<int>& labels, const std::vector<std::string>& classes,
                            std::vector<std::string>* skipped = nullptr);

// Accuracy etc. with the runtime (Session, 1 thread) on the images; size and gzip size of the file;
// latency and peak RSS by running `firesight-run --model F --bench N --json` in a child process
// (bench_runs <= 0 skips the child and leaves latency and RSS at 0). Float engines run on xnnpack;
// int8 engines are timed on both xnnpack and native-int8 and keep the faster (named in `backend`),
// and their accuracy comes from native-int8, whose bytes equal the int8 reference.
VariantResult evaluate_variant(const std::string& name, const nlohmann::json& settings,
                               const std::filesystem::path& engine, const EvalImages& images, int bench_runs = 30);

// Times every variant again, interleaved: `rounds` rounds, each running every variant (in a
// rotated order) on each of its candidate backends for `runs` batch-1 inferences in a fresh
// firesight-run process. A variant's latency is the median over rounds of its round medians, on
// its fastest backend; so a burst of load on a shared machine lands on every variant alike
// instead of on whichever was measured then. Sets latency_ms, latency_p90_ms (median of the
// rounds' p90s), peak_rss_mb (the largest) and backend.
void time_variants_interleaved(std::vector<VariantResult*>& variants, int rounds, int runs);

// Where firesight-run is: $FIRESIGHT_RUN if set, else next to the running executable, else
// ../firesight-run/ beside it, else the path of the build that compiled this library.
// Throws firesight::Error listing the places tried when none exists.
std::filesystem::path find_firesight_run();

// The latency/RSS part of evaluate_variant on its own: runs the given firesight-run binary.
struct BenchFigures {
    double load_ms = 0, latency_ms = 0, latency_p90_ms = 0, latency_min_ms = 0, peak_rss_mb = 0;
    int runs = 0;
    std::string backend;
};
// backend: "auto" | "reference" | "xnnpack" | "native-int8"; empty: auto. The figures' backend is
// the one firesight-run ran on (what auto chose).
BenchFigures bench_engine(const std::filesystem::path& firesight_run, const std::filesystem::path& engine,
                          int runs, int threads = 1, const std::string& backend = {});

// Size of the bytes after gzip (deflate, level 9), to show how much a download would shrink.
std::uint64_t gzip_size(const std::string& bytes);

// Sets accuracy_drop of every variant against the one named `reference` (points, positive = worse).
void set_accuracy_drops(std::vector<VariantResult>& v, const std::string& reference = "fp32");

// Indices of the variants on the accuracy-vs-latency Pareto front (no other variant is at least as
// accurate and at least as fast and strictly better in one), sorted by latency.
std::vector<std::size_t> pareto_front(const std::vector<VariantResult>& v);

nlohmann::json variant_to_json(const VariantResult& r);
nlohmann::json variants_json(const std::vector<VariantResult>& v, const std::string& chosen);
VariantResult variant_from_json(const nlohmann::json& j);  // for resume
std::vector<VariantResult> variants_from_json(const nlohmann::json& j);  // the "variants" of variants_json
Metrics metrics_from_json(const nlohmann::json& j);                      // inverse of eval::to_json(Metrics)

std::string variants_table(const std::vector<VariantResult>& v, const std::string& chosen);  // text, for the terminal
std::string pareto_svg(const std::vector<VariantResult>& v, const std::string& chosen);  // accuracy vs latency, size = marker area
std::string variants_report_html(const std::vector<VariantResult>& v, const std::string& chosen,
                                 const std::string& title);

}  // namespace firesight::eval
