// The checks and accessors the op files share: ShapeContext (shape and type inference) and
// RunContext (reference kernels).
#include <cmath>

#include "../kernels/reference/kernels.h"
#include "firesight/common/error.h"
#include "op_def.h"

namespace firesight::engine::ops {

std::string shape_str(const Shape& s) {
    std::string r = "[";
    for (std::size_t i = 0; i < s.size(); ++i) r += (i ? "," : "") + std::to_string(s[i]);
    return r + "]";
}

std::int64_t product(const Shape& s, std::size_t from) {
    std::int64_t n = 1;
    for (std::size_t i = from; i < s.size(); ++i) n *= s[i];
    return n;
}

std::int64_t window_output(std::int64_t in, std::int64_t pad0, std::int64_t pad1, std::int64_t k, std::int64_t stride,
                           std::int64_t dilation) {
    const std::int64_t eff = (k - 1) * dilation + 1;
    const std::int64_t span = in + pad0 + pad1 - eff;
    return span < 0 ? 0 : span / stride + 1;
}

ShapeContext::ShapeContext(const Graph& g, const Op& op_, std::size_t index, const std::vector<Shape>& shapes,
                           const std::vector<char>& ready)
    : op(op_),
      output(g.tensors[static_cast<std::size_t>(op_.outputs[0])]),
      g_(g),
      shapes_(shapes),
      ready_(ready),
      what_("op " + std::to_string(index) + " (" + op_kind_name(op_.kind) + ")") {}

void ShapeContext::fail(const std::string& message) const { throw Error(what_ + ": " + message); }

const Tensor* ShapeContext::input(std::size_t k, bool optional) const {
    if (k >= op.inputs.size()) {
        if (optional) return nullptr;
        fail("missing input " + std::to_string(k));
    }
    const auto idx = op.inputs[k];
    if (idx == -1 && optional) return nullptr;
    const auto nt = static_cast<std::int32_t>(g_.tensors.size());
    if (idx < 0 || idx >= nt) fail("input " + std::to_string(k) + " index " + std::to_string(idx) + " is out of range");
    if (!ready_[static_cast<std::size_t>(idx)])
        fail("input " + std::to_string(k) + " '" + g_.tensors[static_cast<std::size_t>(idx)].name + "' is not computed before it is used");
    return &g_.tensors[static_cast<std::size_t>(idx)];
}

const Shape& ShapeContext::shape_of(std::size_t k) const {
    input(k);
    return shapes_[static_cast<std::size_t>(op.inputs[k])];
}

void ShapeContext::need_f32(std::size_t k) const {
    if (input(k)->dtype != DType::F32) fail("input " + std::to_string(k) + " must be f32");
}

void ShapeContext::need_const(std::size_t k, std::int64_t count, const char* role) const {
    const Tensor* t = input(k);
    if (!t->constant) fail(std::string(role) + " must be a constant");
    if (count >= 0 && t->element_count() != count)
        fail(std::string(role) + " has " + std::to_string(t->element_count()) + " values, expected " + std::to_string(count));
}

void ShapeContext::need_f32_weights() const {
    for (std::size_t k = 1; k < 3 && k < op.inputs.size(); ++k)
        if (op.inputs[k] >= 0 && input(k)->dtype != DType::F32) fail("input " + std::to_string(k) + " of a float op must be f32");
}

void ShapeContext::need_q8(std::size_t k) const {
    const Tensor* t = input(k);
    if (t->dtype != DType::I8 || t->quant.scale.size() != 1)
        fail("input " + std::to_string(k) + " '" + t->name + "' must be i8 with one scale (int8 op)");
}

void ShapeContext::need_q8_output(const char* role) const {
    if (output.dtype != DType::I8 || output.quant.scale.size() != 1)
        fail("output '" + output.name + "' of an " + role + " must be i8 with one scale");
}

void ShapeContext::need_q8_weights(std::int32_t axis) const {
    need_q8(0);
    const Tensor* w = input(1);
    const std::string wn = "filter '" + w->name + "'";
    if (w->dtype != DType::I8) fail(wn + " of an int8 op must be i8");
    const auto& q = w->quant;
    if (q.scale.size() > 1 && q.axis != axis)
        fail(wn + " is quantized per channel along axis " + std::to_string(q.axis) + ", expected " + std::to_string(axis));
    for (auto z : q.zero_point)
        if (z != 0) fail(wn + " must be symmetric (zero point 0)");
    if (op.inputs.size() > 2 && op.inputs[2] >= 0) {
        const Tensor* b = input(2);
        const std::string bn = "bias '" + b->name + "'";
        if (b->dtype != DType::I32) fail(bn + " of an int8 op must be i32");
        if (b->quant.scale.size() != q.scale.size())
            fail(bn + " has " + std::to_string(b->quant.scale.size()) + " scales, the filter " + std::to_string(q.scale.size()));
        const float xs = input(0)->quant.scale[0];
        for (std::size_t c = 0; c < q.scale.size(); ++c) {
            const float want = xs * q.scale[c];
            if (std::fabs(b->quant.scale[c] - want) > 1e-5f * want)
                fail(bn + " scale " + std::to_string(c) + " is not input scale x filter scale");
        }
    }
    need_q8_output("int8 op");
}

void ShapeContext::need_window_attributes() const {
    if (op.stride_h < 1 || op.stride_w < 1 || op.stride_h > 64 || op.stride_w > 64) fail("stride out of range");
    if (op.dilation_h < 1 || op.dilation_w < 1 || op.dilation_h > 64 || op.dilation_w > 64) fail("dilation out of range");
    for (auto p : {op.pad_top, op.pad_left, op.pad_bottom, op.pad_right})
        if (p < 0 || p > 1024) fail("padding out of range");
}

std::int64_t RunContext::output_count() const { return product(output_shape()); }

void RunContext::apply_activation() const {
    if (op.activation == Activation::None || output_tensor().dtype != DType::F32) return;
    float* y = output<float>();
    const std::int64_t n = output_count();
    for (std::int64_t i = 0; i < n; ++i) y[i] = ref::activate(y[i], op.activation);
}

DType ShapeContext::need_layer_types(std::int32_t filter_axis) const {
    if (is_i8(0)) {
        need_q8_weights(filter_axis);
        return DType::I8;
    }
    need_f32(0);
    need_f32_weights();
    return DType::F32;
}

Shape ShapeContext::window_output_shape(const Shape& x, const Shape& w, std::int32_t channels) const {
    const auto oh = window_output(x[1], op.pad_top, op.pad_bottom, w[1], op.stride_h, op.dilation_h);
    const auto ow = window_output(x[2], op.pad_left, op.pad_right, w[2], op.stride_w, op.dilation_w);
    if (oh < 1 || ow < 1) fail("the kernel does not fit the padded input " + shape_str(x));
    return {x[0], static_cast<std::int32_t>(oh), static_cast<std::int32_t>(ow), channels};
}

OutputType infer_elementwise_f32(const ShapeContext& c) {
    c.need_f32(0);
    return {c.shape_of(0), DType::F32};
}

}  // namespace firesight::engine::ops
