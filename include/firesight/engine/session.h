// The firesight runtime's public API: load an engine file (.fse), inspect its inputs, outputs and
// metadata, and run it on preprocessed tensors with the reference, XNNPACK or native-int8 backend.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <vector>

#include "firesight/engine/backend.h"
#include "firesight/engine/types.h"

namespace firesight::engine {

struct SessionOptions {
    Backend backend = Backend::Auto;
    int threads = 1;
    // Lets XNNPACK run f32 graphs in its sparse NCHW mode (XNN_FLAG_HINT_SPARSE_INFERENCE).
    // XNNPACK itself decides: only on ARM or x86 without AVX, for f32 graphs with a 3x3 stride-2
    // first conv on 3 channels with padding 1 on every side, only 1x1 / depthwise / add / clamp
    // ops up to a global average pool, and more than 2/3 zeros over all those 1x1 conv weights
    // (see xnnpack_executor.cpp); otherwise it runs dense, exactly as with sparse = false.
    bool sparse = true;
    // Keeps the feature map that the graph's global average pool reads (dequantized in int8 graphs)
    // after each run, for class_activation_map(). Needs a graph that ends in global average pool ->
    // [reshape] -> linear layer (fully connected, or a 1x1 conv on the pooled 1x1 map) -> softmax;
    // the session refuses others. Costs one feature-map output (7x7x1280 floats per image for
    // MobileNetV2 at 224) and XNNPACK's sparse mode, which never runs with an extra output.
    bool class_activation_maps = false;
};

// Where in the input the model found a class: its final linear layer applied at every position of
// the last feature map instead of to the pooled average (CAM, Zhou et al. 2016).
struct ActivationMap {
    int height = 0, width = 0;
    std::vector<float> values;  // height x width, row-major; position (y, x) covers that part of the input
};

class Executor;     // a backend's compiled form of the graph
struct LinearHead;  // the weights class_activation_map() applies

// A loaded engine: graph and weights (memory-mapped when loaded from a file). Shared by sessions.
class Engine {
public:
    static std::shared_ptr<const Engine> load(const std::filesystem::path& path);
    static std::shared_ptr<const Engine> from_graph(Graph g);
    ~Engine();
    const Graph& graph() const { return *graph_; }
    const Metadata& metadata() const;
    std::vector<TensorDesc> inputs() const;
    std::vector<TensorDesc> outputs() const;
    std::int64_t macs() const;

private:
    Engine();
    std::unique_ptr<Graph> graph_;
};

// One inference context: buffers are planned on the first run for a batch size and reused, so
// runs after the first allocate nothing. Not thread-safe; use one session per thread.
class Session {
public:
    Session(std::shared_ptr<const Engine> engine, SessionOptions options = {});
    ~Session();
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    const Engine& engine() const { return *engine_; }
    // options().backend as given (possibly Auto); backend() is the one this session runs on.
    const SessionOptions& options() const { return options_; }
    Backend backend() const { return backend_; }
    // Plans buffers (and, for xnnpack, packs weights) for this batch size now rather than on
    // the first run.
    void prepare(int batch = 1);
    // Runs on `batch` inputs laid out contiguously (NHWC f32 for input 0): `input` must hold
    // exactly batch x input_size() floats, or firesight::Error says how many it should. Returns
    // pointers to the outputs, valid until the next run.
    const std::vector<const float*>& run(std::span<const float> input, int batch = 1);
    // Input 0's element count per batch item (H x W x C).
    std::int64_t input_size() const;
    // Output i's element count per batch item.
    std::int64_t output_size(int i) const;
    // Probabilities (output 0) of each batch item.
    std::vector<std::vector<float>> probabilities(std::span<const float> input, int batch = 1);
    // Output 1 when the graph has one (the logits), else output 0.
    std::vector<std::vector<float>> logits(std::span<const float> input, int batch = 1);
    // After a run: class `cls`'s activation map for batch item `item`, sum over channels k of
    // W[cls][k] * F[y][x][k] (F the feature map before the global average pool, W the linear
    // layer's weights, bias left out), so its mean over positions is the class logit minus its bias.
    // Needs SessionOptions::class_activation_maps.
    ActivationMap class_activation_map(int cls, int item = 0) const;

private:
    std::shared_ptr<const Engine> engine_;
    SessionOptions options_;
    Backend backend_ = Backend::Reference;
    std::unique_ptr<Executor> executor_;
    int planned_batch_ = 0;
    std::vector<const float*> outputs_;
    // With class_activation_maps: the engine the executor runs (engine_'s graph plus the feature
    // map as a last output), the linear head's weights, and the last run's feature map.
    std::shared_ptr<const Engine> cam_engine_;
    std::shared_ptr<const LinearHead> head_;
    const float* features_ = nullptr;
    int features_batch_ = 0;
};

}  // namespace firesight::engine
