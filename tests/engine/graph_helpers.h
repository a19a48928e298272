// Small graphs for the engine tests, built op by op with random weights.
#pragma once
#include <algorithm>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "firesight/builder/passes.h"
#include "firesight/engine/session.h"
#include "firesight/engine/format.h"
#include "firesight/engine/ir.h"
#include "firesight/builder/quantize.h"
#include "firesight/engine/reference.h"

namespace firesight::engine::testing {

class GraphMaker {
public:
    explicit GraphMaker(unsigned seed = 1) : rng_(seed) {}
    Graph g;

    std::vector<float> random(std::size_t n, float lo = -1.f, float hi = 1.f) {
        std::uniform_real_distribution<float> d(lo, hi);
        std::vector<float> v(n);
        for (auto& x : v) x = d(rng_);
        return v;
    }
    std::int32_t act(std::vector<std::int32_t> shape, const std::string& name = "") {
        Tensor t;
        t.name = name.empty() ? "t" + std::to_string(g.tensors.size()) : name;
        t.shape = std::move(shape);
        return g.add_tensor(std::move(t));
    }
    std::int32_t input(std::vector<std::int32_t> shape) {
        const auto i = act(std::move(shape), "input");
        g.inputs.push_back(i);
        return i;
    }
    std::int32_t constant(std::vector<std::int32_t> shape, float lo = -1.f, float hi = 1.f) {
        std::size_t n = 1;
        for (auto d : shape) n *= static_cast<std::size_t>(d);
        return g.add_constant("c" + std::to_string(g.tensors.size()), shape, random(n, lo, hi));
    }
    const std::vector<std::int32_t>& shape(std::int32_t t) const { return g.tensors[static_cast<std::size_t>(t)].shape; }

    std::int32_t conv(std::int32_t x, int out, int k, int stride, std::array<int, 4> pad_tlbr, Activation a = Activation::None,
                      int groups = 1, bool bias = true, int dilation = 1) {
        const auto s = shape(x);
        Op op;
        op.kind = OpKind::Conv2D;
        op.groups = groups;
        op.stride_h = op.stride_w = stride;
        op.dilation_h = op.dilation_w = dilation;
        op.pad_top = pad_tlbr[0], op.pad_left = pad_tlbr[1], op.pad_bottom = pad_tlbr[2], op.pad_right = pad_tlbr[3];
        op.activation = a;
        const float r = 1.0f / std::sqrt(static_cast<float>(k * k * s[3] / groups));
        op.inputs = {x, constant({out, k, k, s[3] / groups}, -r, r)};
        if (bias) op.inputs.push_back(constant({out}, -0.1f, 0.1f));
        const int eff = (k - 1) * dilation + 1;
        const int oh = (s[1] + pad_tlbr[0] + pad_tlbr[2] - eff) / stride + 1, ow = (s[2] + pad_tlbr[1] + pad_tlbr[3] - eff) / stride + 1;
        op.outputs = {act({s[0], oh, ow, out})};
        g.ops.push_back(op);
        return op.outputs[0];
    }
    std::int32_t depthwise(std::int32_t x, int k, int stride, std::array<int, 4> pad_tlbr, Activation a = Activation::None,
                           int multiplier = 1) {
        const auto s = shape(x);
        Op op;
        op.kind = OpKind::DepthwiseConv2D;
        op.depth_multiplier = multiplier;
        op.stride_h = op.stride_w = stride;
        op.pad_top = pad_tlbr[0], op.pad_left = pad_tlbr[1], op.pad_bottom = pad_tlbr[2], op.pad_right = pad_tlbr[3];
        op.activation = a;
        const int oc = s[3] * multiplier;
        op.inputs = {x, constant({1, k, k, oc}, -0.5f, 0.5f), constant({oc}, -0.1f, 0.1f)};
        const int oh = (s[1] + pad_tlbr[0] + pad_tlbr[2] - k) / stride + 1, ow = (s[2] + pad_tlbr[1] + pad_tlbr[3] - k) / stride + 1;
        op.outputs = {act({s[0], oh, ow, oc})};
        g.ops.push_back(op);
        return op.outputs[0];
    }
    std::int32_t unary(OpKind kind, std::int32_t x) {
        Op op;
        op.kind = kind;
        op.inputs = {x};
        op.outputs = {act(shape(x))};
        g.ops.push_back(op);
        return op.outputs[0];
    }
    std::int32_t add(std::int32_t a, std::int32_t b, Activation act_ = Activation::None) {
        Op op;
        op.kind = OpKind::Add;
        op.activation = act_;
        op.inputs = {a, b};
        op.outputs = {act(shape(a))};
        g.ops.push_back(op);
        return op.outputs[0];
    }
    std::int32_t pool(std::int32_t x, bool keep_dims = false) {
        const auto s = shape(x);
        Op op;
        op.kind = OpKind::GlobalAveragePool;
        op.keep_dims = keep_dims;
        op.inputs = {x};
        op.outputs = {act(keep_dims ? std::vector<std::int32_t>{s[0], 1, 1, s[3]} : std::vector<std::int32_t>{s[0], s[3]})};
        g.ops.push_back(op);
        return op.outputs[0];
    }
    std::int32_t fc(std::int32_t x, int out, Activation a = Activation::None) {
        const auto s = shape(x);
        int in = 1;
        for (std::size_t i = 1; i < s.size(); ++i) in *= s[i];
        Op op;
        op.kind = OpKind::FullyConnected;
        op.activation = a;
        op.inputs = {x, constant({out, in}, -0.3f, 0.3f), constant({out}, -0.1f, 0.1f)};
        op.outputs = {act({s[0], out})};
        g.ops.push_back(op);
        return op.outputs[0];
    }
    std::int32_t reshape(std::int32_t x, std::vector<std::int32_t> new_shape) {
        Op op;
        op.kind = OpKind::Reshape;
        op.new_shape = new_shape;
        op.inputs = {x};
        op.outputs = {act(new_shape)};
        g.ops.push_back(op);
        return op.outputs[0];
    }
    std::int32_t batch_norm(std::int32_t x) {
        const int c = shape(x).back();
        Op op;
        op.kind = OpKind::BatchNorm;
        op.epsilon = 1e-3f;
        op.inputs = {x, constant({c}, 0.5f, 1.5f), constant({c}, -0.5f, 0.5f), constant({c}, -0.5f, 0.5f), constant({c}, 0.2f, 2.f)};
        op.outputs = {act(shape(x))};
        g.ops.push_back(op);
        return op.outputs[0];
    }
    std::int32_t softmax(std::int32_t x) { return unary(OpKind::Softmax, x); }

private:
    std::mt19937 rng_;
};

inline float max_abs_diff(const std::vector<float>& a, const std::vector<float>& b) {
    EXPECT_EQ(a.size(), b.size());
    float m = 0.f;
    for (std::size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, std::abs(a[i] - b[i]));
    return m;
}

// The values of the graph's output `k` on `input`, with the reference kernels.
inline std::vector<float> reference_output(const Graph& g, const std::vector<float>& input, int batch, std::size_t k = 0) {
    auto all = run_reference_all(g, {input.data()}, batch);
    return all[static_cast<std::size_t>(g.outputs[k])];
}

// Calibration ranges for quantize_int8 (the builder's min-max calibration).
using engine::minmax_ranges;

}  // namespace firesight::engine::testing
