// firesight build: a trained run (or a .tflite) in, an optimised engine file (.fse) out.
#include <algorithm>
#include <chrono>
#include <cstdio>

#include <nlohmann/json.hpp>

#include <opencv2/core.hpp>

#include "commands.h"
#include "firesight/builder/passes.h"
#include "firesight/builder/quantize.h"
#include "firesight/compress/calibrate.h"
#include "firesight/data/engine_classifier.h"
#include "firesight/data/image.h"
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
    std::string calibrate;          // image folder: quantize to int8 with min-max ranges from it
    int calibration_images = 32;
    int input_size = 0;             // 0: the model's own
};

// Up to `count` images from `dir` (recursively, evenly spread over the sorted list so every class
// folder is drawn from), preprocessed as the engine's metadata says. An image that cannot be
// decoded is skipped with a warning.
std::vector<std::vector<float>> calibration_inputs(const std::filesystem::path& dir, int count, const engine::Metadata& m) {
    const auto files = compress::list_image_files(dir);
    if (files.empty()) throw Error("--calibrate " + dir.string() + ": no images there");
    const data::Preprocess pre = preprocessing_of(m);
    std::vector<std::vector<float>> inputs;
    const std::size_t step = std::max<std::size_t>(1, files.size() / static_cast<std::size_t>(count));
    for (std::size_t i = 0; i < files.size() && inputs.size() < static_cast<std::size_t>(count); i += step) {
        try {
            const cv::Mat x = data::preprocess(data::decode_image(files[i]), pre);
            inputs.emplace_back(x.ptr<float>(), x.ptr<float>() + x.total() * 3);
        } catch (const Error& e) {
            std::fprintf(stderr, "warning: calibration: %s: %s\n", files[i].c_str(), e.what());
        }
    }
    if (inputs.empty()) throw Error("--calibrate " + dir.string() + ": no image there could be decoded");
    return inputs;
}

void run_build(const BuildOptions& o) {
    const auto t0 = std::chrono::steady_clock::now();
    const std::filesystem::path in = o.model;
    std::error_code ec;
    if (!std::filesystem::exists(in, ec)) throw Error(o.model + ": no such file or directory");
    engine::Graph g;
    if (in.extension() == ".tflite") {
        g = engine::graph_from_tflite_file(in, o.labels);
    } else if (in.extension() == ".fse") {
        g = engine::load_graph(in);  // an engine rebuilt, e.g. at another input size
    } else {
        g = model::trained_model_to_graph(model::load_trained_model(in));
    }
    if (o.input_size > 0 && o.input_size != g.metadata.size) {
        const int from = g.metadata.size;
        engine::set_input_size(g, o.input_size);
        std::printf("input size %d -> %d (preprocessing resizes the shorter side to %d)\n", from, o.input_size, g.metadata.resize_shorter);
    }
    if (!o.calibrate.empty()) {
        const auto inputs = calibration_inputs(o.calibrate, o.calibration_images, g.metadata);
        engine::quantize_int8(g, engine::minmax_ranges(g, inputs, 1));
        std::printf("quantized to int8 with min-max ranges from %zu images of %s\n", inputs.size(), o.calibrate.c_str());
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
    sub->add_option("--model,-m", opt->model, "Run folder, model.pt, .tflite, or an .fse to rebuild")->required();
    sub->add_option("--out,-o", opt->out, "Engine file to write (.fse)")->required();
    sub->add_option("--labels", opt->labels, "Labels file (one per line) for a .tflite model");
    sub->add_option("--calibrate", opt->calibrate,
                    "Quantize to int8, with min-max activation ranges from images in this folder (recursive). "
                    "`optimize` calibrates a trained run more carefully (entropy / percentile per tensor)");
    sub->add_option("--input-size", opt->input_size,
                    "Square input size of the engine (default: the model's). 225 instead of 224 makes every stride-2 "
                    "padding of MobileNetV2 symmetric, which XNNPACK's sparse path on ARM needs (docs/arm64.md)")
        ->check(CLI::Range(16, 4096));
    sub->add_option("--calibration-images", opt->calibration_images, "Images drawn from --calibrate")
        ->check(CLI::Range(1, 100000));
    sub->callback([opt]() { run_build(*opt); });
}

}  // namespace

FIRESIGHT_COMMAND(build, 50, add_build);

}  // namespace firesight::cli
