// firesight export: an engine (or anything build accepts) as ONNX, for TensorRT, ONNX Runtime,
// OpenVINO or OpenCV DNN.
#include <cstdio>

#include "commands.h"
#include "firesight/model/engine_convert.h"
#include "firesight/engine/ir.h"
#include "firesight/builder/tflite_graph.h"
#include "firesight/engine/format.h"
#include "firesight/common/error.h"
#include "firesight/model/trained_model.h"
#ifdef FIRESIGHT_HAVE_ONNX_EXPORT
#include "firesight/builder/onnx_export.h"
#endif

namespace firesight::cli {
namespace {

struct ExportOptions {
    std::string model, onnx;
    bool uint8_activations = false;
};

void run_export(const ExportOptions& o) {
#ifdef FIRESIGHT_HAVE_ONNX_EXPORT
    const std::filesystem::path in = o.model;
    std::error_code ec;
    if (!std::filesystem::exists(in, ec)) throw Error(o.model + ": no such file or directory");
    engine::Graph g;
    if (in.extension() == ".fse") {
        g = engine::load_graph(in);
    } else if (in.extension() == ".tflite") {
        g = engine::graph_from_tflite_file(in);
    } else {
        g = model::trained_model_to_graph(model::load_trained_model(in));
    }
    engine::save_onnx(g, o.onnx, {o.uint8_activations});
    std::printf("%s: ONNX opset %d%s, input NCHW 1x3x%dx%d, outputs:", o.onnx.c_str(), engine::onnx_opset(g),
                engine::onnx_opset(g) < 13 ? ""
                : o.uint8_activations ? " (int8 as QDQ with the engine's scales and zero points, activations as uint8)"
                                      : " (int8 as QDQ, the engine's scales and zero points)", g.metadata.size, g.metadata.size);
    for (auto t : g.outputs) std::printf(" %s", g.tensors[static_cast<std::size_t>(t)].name.c_str());
    std::printf(", %llu bytes\n", static_cast<unsigned long long>(std::filesystem::file_size(o.onnx)));
    std::printf("preprocess: resize shorter side to %d, centre crop %d, RGB, (pixel - %g) * %g\n", g.metadata.resize_shorter,
                g.metadata.size, g.metadata.mean, g.metadata.scale);
#else
    throw Error("this firesight was built without ONNX export (install libonnx-dev and libprotobuf-dev)");
#endif
}

void add_export(CLI::App& app) {
    auto opt = std::make_shared<ExportOptions>();
    auto* sub = app.add_subcommand("export", "Export a model as ONNX (NCHW; opset 10 for fp32, QDQ opset 13 for int8 engines)");
    sub->add_option("--model,-m", opt->model, "Engine file (.fse), .tflite or trained run")->required();
    sub->add_option("--onnx", opt->onnx, "ONNX file to write")->required();
    sub->add_flag("--uint8-activations", opt->uint8_activations,
                  "Int8 engines: activations as uint8 (same real values), which ONNX Runtime's x86 CPU kernels fuse everywhere");
    sub->callback([opt]() { run_export(*opt); });
}

}  // namespace

FIRESIGHT_COMMAND(export, 55, add_export);

}  // namespace firesight::cli
