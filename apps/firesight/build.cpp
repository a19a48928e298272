// firesight build: a trained run (or a .tflite) in, an optimised engine file (.fse) out.
#include <chrono>
#include <cstdio>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "firesight/model/engine_convert.h"
#include "firesight/engine/ir.h"
#include "firesight/builder/tflite_graph.h"
#include "firesight/engine/format.h"
#include "firesight/common/error.h"
#include "firesight/model/trained_model.h"

namespace firesight::cli {
namespace {

struct BuildOptions {
    std::string model, out, labels;
};

void run_build(const BuildOptions& o) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::filesystem::path in = o.model;
    std::error_code ec;
    if (!std::filesystem::exists(in, ec)) throw Error(o.model + ": no such file or directory");
    engine::Graph g;
    if (in.extension() == ".tflite") {
        g = engine::graph_from_tflite_file(in, o.labels);
    } else {
        g = model::trained_model_to_graph(model::load_trained_model(in));
    }
    engine::save_engine(g, o.out);
    const auto ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    const auto build = nlohmann::json::parse(g.metadata.build_json, nullptr, false);
    std::printf("%s: %zu ops, %zu tensors, %.1f M MACs, %zu classes, %llu bytes, built in %.0f ms\n", o.out.c_str(), g.ops.size(),
                g.tensors.size(), static_cast<double>(engine::count_macs(g)) / 1e6, g.metadata.class_names.size(),
                static_cast<unsigned long long>(std::filesystem::file_size(o.out)), ms);
    if (!build.is_discarded() && build.contains("passes")) std::printf("%s\n", build["passes"].get<std::string>().c_str());
}

void add_build(CLI::App& app) {
    auto opt = std::make_shared<BuildOptions>();
    auto* sub = app.add_subcommand("build", "Build an optimised engine file (.fse) from a trained run or a .tflite");
    sub->add_option("--model,-m", opt->model, "Run folder, model.pt or .tflite")->required();
    sub->add_option("--out,-o", opt->out, "Engine file to write (.fse)")->required();
    sub->add_option("--labels", opt->labels, "Labels file (one per line) for a .tflite model");
    sub->callback([opt]() { run_build(*opt); });
}

}  // namespace

FIRESIGHT_COMMAND(build, 50, add_build);

}  // namespace firesight::cli
