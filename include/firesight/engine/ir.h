// The engine's graph IR: NHWC tensors, the ops the runtime executes, and the validator that checks
// a whole graph and infers its shapes.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "firesight/engine/types.h"

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
    HardSwish = 14,       // x * relu6(x + 3) / 6
};
// Kinds are numbered 1..kOpKindCount (the engine file stores the number). A new kind takes the
// next number and raises this count; the op table (src/engine/ops/registry.cpp) is checked against
// it at compile time, so a kind without its definition does not build.
inline constexpr std::uint16_t kOpKindCount = 14;
// The kind's name ("Conv2D"), or "unknown" for a number that is no kind.
const char* op_kind_name(OpKind k);

enum class Activation : std::uint8_t { None = 0, Relu = 1, Relu6 = 2 };
const char* activation_name(Activation a);

struct Tensor {
    std::string name;
    std::vector<std::int32_t> shape;  // NHWC; shape[0] is the batch for non-constant tensors
    DType dtype = DType::F32;
    Quantization quant;
    // Constant tensors are f32, i8 (int8 weights) or i32 (int8 biases). Their data is either owned
    // here (in the vector of their dtype) or points into a loaded file (kept alive by `storage`),
    // so a memory-mapped engine never copies its weights.
    bool constant = false;
    std::vector<float> owned;
    std::vector<std::int8_t> owned_i8;
    std::vector<std::int32_t> owned_i32;
    const void* external = nullptr;
    std::shared_ptr<const void> storage;

    // The values of an f32 constant (nullptr for other dtypes, so misuse fails loudly).
    const float* data() const {
        if (dtype != DType::F32) return nullptr;
        return external ? static_cast<const float*>(external) : owned.data();
    }
    const std::int8_t* data_i8() const {
        if (dtype != DType::I8) return nullptr;
        return external ? static_cast<const std::int8_t*>(external) : owned_i8.data();
    }
    const std::int32_t* data_i32() const {
        if (dtype != DType::I32) return nullptr;
        return external ? static_cast<const std::int32_t*>(external) : owned_i32.data();
    }
    // A constant's values whatever its dtype (element_count() * dtype_size(dtype) bytes).
    const void* bytes() const;
    // Sizes the owned vector of this tensor's dtype to element_count() and returns it, for
    // loaders that expand values into the tensor.
    void* allocate_owned();
    // Elements held in the owned vector of this tensor's dtype.
    std::int64_t owned_count() const;
    std::int64_t element_count() const;
};

std::size_t dtype_size(DType t);

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
    std::int32_t add_constant_i8(std::string name, std::vector<std::int32_t> shape, std::vector<std::int8_t> values,
                                 Quantization quant);
    std::int32_t add_constant_i32(std::string name, std::vector<std::int32_t> shape, std::vector<std::int32_t> values,
                                  Quantization quant);
};

// Checks indices, topological order, types and shapes of every op. Returns the shapes of all
// tensors for the given batch size (non-constant tensors get `batch` as dim 0).
// Throws firesight::Error naming the op and the field.
std::vector<std::vector<std::int32_t>> infer_shapes(const Graph& g, int batch = 1);
void validate(const Graph& g);
// The output shape op `op_index` computes from the given shapes of its inputs (shapes[i] for
// tensor i; the others may be empty), without comparing it to the declared one: for passes that
// change shapes (set_input_size). Throws like infer_shapes when the op's checks fail.
std::vector<std::int32_t> infer_op_output_shape(const Graph& g, std::size_t op_index,
                                                const std::vector<std::vector<std::int32_t>>& shapes);
// MACs of one batch-1 inference (convolutions and fully connected).
std::int64_t count_macs(const Graph& g);

}  // namespace firesight::engine
