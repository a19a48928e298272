// Graph IR helpers and the validator: shape and type inference over a whole graph.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "firesight/engine/ir.h"
#include "firesight/common/error.h"
#include "ops/op_def.h"

namespace firesight::engine {

const char* dtype_name(DType t) {
    switch (t) {
        case DType::F32: return "f32";
        case DType::I8: return "i8";
        case DType::I32: return "i32";
    }
    return "?";
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

using Shape = std::vector<std::int32_t>;
using ops::product;
using ops::shape_str;

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
        if (op.outputs.size() != 1) throw Error(what + ": must have exactly one output");
        const auto out_idx = op.outputs[0];
        if (out_idx < 0 || out_idx >= nt) throw Error(what + ": output index " + std::to_string(out_idx) + " is out of range");
        const Tensor& out_t = g.tensors[static_cast<std::size_t>(out_idx)];
        if (ready[static_cast<std::size_t>(out_idx)]) throw Error(what + ": output '" + out_t.name + "' is written twice or is a constant/input");
        if (static_cast<std::uint8_t>(op.activation) > 2) throw Error(what + ": activation is out of range");
        const ops::OpDef* def = ops::find_op(op.kind);
        if (!def) throw Error(what + ": unknown op kind " + std::to_string(static_cast<int>(op.kind)));
        // The op's own checks and shape, in its file (src/engine/ops/<op>.cpp).
        const auto [out, out_type] = def->infer(ops::ShapeContext(g, op, oi, shapes, ready));
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

std::vector<std::int32_t> infer_op_output_shape(const Graph& g, std::size_t op_index, const std::vector<Shape>& shapes) {
    if (op_index >= g.ops.size()) throw Error("graph: op " + std::to_string(op_index) + " is out of range");
    if (shapes.size() != g.tensors.size()) throw Error("graph: one shape per tensor expected");
    const Op& op = g.ops[op_index];
    const ops::OpDef* def = ops::find_op(op.kind);
    if (!def) throw Error("op " + std::to_string(op_index) + ": unknown op kind " + std::to_string(static_cast<int>(op.kind)));
    if (op.outputs.size() != 1 || op.outputs[0] < 0 || static_cast<std::size_t>(op.outputs[0]) >= g.tensors.size())
        throw Error("op " + std::to_string(op_index) + ": must have exactly one output in range");
    std::vector<char> ready(shapes.size());
    for (std::size_t i = 0; i < shapes.size(); ++i) ready[i] = !shapes[i].empty();
    return def->infer(ops::ShapeContext(g, op, op_index, shapes, ready)).shape;
}

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
