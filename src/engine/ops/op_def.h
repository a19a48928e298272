// One home per op kind: its name, its shape and type inference, and its float and int8 reference
// kernels. Each src/engine/ops/<op>.cpp defines one OpDef; registry.cpp indexes them by OpKind and
// is checked at compile time against kOpKindCount (engine/ir.h). The validator (infer_shapes), the
// reference executor and every backend's fallback go through this table, so adding an op is its
// file, its row, and whatever backends and builder steps take it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "firesight/engine/ir.h"

namespace firesight::engine::ops {

using Shape = std::vector<std::int32_t>;

// What an op's shape function sees: the op, its input tensors with the shapes inferred so far, its
// declared output, and the checks shared by several ops. Every check throws firesight::Error
// prefixed with "op <index> (<Kind>): ".
class ShapeContext {
public:
    ShapeContext(const Graph& g, const Op& op, std::size_t index, const std::vector<Shape>& shapes, const std::vector<char>& ready);

    const Op& op;
    const Tensor& output;  // the op's one output tensor, as declared

    const std::string& what() const { return what_; }
    [[noreturn]] void fail(const std::string& message) const;
    // Input k's tensor (computed before this op); nullptr for an absent optional input.
    const Tensor* input(std::size_t k, bool optional = false) const;
    const Shape& shape_of(std::size_t k) const;  // input k's inferred shape
    bool has_input(std::size_t k) const { return k < op.inputs.size() && op.inputs[k] >= 0; }
    bool is_i8(std::size_t k) const { return input(k)->dtype == DType::I8; }

    void need_f32(std::size_t k) const;
    // Input k is a constant with `count` values (any count when negative).
    void need_const(std::size_t k, std::int64_t count, const char* role) const;
    // The filter and bias (inputs 1 and 2, when present) of a float layer are f32.
    void need_f32_weights() const;
    // Input k is an i8 activation with one scale.
    void need_q8(std::size_t k) const;
    // The output is i8 with one scale; `role` names the op in the message ("int8 add").
    void need_q8_output(const char* role) const;
    // An int8 layer: i8 input with one scale; symmetric i8 filter quantized per tensor or per
    // channel along `axis` (the output channels); i32 bias with scale input_scale * filter_scale;
    // i8 output with one scale.
    void need_q8_weights(std::int32_t axis) const;
    // Strides and dilations in 1..64, padding in 0..1024 (convolutions).
    void need_window_attributes() const;
    // The types of a layer with weights: an int8 layer (need_q8_weights(filter_axis)) when input 0
    // is i8, else f32 input and weights. Returns the output's element type.
    DType need_layer_types(std::int32_t filter_axis) const;
    // The NHWC output of a (depthwise) convolution of input `x` by filter `w` [., KH, KW, .] with
    // `channels` output channels; fails when the kernel does not fit the padded input.
    Shape window_output_shape(const Shape& x, const Shape& w, std::int32_t channels) const;

private:
    const Graph& g_;
    const std::vector<Shape>& shapes_;
    const std::vector<char>& ready_;
    std::string what_;
};

// What an op produces: its shape for the batch being inferred and its element type.
struct OutputType {
    Shape shape;
    DType dtype = DType::F32;
};

// The shape function of a float element-wise op (Relu, Relu6, Identity, HardSwish): input 0 is
// f32, the output has its shape.
OutputType infer_elementwise_f32(const ShapeContext& c);

// What a reference kernel sees: the op, every tensor's shape for the batch being run, and its
// values (data[i] for tensor i, constants included, each in its own dtype).
struct RunContext {
    const Graph& g;
    const Op& op;
    const std::vector<Shape>& shapes;
    const std::vector<void*>& data;

    const Tensor& input_tensor(std::size_t k) const { return g.tensors[static_cast<std::size_t>(op.inputs[k])]; }
    const Tensor& output_tensor() const { return g.tensors[static_cast<std::size_t>(op.outputs[0])]; }
    const Shape& input_shape(std::size_t k) const { return shapes[static_cast<std::size_t>(op.inputs[k])]; }
    const Shape& output_shape() const { return shapes[static_cast<std::size_t>(op.outputs[0])]; }
    std::int64_t output_count() const;
    // Input k's values; nullptr for an absent optional input.
    template <class T>
    const T* input(std::size_t k) const {
        if (k >= op.inputs.size() || op.inputs[k] < 0) return nullptr;
        return static_cast<const T*>(data[static_cast<std::size_t>(op.inputs[k])]);
    }
    template <class T>
    T* output() const {
        return static_cast<T*>(data[static_cast<std::size_t>(op.outputs[0])]);
    }
    // The fused activation over a float output, for kernels that do not apply it themselves.
    void apply_activation() const;
};

struct OpDef {
    const char* name;  // as op_kind_name() returns it
    // Checks the op's inputs and attributes and returns what it produces; throws through `c`.
    OutputType (*infer)(const ShapeContext& c);
    // The float kernel (for Quantize, Dequantize, Reshape and Identity: the kernel for any dtype).
    void (*reference)(const RunContext& c);
    // The int8 kernel, run when input 0 and the output are i8; nullptr when the op has no int8 form.
    void (*reference_q8)(const RunContext& c);
};

// The definition of `kind`; nullptr for a number that is no kind.
const OpDef* find_op(OpKind kind);
// The definition of `kind`; firesight::Error naming the number for one that is no kind.
const OpDef& op_def(OpKind kind);
// Whether `op` runs as int8 (i8 input 0 and i8 output), i.e. with OpDef::reference_q8.
bool runs_int8(const Graph& g, const Op& op);

// Output extent of a strided window along one axis, or 0 when the window does not fit.
std::int64_t window_output(std::int64_t in, std::int64_t pad0, std::int64_t pad1, std::int64_t k, std::int64_t stride,
                           std::int64_t dilation);
std::string shape_str(const Shape& s);
std::int64_t product(const Shape& s, std::size_t from = 0);

// Each op file's definition, in kind order.
extern const OpDef kConv2D, kDepthwiseConv2D, kAdd, kGlobalAveragePool, kFullyConnected, kRelu, kRelu6, kSoftmax, kReshape,
    kQuantize, kDequantize, kBatchNorm, kIdentity, kHardSwish;

}  // namespace firesight::engine::ops
