// Graph IR helpers and the validator: shape and type inference over a whole graph.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "firesight/engine/ir.h"
#include "firesight/common/error.h"

namespace firesight::engine {

const char* dtype_name(DType t) {
    switch (t) {
        case DType::F32: return "f32";
        case DType::I8: return "i8";
        case DType::I32: return "i32";
    }
    return "?";
}

const char* op_kind_name(OpKind k) {
    switch (k) {
        case OpKind::Conv2D: return "Conv2D";
        case OpKind::DepthwiseConv2D: return "DepthwiseConv2D";
        case OpKind::Add: return "Add";
        case OpKind::GlobalAveragePool: return "GlobalAveragePool";
        case OpKind::FullyConnected: return "FullyConnected";
        case OpKind::Relu: return "Relu";
        case OpKind::Relu6: return "Relu6";
        case OpKind::Softmax: return "Softmax";
        case OpKind::Reshape: return "Reshape";
        case OpKind::Quantize: return "Quantize";
        case OpKind::Dequantize: return "Dequantize";
        case OpKind::BatchNorm: return "BatchNorm";
        case OpKind::Identity: return "Identity";
    }
    return "unknown";
}

const char* activation_name(Activation a) {
    switch (a) {
        case Activation::None: return "none";
        case Activation::Relu: return "relu";
        case Activation::Relu6: return "relu6";
    }
    return "?";
}

std::size_t dtype_size(DType t) { return t == DType::I8 ? 1 : 4; }

const void* Tensor::bytes() const {
    if (external) return external;
    switch (dtype) {
        case DType::F32: return owned.data();
        case DType::I8: return owned_i8.data();
        case DType::I32: return owned_i32.data();
    }
    return nullptr;
}

void* Tensor::allocate_owned() {
    const auto n = static_cast<std::size_t>(element_count());
    external = nullptr;
    switch (dtype) {
        case DType::F32: owned.resize(n); return owned.data();
        case DType::I8: owned_i8.resize(n); return owned_i8.data();
        case DType::I32: owned_i32.resize(n); return owned_i32.data();
    }
    throw Error("tensor '" + name + "': unknown dtype");
}

std::int64_t Tensor::owned_count() const {
    switch (dtype) {
        case DType::F32: return static_cast<std::int64_t>(owned.size());
        case DType::I8: return static_cast<std::int64_t>(owned_i8.size());
        case DType::I32: return static_cast<std::int64_t>(owned_i32.size());
    }
    return 0;
}

std::int64_t Tensor::element_count() const {
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    return n;
}

std::int32_t Graph::add_tensor(Tensor t) {
    tensors.push_back(std::move(t));
    return static_cast<std::int32_t>(tensors.size() - 1);
}

std::int32_t Graph::add_constant(std::string name, std::vector<std::int32_t> shape, std::vector<float> values) {
    Tensor t;
    t.name = std::move(name);
    t.shape = std::move(shape);
    t.constant = true;
    t.owned = std::move(values);
    if (t.element_count() != static_cast<std::int64_t>(t.owned.size()))
        throw Error("constant '" + t.name + "': " + std::to_string(t.owned.size()) + " values for its shape");
    return add_tensor(std::move(t));
}

std::int32_t Graph::add_constant_i8(std::string name, std::vector<std::int32_t> shape, std::vector<std::int8_t> values,
                                    Quantization quant) {
    Tensor t;
    t.name = std::move(name);
    t.shape = std::move(shape);
    t.dtype = DType::I8;
    t.quant = std::move(quant);
    t.constant = true;
    t.owned_i8 = std::move(values);
    if (t.element_count() != t.owned_count())
        throw Error("constant '" + t.name + "': " + std::to_string(t.owned_count()) + " values for its shape");
    return add_tensor(std::move(t));
}

std::int32_t Graph::add_constant_i32(std::string name, std::vector<std::int32_t> shape, std::vector<std::int32_t> values,
                                     Quantization quant) {
    Tensor t;
    t.name = std::move(name);
    t.shape = std::move(shape);
    t.dtype = DType::I32;
    t.quant = std::move(quant);
    t.constant = true;
    t.owned_i32 = std::move(values);
    if (t.element_count() != t.owned_count())
        throw Error("constant '" + t.name + "': " + std::to_string(t.owned_count()) + " values for its shape");
    return add_tensor(std::move(t));
}

namespace {

using Shape = std::vector<std::int32_t>;

std::string shape_str(const Shape& s) {
    std::string r = "[";
    for (std::size_t i = 0; i < s.size(); ++i) r += (i ? "," : "") + std::to_string(s[i]);
    return r + "]";
}

std::int64_t product(const Shape& s, std::size_t from = 0) {
    std::int64_t n = 1;
    for (std::size_t i = from; i < s.size(); ++i) n *= s[i];
    return n;
}

// Output extent of a strided window along one axis, or <= 0 when the window does not fit.
std::int64_t conv_out(std::int64_t in, std::int64_t pad0, std::int64_t pad1, std::int64_t k, std::int64_t stride,
                      std::int64_t dilation) {
    const std::int64_t eff = (k - 1) * dilation + 1;
    const std::int64_t span = in + pad0 + pad1 - eff;
    return span < 0 ? 0 : span / stride + 1;
}

}  // namespace

std::vector<Shape> infer_shapes(const Graph& g, int batch) {
    if (batch < 1) throw Error("graph: batch size must be at least 1");
    const auto nt = static_cast<std::int32_t>(g.tensors.size());
    std::vector<Shape> shapes(g.tensors.size());
    std::vector<char> ready(g.tensors.size(), 0);
    constexpr std::int64_t kMaxElements = std::int64_t{1} << 31;
    for (std::int32_t i = 0; i < nt; ++i) {
        const auto& t = g.tensors[static_cast<std::size_t>(i)];
        const std::string what = "tensor " + std::to_string(i) + " '" + t.name + "'";
        if (t.shape.size() > 6) throw Error(what + ": rank " + std::to_string(t.shape.size()) + " is over 6");
        std::int64_t n = 1;
        for (auto d : t.shape) {
            if (d < 1 || d > (1 << 24)) throw Error(what + ": dimension " + std::to_string(d) + " is out of range");
            n *= d;
            if (n > kMaxElements) throw Error(what + ": too many elements");
        }
        if (!t.quant.empty()) {
            if (t.quant.zero_point.size() != t.quant.scale.size())
                throw Error(what + ": quantization has " + std::to_string(t.quant.scale.size()) + " scales and " +
                            std::to_string(t.quant.zero_point.size()) + " zero points");
            if (t.quant.scale.size() > 1 &&
                (t.quant.axis < 0 || static_cast<std::size_t>(t.quant.axis) >= t.shape.size() ||
                 t.shape[static_cast<std::size_t>(t.quant.axis)] != static_cast<std::int32_t>(t.quant.scale.size())))
                throw Error(what + ": per-channel quantization does not match axis " + std::to_string(t.quant.axis));
            for (float s : t.quant.scale)
                if (!(s > 0.f) || !std::isfinite(s)) throw Error(what + ": quantization scale must be positive");
            for (auto z : t.quant.zero_point) {
                if (t.dtype == DType::I8 && (z < -128 || z > 127))
                    throw Error(what + ": zero point " + std::to_string(z) + " is outside int8");
                if (t.dtype != DType::I8 && z != 0) throw Error(what + ": zero point of a " + dtype_name(t.dtype) + " tensor must be 0");
            }
        }
        if (t.constant) {
            if (t.dtype != DType::F32 && t.quant.empty()) throw Error(what + ": an " + std::string(dtype_name(t.dtype)) + " constant needs quantization");
            if (!t.bytes() && n > 0) throw Error(what + ": constant without data");
            if (!t.external && t.owned_count() != n)
                throw Error(what + ": constant has " + std::to_string(t.owned_count()) + " values for shape " + shape_str(t.shape));
            shapes[static_cast<std::size_t>(i)] = t.shape;
            ready[static_cast<std::size_t>(i)] = 1;
        }
    }
    if (g.inputs.empty()) throw Error("graph: has no inputs");
    if (g.outputs.empty()) throw Error("graph: has no outputs");
    for (auto in : g.inputs) {
        if (in < 0 || in >= nt) throw Error("graph: input index " + std::to_string(in) + " is out of range");
        const auto& t = g.tensors[static_cast<std::size_t>(in)];
        if (t.constant) throw Error("graph: input '" + t.name + "' is a constant");
        if (t.shape.empty()) throw Error("graph: input '" + t.name + "' has rank 0");
        if (ready[static_cast<std::size_t>(in)]) throw Error("graph: input '" + t.name + "' listed twice");
        auto s = t.shape;
        s[0] = batch;
        shapes[static_cast<std::size_t>(in)] = s;
        ready[static_cast<std::size_t>(in)] = 1;
    }

    for (std::size_t oi = 0; oi < g.ops.size(); ++oi) {
        const Op& op = g.ops[oi];
        const std::string what = "op " + std::to_string(oi) + " (" + op_kind_name(op.kind) + ")";
        auto input = [&](std::size_t k, bool optional = false) -> const Tensor* {
            if (k >= op.inputs.size()) {
                if (optional) return nullptr;
                throw Error(what + ": missing input " + std::to_string(k));
            }
            const auto idx = op.inputs[k];
            if (idx == -1 && optional) return nullptr;
            if (idx < 0 || idx >= nt) throw Error(what + ": input " + std::to_string(k) + " index " + std::to_string(idx) + " is out of range");
            if (!ready[static_cast<std::size_t>(idx)])
                throw Error(what + ": input " + std::to_string(k) + " '" + g.tensors[static_cast<std::size_t>(idx)].name +
                            "' is not computed before it is used");
            return &g.tensors[static_cast<std::size_t>(idx)];
        };
        auto shape_of = [&](std::size_t k) -> const Shape& { return shapes[static_cast<std::size_t>(op.inputs[k])]; };
        auto need_f32 = [&](std::size_t k) {
            if (input(k)->dtype != DType::F32) throw Error(what + ": input " + std::to_string(k) + " must be f32");
        };
        auto need_const = [&](std::size_t k, std::int64_t count, const char* role) {
            const Tensor* t = input(k);
            if (!t->constant) throw Error(what + ": " + role + " must be a constant");
            if (count >= 0 && t->element_count() != count)
                throw Error(what + ": " + role + " has " + std::to_string(t->element_count()) + " values, expected " + std::to_string(count));
        };
        auto need_f32_weights = [&]() {
            for (std::size_t k = 1; k < 3 && k < op.inputs.size(); ++k)
                if (op.inputs[k] >= 0 && input(k)->dtype != DType::F32)
                    throw Error(what + ": input " + std::to_string(k) + " of a float op must be f32");
        };
        std::size_t expected_outputs = 1;
        if (op.outputs.size() != expected_outputs) throw Error(what + ": must have exactly one output");
        const auto out_idx = op.outputs[0];
        if (out_idx < 0 || out_idx >= nt) throw Error(what + ": output index " + std::to_string(out_idx) + " is out of range");
        const Tensor& out_t = g.tensors[static_cast<std::size_t>(out_idx)];
        if (ready[static_cast<std::size_t>(out_idx)]) throw Error(what + ": output '" + out_t.name + "' is written twice or is a constant/input");
        if (static_cast<std::uint8_t>(op.activation) > 2) throw Error(what + ": activation is out of range");
        // int8 layers: i8 activations with one scale; symmetric i8 filter quantized per tensor or
        // per channel along the output-channel axis; i32 bias with scale input_scale * filter_scale.
        auto is_i8 = [&](std::size_t k) { return input(k)->dtype == DType::I8; };
        auto need_q8 = [&](std::size_t k) {
            const Tensor* t = input(k);
            if (t->dtype != DType::I8 || t->quant.scale.size() != 1)
                throw Error(what + ": input " + std::to_string(k) + " '" + t->name + "' must be i8 with one scale (int8 op)");
        };
        auto need_q8_weights = [&](std::int32_t axis) {
            need_q8(0);
            const Tensor* w = input(1);
            const std::string wn = "filter '" + w->name + "'";
            if (w->dtype != DType::I8) throw Error(what + ": " + wn + " of an int8 op must be i8");
            const auto& q = w->quant;
            if (q.scale.size() > 1 && q.axis != axis)
                throw Error(what + ": " + wn + " is quantized per channel along axis " + std::to_string(q.axis) + ", expected " +
                            std::to_string(axis));
            for (auto z : q.zero_point)
                if (z != 0) throw Error(what + ": " + wn + " must be symmetric (zero point 0)");
            if (op.inputs.size() > 2 && op.inputs[2] >= 0) {
                const Tensor* b = input(2);
                const std::string bn = "bias '" + b->name + "'";
                if (b->dtype != DType::I32) throw Error(what + ": " + bn + " of an int8 op must be i32");
                if (b->quant.scale.size() != q.scale.size())
                    throw Error(what + ": " + bn + " has " + std::to_string(b->quant.scale.size()) + " scales, the filter " +
                                std::to_string(q.scale.size()));
                const float xs = input(0)->quant.scale[0];
                for (std::size_t c = 0; c < q.scale.size(); ++c) {
                    const float want = xs * q.scale[c];
                    if (std::fabs(b->quant.scale[c] - want) > 1e-5f * want)
                        throw Error(what + ": " + bn + " scale " + std::to_string(c) + " is not input scale x filter scale");
                }
            }
            if (out_t.dtype != DType::I8 || out_t.quant.scale.size() != 1)
                throw Error(what + ": output '" + out_t.name + "' of an int8 op must be i8 with one scale");
        };
        Shape out;
        DType out_type = DType::F32;
        switch (op.kind) {
            case OpKind::Conv2D:
            case OpKind::DepthwiseConv2D: {
                if (is_i8(0)) {
                    need_q8_weights(op.kind == OpKind::Conv2D ? 0 : 3);
                    out_type = DType::I8;
                } else {
                    need_f32(0);
                    need_f32_weights();
                }
                const Shape& x = shape_of(0);
                if (x.size() != 4) throw Error(what + ": input must be rank 4 (NHWC), got " + shape_str(x));
                need_const(1, -1, "filter");
                const Shape& w = input(1)->shape;
                if (w.size() != 4) throw Error(what + ": filter must be rank 4, got " + shape_str(w));
                if (op.stride_h < 1 || op.stride_w < 1 || op.stride_h > 64 || op.stride_w > 64) throw Error(what + ": stride out of range");
                if (op.dilation_h < 1 || op.dilation_w < 1 || op.dilation_h > 64 || op.dilation_w > 64) throw Error(what + ": dilation out of range");
                for (auto p : {op.pad_top, op.pad_left, op.pad_bottom, op.pad_right})
                    if (p < 0 || p > 1024) throw Error(what + ": padding out of range");
                std::int32_t oc;
                if (op.kind == OpKind::Conv2D) {
                    if (op.groups < 1 || x[3] % op.groups != 0 || w[0] % op.groups != 0)
                        throw Error(what + ": groups " + std::to_string(op.groups) + " do not divide the channels");
                    if (w[3] * op.groups != x[3])
                        throw Error(what + ": filter " + shape_str(w) + " does not match input channels " + std::to_string(x[3]));
                    oc = w[0];
                } else {
                    if (op.depth_multiplier < 1) throw Error(what + ": depth_multiplier must be positive");
                    if (w[0] != 1 || w[3] != x[3] * op.depth_multiplier)
                        throw Error(what + ": filter " + shape_str(w) + " does not match input channels " + std::to_string(x[3]));
                    oc = w[3];
                }
                if (op.inputs.size() > 2 && op.inputs[2] >= 0) need_const(2, oc, "bias");
                const auto oh = conv_out(x[1], op.pad_top, op.pad_bottom, w[1], op.stride_h, op.dilation_h);
                const auto ow = conv_out(x[2], op.pad_left, op.pad_right, w[2], op.stride_w, op.dilation_w);
                if (oh < 1 || ow < 1) throw Error(what + ": the kernel does not fit the padded input " + shape_str(x));
                out = {x[0], static_cast<std::int32_t>(oh), static_cast<std::int32_t>(ow), oc};
                break;
            }
            case OpKind::Add: {
                if (is_i8(0) || is_i8(1)) {
                    need_q8(0);
                    need_q8(1);
                    if (out_t.dtype != DType::I8 || out_t.quant.scale.size() != 1)
                        throw Error(what + ": output '" + out_t.name + "' of an int8 add must be i8 with one scale");
                    out_type = DType::I8;
                } else {
                    need_f32(0);
                    need_f32(1);
                }
                if (shape_of(0) != shape_of(1))
                    throw Error(what + ": input shapes " + shape_str(shape_of(0)) + " and " + shape_str(shape_of(1)) + " differ");
                out = shape_of(0);
                break;
            }
            case OpKind::GlobalAveragePool: {
                if (is_i8(0)) {
                    need_q8(0);
                    if (out_t.dtype != DType::I8 || out_t.quant.scale.size() != 1)
                        throw Error(what + ": output '" + out_t.name + "' of an int8 pool must be i8 with one scale");
                    out_type = DType::I8;
                } else {
                    need_f32(0);
                }
                const Shape& x = shape_of(0);
                if (x.size() != 4) throw Error(what + ": input must be rank 4 (NHWC), got " + shape_str(x));
                out = op.keep_dims ? Shape{x[0], 1, 1, x[3]} : Shape{x[0], x[3]};
                break;
            }
            case OpKind::FullyConnected: {
                if (is_i8(0)) {
                    need_q8_weights(0);
                    out_type = DType::I8;
                } else {
                    need_f32(0);
                    need_f32_weights();
                }
                const Shape& x = shape_of(0);
                need_const(1, -1, "filter");
                const Shape& w = input(1)->shape;
                if (w.size() != 2) throw Error(what + ": filter must be rank 2, got " + shape_str(w));
                if (x.size() < 2 || product(x, 1) != w[1])
                    throw Error(what + ": input " + shape_str(x) + " does not flatten to " + std::to_string(w[1]) + " features");
                if (op.inputs.size() > 2 && op.inputs[2] >= 0) need_const(2, w[0], "bias");
                out = {x[0], w[0]};
                break;
            }
            case OpKind::Relu:
            case OpKind::Relu6:
            case OpKind::Identity:
                need_f32(0);
                out = shape_of(0);
                break;
            case OpKind::Softmax:
                need_f32(0);
                if (!(op.beta > 0.f) || !std::isfinite(op.beta)) throw Error(what + ": beta must be positive");
                out = shape_of(0);
                break;
            case OpKind::Reshape: {
                input(0);
                const Shape& x = shape_of(0);
                if (op.new_shape.empty() || op.new_shape.size() > 6) throw Error(what + ": new_shape must have rank 1..6");
                out = op.new_shape;
                out[0] = x[0];
                for (std::size_t i = 1; i < out.size(); ++i)
                    if (out[i] < 1) throw Error(what + ": new_shape " + shape_str(op.new_shape) + " has a non-positive dimension");
                if (product(out) != product(x))
                    throw Error(what + ": cannot reshape " + shape_str(x) + " to " + shape_str(op.new_shape));
                out_type = input(0)->dtype;
                break;
            }
            case OpKind::Quantize:
                need_f32(0);
                if (out_t.dtype != DType::I8 || out_t.quant.scale.size() != 1)
                    throw Error(what + ": output must be i8 with one scale");
                out = shape_of(0);
                out_type = DType::I8;
                break;
            case OpKind::Dequantize: {
                const Tensor* x = input(0);
                if (x->dtype != DType::I8 || x->quant.scale.size() != 1) throw Error(what + ": input must be i8 with one scale");
                out = shape_of(0);
                break;
            }
            case OpKind::BatchNorm: {
                need_f32(0);
                const Shape& x = shape_of(0);
                if (x.empty()) throw Error(what + ": input has rank 0");
                for (std::size_t k = 1; k <= 4; ++k) need_const(k, x.back(), "batch norm parameter");
                if (!(op.epsilon >= 0.f)) throw Error(what + ": epsilon must be non-negative");
                out = x;
                break;
            }
            default:
                throw Error(what + ": unknown op kind " + std::to_string(static_cast<int>(op.kind)));
        }
        if (out_t.constant) throw Error(what + ": output '" + out_t.name + "' is a constant");
        if (out_t.dtype != out_type)
            throw Error(what + ": output '" + out_t.name + "' is " + dtype_name(out_t.dtype) + ", the op produces " + dtype_name(out_type));
        // The declared (batch-1) shape must agree with what the op computes.
        Shape declared = out_t.shape;
        if (!declared.empty()) declared[0] = out[0];
        if (declared != out)
            throw Error(what + ": output '" + out_t.name + "' is declared " + shape_str(out_t.shape) + " but the op produces " + shape_str(out));
        shapes[static_cast<std::size_t>(out_idx)] = out;
        ready[static_cast<std::size_t>(out_idx)] = 1;
    }
    for (auto o : g.outputs) {
        if (o < 0 || o >= nt) throw Error("graph: output index " + std::to_string(o) + " is out of range");
        if (!ready[static_cast<std::size_t>(o)]) throw Error("graph: output '" + g.tensors[static_cast<std::size_t>(o)].name + "' is never computed");
        if (g.tensors[static_cast<std::size_t>(o)].dtype != DType::F32) throw Error("graph: outputs must be f32");
    }
    if (g.tensors[static_cast<std::size_t>(g.inputs[0])].dtype != DType::F32) throw Error("graph: input 0 must be f32");
    return shapes;
}

void validate(const Graph& g) { (void)infer_shapes(g, 1); }

std::int64_t count_macs(const Graph& g) {
    const auto shapes = infer_shapes(g, 1);
    std::int64_t macs = 0;
    for (const auto& op : g.ops) {
        const auto& out = shapes[static_cast<std::size_t>(op.outputs[0])];
        const auto& w = g.tensors[static_cast<std::size_t>(op.inputs[1 < op.inputs.size() ? 1 : 0])].shape;
        if (op.kind == OpKind::Conv2D) macs += product(out) * w[1] * w[2] * w[3];
        else if (op.kind == OpKind::DepthwiseConv2D) macs += product(out) * w[1] * w[2];
        else if (op.kind == OpKind::FullyConnected) macs += product(out) * w[1];
    }
    return macs;
}

}  // namespace firesight::engine
