// The engine's graph IR: NHWC tensors and the ops the runtime executes, the validator that
// checks a whole graph, the optimisation passes, and the builders that produce a graph.
#pragma once
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "firesight/engine.h"

namespace firesight::tflite {
struct Model;
}

namespace firesight::engine {

enum class OpKind : std::uint16_t {
    Conv2D = 1,           // inputs: x [N,H,W,C], filter [O,KH,KW,C/groups], bias [O] (optional)
    DepthwiseConv2D = 2,  // inputs: x [N,H,W,C], filter [1,KH,KW,C*multiplier], bias (optional)
    Add = 3,              // two inputs of the same shape
    GlobalAveragePool = 4,// [N,H,W,C] -> [N,C] (or [N,1,1,C] with keep_dims)
    FullyConnected = 5,   // x [N,...,I] flattened to [N,I], filter [O,I], bias [O] (optional)
    Relu = 6,
    Relu6 = 7,
    Softmax = 8,          // over the last axis, with beta
    Reshape = 9,          // new_shape; its first entry is the batch and always follows the input
    Quantize = 10,        // f32 -> i8 with the output tensor's quantization
    Dequantize = 11,      // i8 -> f32 with the input tensor's quantization
    BatchNorm = 12,       // inputs: x, gamma, beta, mean, variance (per channel), epsilon
    Identity = 13,
};
const char* op_kind_name(OpKind k);

enum class Activation : std::uint8_t { None = 0, Relu = 1, Relu6 = 2 };
const char* activation_name(Activation a);

struct Tensor {
    std::string name;
    std::vector<std::int32_t> shape;  // NHWC; shape[0] is the batch for non-constant tensors
    DType dtype = DType::F32;
    Quantization quant;
    // Constant tensors are f32. Their data is either owned here or points into a loaded file
    // (kept alive by `storage`), so a memory-mapped engine never copies its weights.
    bool constant = false;
    std::vector<float> owned;
    const float* external = nullptr;
    std::shared_ptr<const void> storage;

    const float* data() const { return external ? external : owned.data(); }
    std::int64_t element_count() const;
};

struct Op {
    OpKind kind = OpKind::Identity;
    std::vector<std::int32_t> inputs, outputs;  // tensor indices; -1 = optional input absent
    Activation activation = Activation::None;
    std::int32_t stride_h = 1, stride_w = 1, dilation_h = 1, dilation_w = 1;
    std::int32_t pad_top = 0, pad_left = 0, pad_bottom = 0, pad_right = 0;
    std::int32_t groups = 1, depth_multiplier = 1;
    std::int32_t keep_dims = 0;
    float beta = 1.0f, epsilon = 1e-5f;
    std::vector<std::int32_t> new_shape;
};

struct Graph {
    std::vector<Tensor> tensors;
    std::vector<Op> ops;  // topological order
    std::vector<std::int32_t> inputs, outputs;
    Metadata metadata;

    std::int32_t add_tensor(Tensor t);
    std::int32_t add_constant(std::string name, std::vector<std::int32_t> shape, std::vector<float> values);
};

// Checks indices, topological order, types and shapes of every op. Returns the shapes of all
// tensors for the given batch size (non-constant tensors get `batch` as dim 0).
// Throws firesight::Error naming the op and the field.
std::vector<std::vector<std::int32_t>> infer_shapes(const Graph& g, int batch = 1);
void validate(const Graph& g);
// MACs of one batch-1 inference (convolutions and fully connected).
std::int64_t count_macs(const Graph& g);

// ---- passes: each returns how many changes it made --------------------------------------------
int fold_batch_norm(Graph& g);        // BatchNorm after a conv/depthwise/fc with constant weights
int fuse_activations(Graph& g);       // Relu/Relu6 into the op that produces their only input
int remove_identities(Graph& g);      // Identity ops and reshapes to the same shape
int fold_constants(Graph& g);         // ops whose inputs are all constant
int remove_dead(Graph& g);            // ops and tensors the outputs do not need
// All of the above until nothing changes. Returns a summary line for logs.
std::string optimize(Graph& g);

// ---- builders ------------------------------------------------------------------------------
// From a parsed .tflite: weights dequantized to float, Q/DQ pairs dropped, TF SAME padding made
// explicit for the model's input size. Outputs: probabilities, then logits.
Graph graph_from_tflite(const tflite::Model& m);
// Builds from a .tflite file, with labels from `labels` or imagenet_labels.txt beside the file.
Graph graph_from_tflite_file(const std::filesystem::path& path, const std::filesystem::path& labels = {});

// ---- the engine file --------------------------------------------------------------------------
std::string serialize(const Graph& g);
void save_engine(const Graph& g, const std::filesystem::path& path);
// Parses an engine file held in memory. The weights of the returned graph point into `bytes`,
// which `keep_alive` must keep valid (pass the owner of the memory).
Graph parse_engine(const std::uint8_t* bytes, std::size_t size, std::shared_ptr<const void> keep_alive,
                   const std::string& name = "engine");
// Memory-maps the file (read-only) and parses it.
Graph load_graph(const std::filesystem::path& path);

// Runs the graph with the reference kernels and returns every tensor's values (for the constant
// folding pass and for tests).
std::vector<std::vector<float>> run_reference_all(const Graph& g, const std::vector<const float*>& inputs, int batch);

std::uint32_t crc32(const void* data, std::size_t size);

}  // namespace firesight::engine
