// variants_bench: measures engine files side by side with the runtime (accuracy on held-out images,
// size and gzip size, batch-1 latency and peak RSS of a fresh firesight-run) and prints the variant
// table; or prints the table of an existing results.json (what `firesight optimize` writes).
//
// usage: variants_bench --results results.json [--html report.html] [--targets]
//   --targets: also checks the goals against fp32: int8 accuracy within 1.0 point, int8
//   latency <= 0.5x, pruned + clustered + int8 size <= 1/8 (variants recognised by their settings).
//        variants_bench --engine NAME=FILE.fse ... (--run RUN_DIR | --data DIR) [--split test]
//                       [--bench-runs 30] [--chosen NAME] [--out DIR]
//   --run: the run's splits.json picks the images (its test split by default), as `firesight eval` does.
//   --out: writes results.json, report.html and pareto.svg there.
#include <CLI/CLI.hpp>

#include <algorithm>
#include <cstdio>

#include "firesight/data/dataset.h"
#include "firesight/common/error.h"
#include "firesight/common/fileio.h"
#include "firesight/common/progress.h"
#include "firesight/eval/variants.h"

namespace fs = std::filesystem;
using namespace firesight;

namespace {

bool flag(const nlohmann::json& settings, const char* key) {
    return settings.is_object() && settings.contains(key) && settings[key].is_boolean() && settings[key].get<bool>();
}
bool has(const nlohmann::json& settings, const char* key) {
    return settings.is_object() && settings.contains(key) && !settings[key].is_null() &&
           !(settings[key].is_number() && settings[key].get<double>() == 0);
}

// The goals, each with the variants it applies to and PASS/MISS. Returns how many missed.
int check_targets(const std::vector<eval::VariantResult>& v) {
    const auto fp32 = std::find_if(v.begin(), v.end(), [](const auto& r) { return r.name == "fp32"; });
    if (fp32 == v.end()) throw Error("--targets: no fp32 variant in the results");
    int missed = 0;
    auto verdict = [&](bool ok) {
        missed += ok ? 0 : 1;
        return ok ? "PASS" : "MISS";
    };
    std::printf("\ntargets against fp32 (%.2f%%, %.2f ms, %.2f MB):\n", 100 * fp32->metrics.accuracy, fp32->latency_ms,
                static_cast<double>(fp32->size_bytes) / 1e6);
    // int8 of the unpruned, unclustered model: accuracy and latency.
    const eval::VariantResult* best_int8 = nullptr;
    for (const auto& r : v) {
        if (!flag(r.settings, "int8") || has(r.settings, "sparsity") || has(r.settings, "clusters") || has(r.settings, "channel_fraction"))
            continue;
        const double drop = 100 * (fp32->metrics.accuracy - r.metrics.accuracy);
        const double speed = fp32->latency_ms > 0 ? r.latency_ms / fp32->latency_ms : 0;
        std::printf("  %-22s accuracy drop %+5.2f points, latency %.2fx fp32\n", r.name.c_str(), drop, speed);
        if (!best_int8 || r.metrics.accuracy > best_int8->metrics.accuracy) best_int8 = &r;
    }
    if (!best_int8) {
        std::printf("  no int8 variant of the fp32 model: int8 targets not checked\n");
        missed += 2;
    } else {
        const double drop = 100 * (fp32->metrics.accuracy - best_int8->metrics.accuracy);
        const double speed = fp32->latency_ms > 0 ? best_int8->latency_ms / fp32->latency_ms : 1e9;
        std::printf("  [%s] int8 accuracy within 1.0 point of fp32: %s drops %.2f points\n", verdict(drop <= 1.0), best_int8->name.c_str(), drop);
        std::printf("  [%s] int8 latency <= 0.5x fp32: %s at %.2fx\n", verdict(speed <= 0.5), best_int8->name.c_str(), speed);
    }
    const eval::VariantResult* smallest = nullptr;
    for (const auto& r : v)
        if (flag(r.settings, "int8") && has(r.settings, "sparsity") && has(r.settings, "clusters") &&
            (!smallest || r.size_bytes < smallest->size_bytes))
            smallest = &r;
    if (!smallest) {
        std::printf("  no pruned + clustered + int8 variant: size target not checked\n");
        ++missed;
    } else {
        const double ratio = static_cast<double>(smallest->size_bytes) / static_cast<double>(std::max<std::uint64_t>(1, fp32->size_bytes));
        std::printf("  [%s] pruned + clustered + int8 size <= 1/8 fp32: %s at 1/%.1f (%.2f MB, %.2f MB gzipped)\n", verdict(ratio <= 0.125),
                    smallest->name.c_str(), 1 / ratio, static_cast<double>(smallest->size_bytes) / 1e6,
                    static_cast<double>(smallest->gzip_bytes) / 1e6);
    }
    return missed;
}

int print_results(const std::string& results, const std::string& html, bool targets) {
    const auto j = nlohmann::json::parse(read_file_text(results), nullptr, false);
    if (j.is_discarded()) throw Error(results + ": not valid JSON");
    const auto v = eval::variants_from_json(j);
    const std::string chosen = j.value("chosen", "");
    std::printf("%s", eval::variants_table(v, chosen).c_str());
    if (!html.empty()) write_file_atomic(html, eval::variants_report_html(v, chosen, "Engine variants: " + results));
    if (targets) return check_targets(v) == 0 ? 0 : 3;
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"variants_bench: measure engine variants with the runtime and print the variant table"};
    std::string results, html, run, data, split = "test", chosen, out;
    std::vector<std::string> engines;
    int bench_runs = 30;
    bool targets = false;
    app.add_option("--results", results, "Print the table of this results.json");
    app.add_option("--html", html, "With --results: also write this report.html");
    app.add_flag("--targets", targets, "With --results: check the int8 accuracy/latency and compressed size goals (exit 3 on a miss)");
    app.add_option("--engine", engines, "NAME=FILE.fse, one per variant (the first is the reference unless one is named fp32)");
    app.add_option("--run", run, "Training run folder: its splits.json chooses the images");
    app.add_option("--data", data, "Image folder (class sub-folders): every image, or with --run where the run's images are");
    app.add_option("--split", split, "With --run: test, val or train");
    app.add_option("--bench-runs", bench_runs, "Timed inferences per variant (0: do not time)")->check(CLI::Range(0, 100000));
    app.add_option("--chosen", chosen, "Variant to mark as chosen");
    app.add_option("--out", out, "Folder for results.json, report.html, pareto.svg");
    CLI11_PARSE(app, argc, argv);
    try {
        if (!results.empty()) return print_results(results, html, targets);
        if (engines.empty()) throw Error("give --results FILE, or --engine NAME=FILE.fse at least once");
        if (run.empty() && data.empty()) throw Error("give --run RUN_DIR or --data DIR for the images");

        std::vector<data::Sample> samples;
        std::vector<std::string> classes;
        std::vector<fs::path> roots;
        if (!run.empty()) {
            const fs::path splits_file = fs::path(run) / "splits.json";
            const auto s = data::splits_from_json(read_file_text(splits_file), splits_file.string());
            samples = s.named(split);
            classes = s.classes;
            roots = s.roots;
            if (!data.empty()) roots = {fs::path(data)};  // a single-root run moved elsewhere
        } else {
            data::ImageFolderDataset ds(data);
            samples = ds.all();
            classes = ds.classes();
            roots = {data};
        }
        std::vector<std::string> paths;
        std::vector<int> labels;
        for (const auto& s : samples) {
            if (static_cast<std::size_t>(s.root) >= roots.size()) throw Error("--data names one folder but the run has several");
            paths.push_back((roots[static_cast<std::size_t>(s.root)] / s.path).string());
            labels.push_back(s.label);
        }
        std::vector<std::pair<std::string, fs::path>> named;
        for (const auto& e : engines) {
            const auto eq = e.find('=');
            if (eq == std::string::npos || eq == 0 || eq + 1 == e.size()) throw Error("--engine '" + e + "': expected NAME=FILE.fse");
            named.emplace_back(e.substr(0, eq), e.substr(eq + 1));
        }
        // Every variant shares the first engine's preprocessing; a variant with other metadata would
        // need its own images, which compressing weights never changes.
        std::vector<std::string> skipped;
        const auto images = eval::load_eval_images(named.front().second, paths, labels, classes, &skipped);
        for (const auto& s : skipped) std::fprintf(stderr, "warning: skipped %s\n", s.c_str());
        std::fprintf(stderr, "%zu images (%zu skipped) from %s\n", images.inputs.size(), skipped.size(), roots[0].c_str());

        std::vector<eval::VariantResult> v;
        ProgressBar bar("variants", named.size());
        for (const auto& [name, file] : named) {
            v.push_back(eval::evaluate_variant(name, {{"file", file.string()}}, file, images, bench_runs));
            bar.update(v.size(), name);
        }
        bar.finish();
        const bool has_fp32 = std::any_of(v.begin(), v.end(), [](const auto& r) { return r.name == "fp32"; });
        eval::set_accuracy_drops(v, has_fp32 ? "fp32" : v.front().name);
        std::printf("%s", eval::variants_table(v, chosen).c_str());
        if (!out.empty()) {
            fs::create_directories(out);
            write_file_atomic(fs::path(out) / "results.json", eval::variants_json(v, chosen).dump(2) + "\n");
            write_file_atomic(fs::path(out) / "report.html", eval::variants_report_html(v, chosen, "Engine variants"));
            write_file_atomic(fs::path(out) / "pareto.svg", eval::pareto_svg(v, chosen));
            std::printf("wrote %s/{results.json,report.html,pareto.svg}\n", out.c_str());
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "variants_bench: error: %s\n", e.what());
        return 1;
    }
}
