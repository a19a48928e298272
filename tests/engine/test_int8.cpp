// int8 execution: the quantize pass, the int8 reference kernels against the float reference
// (within the derived error bound), and int8 engines through save/load and a whole small network.
// The int8 kernels against XNNPACK's and native-int8's bytes are test_ops.cpp's sweep.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <set>

#include <unistd.h>

#include "firesight/engine/session.h"
#include "firesight/engine/ir.h"
#include "firesight/builder/quantize.h"
#include "firesight/engine/format.h"
#include "firesight/common/error.h"
#include "graph_helpers.h"

namespace firesight::engine {
namespace {

using testing::GraphMaker;

// Min-max ranges of every f32 activation over `inputs` (each one batch of `batch` items).
using testing::minmax_ranges;

std::vector<float> random_input(const Graph& g, int batch, unsigned seed, float lo = -1.f, float hi = 1.f) {
    const auto& s = g.tensors[static_cast<std::size_t>(g.inputs[0])].shape;
    std::size_t n = static_cast<std::size_t>(batch);
    for (std::size_t k = 1; k < s.size(); ++k) n *= static_cast<std::size_t>(s[k]);
    GraphMaker m(seed);
    return m.random(n, lo, hi);
}

const Tensor& named(const Graph& g, const std::string& name) {
    for (const auto& t : g.tensors)
        if (t.name == name) return t;
    throw Error("no tensor " + name);
}

struct Int8Run {
    std::vector<float> float_ref;  // the float graph, reference kernels
    std::vector<float> int8_ref;   // the int8 graph, reference kernels
    Quantization out_quant;        // of the int8 tensor behind output 0
    Graph int8_graph;
};

// Quantizes `g` with min-max ranges from the test input itself (so no float value lies outside
// its range and the error bound below needs no clipping term) and runs it both ways. (That the
// int8 kernels give XNNPACK's and native-int8's bytes is test_ops.cpp's sweep.)
Int8Run run_both_ways(Graph g, int batch, unsigned seed) {
    Int8Run r;
    const auto input = random_input(g, batch, seed);
    const auto ranges = minmax_ranges(g, {input}, batch);
    r.float_ref = testing::reference_output(g, input, batch);
    const std::string out_name = g.tensors[static_cast<std::size_t>(g.outputs[0])].name;
    quantize_int8(g, ranges);
    r.out_quant = named(g, out_name + ".int8").quant;
    r.int8_graph = g;
    r.int8_ref = testing::reference_output(g, input, batch);
    return r;
}

// The float-vs-int8 bound of one weighted layer whose input is the quantized graph input and
// whose output is requantized once. With s_x, s_w[c], s_y the scales, K taps and |x| <= X:
//   y_int8 - y = rounding of the output (<= s_y/2)
//              + sum_k w_k (x~_k - x_k)           (<= s_x/2 * |w_c|_1)
//              + sum_k x_k (w~_k - w_k)           (<= X * K * s_w[c]/2)
//              + sum_k (x~_k - x_k)(w~_k - w_k)   (<= K * s_x * s_w[c] / 4)
//              + bias rounding                    (<= s_x * s_w[c] / 2)
// and clamping to a range that contains the float value only moves the result closer.
float weighted_layer_bound(const Graph& float_graph, const Graph& q, std::int32_t weight_index, int taps_per_output,
                           std::int32_t axis, float x_abs_max, const std::string& input_name, const std::string& output_name) {
    const auto& w = float_graph.tensors[static_cast<std::size_t>(weight_index)];
    const float sx = named(q, input_name + ".int8").quant.scale[0];
    const float sy = named(q, output_name).quant.scale[0];
    const auto& wq = named(q, w.name + ".int8").quant;
    const auto channels = w.shape[static_cast<std::size_t>(axis)];
    std::int64_t inner = 1;
    for (std::size_t k = static_cast<std::size_t>(axis) + 1; k < w.shape.size(); ++k) inner *= w.shape[k];
    std::vector<float> l1(static_cast<std::size_t>(channels), 0.f);
    for (std::int64_t i = 0; i < w.element_count(); ++i) l1[static_cast<std::size_t>((i / inner) % channels)] += std::fabs(w.data()[i]);
    float bound = 0.f;
    for (std::int32_t c = 0; c < channels; ++c) {
        const float sw = wq.scale[wq.scale.size() == 1 ? 0 : static_cast<std::size_t>(c)];
        const float b = sy / 2 + sx / 2 * l1[static_cast<std::size_t>(c)] + x_abs_max * static_cast<float>(taps_per_output) * sw / 2 +
                        static_cast<float>(taps_per_output) * sx * sw / 4 + sx * sw / 2;
        bound = std::max(bound, b);
    }
    return bound * 1.001f + 1e-6f;  // float evaluation slack
}

float max_diff(const std::vector<float>& a, const std::vector<float>& b) { return testing::max_abs_diff(a, b); }

struct ConvCase {
    int batch, h, w, c, out, k, stride;
    std::array<int, 4> pad;
    Activation act;
};

TEST(Int8Kernels, Conv2DIsWithinTheBoundOfFloat) {
    const ConvCase cases[] = {
        {1, 8, 8, 16, 24, 1, 1, {0, 0, 0, 0}, Activation::None},   // pointwise, multiples of 8
        {2, 7, 9, 3, 5, 3, 2, {1, 1, 1, 1}, Activation::Relu6},    // first layer shape, odd sizes
        {2, 6, 5, 13, 11, 3, 1, {0, 1, 1, 0}, Activation::Relu},   // asymmetric padding
        {1, 11, 11, 8, 7, 3, 2, {0, 0, 1, 1}, Activation::Relu6},  // TF SAME stride 2
        {1, 5, 7, 20, 9, 1, 1, {0, 0, 0, 0}, Activation::Relu6},
    };
    unsigned seed = 10;
    for (const auto& c : cases) {
        GraphMaker m(seed++);
        const auto x = m.input({1, c.h, c.w, c.c});
        const auto y = m.conv(x, c.out, c.k, c.stride, c.pad, c.act);
        m.g.outputs = {y};
        const Graph float_graph = m.g;
        const auto r = run_both_ways(m.g, c.batch, seed);
        const std::string what = "conv " + std::to_string(c.h) + "x" + std::to_string(c.w) + "x" + std::to_string(c.c) + " -> " +
                                 std::to_string(c.out) + " k" + std::to_string(c.k) + " s" + std::to_string(c.stride);
        const float bound = weighted_layer_bound(float_graph, r.int8_graph, float_graph.ops[0].inputs[1], c.k * c.k * c.c, 0, 1.f, "input",
                                                 float_graph.tensors[static_cast<std::size_t>(y)].name + ".int8");
        EXPECT_LE(max_diff(r.int8_ref, r.float_ref), bound) << what;
    }
}

TEST(Int8Kernels, DepthwiseIsWithinTheBoundOfFloat) {
    const ConvCase cases[] = {
        {1, 9, 9, 32, 0, 3, 1, {1, 1, 1, 1}, Activation::Relu6},
        {2, 8, 7, 13, 0, 3, 2, {0, 0, 1, 1}, Activation::Relu6},
        {1, 6, 6, 5, 0, 3, 2, {1, 1, 1, 1}, Activation::None},
        {2, 5, 8, 24, 0, 3, 1, {1, 1, 1, 1}, Activation::Relu},
    };
    unsigned seed = 30;
    for (const auto& c : cases) {
        GraphMaker m(seed++);
        const auto x = m.input({1, c.h, c.w, c.c});
        const auto y = m.depthwise(x, c.k, c.stride, c.pad, c.act);
        m.g.outputs = {y};
        const Graph float_graph = m.g;
        const auto r = run_both_ways(m.g, c.batch, seed);
        const std::string what = "depthwise " + std::to_string(c.h) + "x" + std::to_string(c.w) + "x" + std::to_string(c.c) + " s" +
                                 std::to_string(c.stride);
        const float bound = weighted_layer_bound(float_graph, r.int8_graph, float_graph.ops[0].inputs[1], c.k * c.k, 3, 1.f, "input",
                                                 float_graph.tensors[static_cast<std::size_t>(y)].name + ".int8");
        EXPECT_LE(max_diff(r.int8_ref, r.float_ref), bound) << what;
    }
}

TEST(Int8Kernels, FullyConnectedIsWithinTheBoundOfFloat) {
    struct Case {
        int batch, in, out;
        Activation act;
    };
    const Case cases[] = {{1, 37, 3, Activation::None}, {2, 64, 10, Activation::Relu}, {2, 19, 17, Activation::Relu6}};
    unsigned seed = 50;
    for (const auto& c : cases) {
        GraphMaker m(seed++);
        const auto x = m.input({1, c.in});
        const auto y = m.fc(x, c.out, c.act);
        m.g.outputs = {y};
        const Graph float_graph = m.g;
        const auto r = run_both_ways(m.g, c.batch, seed);
        const std::string what = "fully connected " + std::to_string(c.in) + " -> " + std::to_string(c.out);
        const float bound = weighted_layer_bound(float_graph, r.int8_graph, float_graph.ops[0].inputs[1], c.in, 0, 1.f, "input",
                                                 float_graph.tensors[static_cast<std::size_t>(y)].name + ".int8");
        EXPECT_LE(max_diff(r.int8_ref, r.float_ref), bound) << what;
    }
}

TEST(Int8Kernels, AddIsWithinTheBoundOfFloat) {
    // Two differently quantized inputs: the graph input and a ReLU of it (each quantized from
    // float, so each is off by at most half its scale).
    struct Case {
        int batch, h, w, c;
        Activation act;
    };
    const Case cases[] = {{1, 5, 7, 13, Activation::None}, {2, 4, 4, 32, Activation::Relu6}, {2, 3, 9, 7, Activation::Relu}};
    unsigned seed = 70;
    for (const auto& c : cases) {
        GraphMaker m(seed++);
        const auto x = m.input({1, c.h, c.w, c.c});
        const auto r0 = m.unary(OpKind::Relu, x);
        const auto y = m.add(x, r0, c.act);
        m.g.outputs = {y};
        const Graph float_graph = m.g;
        const auto r = run_both_ways(m.g, c.batch, seed);
        // Output rounding (1/2 LSB) + the fixed-point multipliers' rounding (each off by at most
        // 1/2 in 2^shift, shift >= 12, times |q - zero| <= 255: < 1/32 LSB each) + the inputs'.
        const float sy = r.out_quant.scale[0];
        const float sa = named(r.int8_graph, "input.int8").quant.scale[0];
        const float sb = named(r.int8_graph, float_graph.tensors[static_cast<std::size_t>(r0)].name + ".int8").quant.scale[0];
        const float bound = (sy * (0.5f + 2.f / 32.f) + sa / 2 + sb / 2) * 1.001f;
        EXPECT_LE(max_diff(r.int8_ref, r.float_ref), bound);
    }
}

TEST(Int8Kernels, GlobalAveragePoolIsWithinTheBoundOfFloat) {
    struct Case {
        int batch, h, w, c;
        bool keep_dims;
    };
    const Case cases[] = {{1, 7, 7, 32, false}, {2, 5, 3, 13, true}, {2, 9, 11, 40, false}};
    unsigned seed = 90;
    for (const auto& c : cases) {
        GraphMaker m(seed++);
        const auto x = m.input({1, c.h, c.w, c.c});
        const auto y = m.pool(x, c.keep_dims);
        m.g.outputs = {y};
        const auto r = run_both_ways(m.g, c.batch, seed);
        // The mean of values each off by <= s_x/2 is off by <= s_x/2; plus the output rounding.
        const float sx = named(r.int8_graph, "input.int8").quant.scale[0];
        EXPECT_LE(max_diff(r.int8_ref, r.float_ref), (r.out_quant.scale[0] / 2 + sx / 2) * 1.001f);
    }
}

// The round trip lands within half a step of every value in range (that XNNPACK gives the same
// bytes, ties included, is test_ops.cpp's sweep).
TEST(Int8Kernels, QuantizeDequantizeRoundTripIsWithinHalfAStep) {
    for (const auto& [scale, zero] : std::vector<std::pair<float, int>>{{0.0235f, -3}, {0.1f, 17}, {1.f / 255.f, -128}, {0.05f, 127}}) {
        GraphMaker m(3);
        const auto x = m.input({1, 257});
        Tensor q;
        q.name = "q";
        q.shape = {1, 257};
        q.dtype = DType::I8;
        q.quant.scale = {scale};
        q.quant.zero_point = {zero};
        const auto qi = m.g.add_tensor(q);
        const auto y = m.act({1, 257}, "y");
        Op quant;
        quant.kind = OpKind::Quantize;
        quant.inputs = {x};
        quant.outputs = {qi};
        Op dequant;
        dequant.kind = OpKind::Dequantize;
        dequant.inputs = {qi};
        dequant.outputs = {y};
        m.g.ops = {quant, dequant};
        m.g.outputs = {y};
        // Values on and next to the rounding ties, inside and outside the representable range.
        std::vector<float> in;
        for (int k = -130; k < 127; ++k) in.push_back((static_cast<float>(k) + 0.5f) * scale);
        in[0] = -1e6f;
        in[1] = 1e6f;
        const auto ref = testing::reference_output(m.g, in, 1);
        ASSERT_EQ(ref.size(), in.size());
        for (std::size_t i = 0; i < ref.size(); ++i) {
            // The reference itself: within half a step of the input whenever it is in range.
            const float lo = scale * static_cast<float>(-128 - zero), hi = scale * static_cast<float>(127 - zero);
            if (in[i] >= lo && in[i] <= hi) EXPECT_LE(std::fabs(ref[i] - in[i]), scale * 0.5f * 1.0001f);
        }
    }
}

// ---- the quantize pass -------------------------------------------------------------------------

// A MobileNet-like block stack: conv 3x3/2 relu6, depthwise relu6, 1x1 project, residual add, pool,
// fully connected, softmax; outputs probabilities then logits.
Graph small_net(unsigned seed, int channels = 3) {
    GraphMaker m(seed);
    const auto x = m.input({1, 17, 17, channels});
    auto t = m.conv(x, 12, 3, 2, {1, 1, 1, 1}, Activation::Relu6);
    auto d = m.depthwise(t, 3, 1, {1, 1, 1, 1}, Activation::Relu6);
    auto p = m.conv(d, 12, 1, 1, {0, 0, 0, 0});
    auto a = m.add(t, p);
    auto e = m.conv(a, 40, 1, 1, {0, 0, 0, 0}, Activation::Relu6);
    auto d2 = m.depthwise(e, 3, 2, {0, 0, 1, 1}, Activation::Relu6);
    auto p2 = m.conv(d2, 20, 1, 1, {0, 0, 0, 0});
    auto pooled = m.pool(p2);
    auto logits = m.fc(pooled, 3);
    auto probs = m.softmax(logits);
    m.g.tensors[static_cast<std::size_t>(logits)].name = "logits";
    m.g.tensors[static_cast<std::size_t>(probs)].name = "probabilities";
    m.g.outputs = {probs, logits};
    return m.g;
}

TEST(QuantizeInt8, ProducesInt8LayersWithFloatEdges) {
    Graph g = small_net(5);
    const auto in = random_input(g, 2, 6);
    quantize_int8(g, minmax_ranges(g, {in}, 2));
    ASSERT_NO_THROW(validate(g));
    EXPECT_EQ(g.ops.front().kind, OpKind::Quantize);
    EXPECT_EQ(g.ops.front().inputs[0], g.inputs[0]);
    EXPECT_EQ(g.tensors[static_cast<std::size_t>(g.inputs[0])].dtype, DType::F32);
    int layers = 0;
    for (const auto& op : g.ops) {
        const auto& y = g.tensors[static_cast<std::size_t>(op.outputs[0])];
        if (op.kind == OpKind::Softmax) {
            const auto& x = g.tensors[static_cast<std::size_t>(op.inputs[0])];
            EXPECT_EQ(x.dtype, DType::F32);
            bool from_dequantize = false;
            for (const auto& p : g.ops)
                if (p.outputs[0] == op.inputs[0]) from_dequantize = p.kind == OpKind::Dequantize;
            EXPECT_TRUE(from_dequantize) << "softmax must read a Dequantize";
        }
        if (op.kind == OpKind::Conv2D || op.kind == OpKind::DepthwiseConv2D || op.kind == OpKind::FullyConnected) {
            ++layers;
            EXPECT_EQ(y.dtype, DType::I8);
            const auto& w = g.tensors[static_cast<std::size_t>(op.inputs[1])];
            const auto& b = g.tensors[static_cast<std::size_t>(op.inputs[2])];
            EXPECT_EQ(w.dtype, DType::I8);
            EXPECT_EQ(b.dtype, DType::I32);
            const std::size_t axis = op.kind == OpKind::DepthwiseConv2D ? 3 : 0;
            if (op.kind != OpKind::FullyConnected) {
                EXPECT_EQ(w.quant.scale.size(), static_cast<std::size_t>(w.shape[axis])) << w.name;
                EXPECT_EQ(w.quant.axis, static_cast<std::int32_t>(axis));
            }
            for (auto z : w.quant.zero_point) EXPECT_EQ(z, 0);
            // Symmetric, scale = max|w_c| / 127: no value at -128, and the largest of each channel
            // (of the whole tensor for the fully connected layer) sits at +-127.
            const std::size_t channels = w.quant.scale.size() == 1 ? 1 : static_cast<std::size_t>(w.shape[axis]);
            std::int64_t inner = 1;
            for (std::size_t k = axis + 1; k < w.shape.size(); ++k) inner *= w.shape[k];
            std::vector<int> peak(channels, 0);
            for (std::int64_t i = 0; i < w.element_count(); ++i) {
                ASSERT_GE(w.data_i8()[i], -127);
                auto& p = peak[static_cast<std::size_t>((i / inner) % static_cast<std::int64_t>(channels))];
                p = std::max(p, std::abs(static_cast<int>(w.data_i8()[i])));
            }
            for (int p : peak) EXPECT_EQ(p, 127) << w.name;
        }
        if (op.kind == OpKind::Add || op.kind == OpKind::GlobalAveragePool) EXPECT_EQ(y.dtype, DType::I8);
    }
    EXPECT_EQ(layers, 7);
    ASSERT_EQ(g.outputs.size(), 2u);
    EXPECT_EQ(g.tensors[static_cast<std::size_t>(g.outputs[0])].name, "probabilities");
    EXPECT_EQ(g.tensors[static_cast<std::size_t>(g.outputs[1])].name, "logits");
    for (auto o : g.outputs) EXPECT_EQ(g.tensors[static_cast<std::size_t>(o)].dtype, DType::F32);
    // No float weights are left behind.
    for (const auto& t : g.tensors)
        if (t.constant) EXPECT_NE(t.dtype, DType::F32) << t.name;
}

// HardSwish has no int8 kernel: the quantizer leaves it in float between a Dequantize and a
// Quantize (as it does a standalone Relu), the layers around it become int8, and the graph runs
// on native-int8 (the reference's bytes) and XNNPACK.
TEST(QuantizeInt8, LeavesHardSwishInFloatBetweenInt8Layers) {
    GraphMaker m(21);
    const auto x = m.input({1, 6, 6, 5});
    const auto h = m.unary(OpKind::HardSwish, m.conv(x, 8, 3, 1, {1, 1, 1, 1}));
    m.g.outputs = {m.fc(m.pool(m.conv(h, 6, 1, 1, {0, 0, 0, 0})), 3)};
    const auto input = random_input(m.g, 2, 22, -2.f, 2.f);
    Graph g = m.g;
    quantize_int8(g, minmax_ranges(m.g, {input}, 2));
    int int8_convs = 0, float_hard_swish = 0;
    for (const auto& op : g.ops) {
        const DType in = g.tensors[static_cast<std::size_t>(op.inputs[0])].dtype, out = g.tensors[static_cast<std::size_t>(op.outputs[0])].dtype;
        if (op.kind == OpKind::Conv2D && in == DType::I8 && out == DType::I8) ++int8_convs;
        if (op.kind == OpKind::HardSwish && in == DType::F32 && out == DType::F32) ++float_hard_swish;
    }
    EXPECT_EQ(int8_convs, 2);
    EXPECT_EQ(float_hard_swish, 1);
    const auto ref = testing::reference_output(g, input, 2);
    const auto float_ref = testing::reference_output(m.g, input, 2);
    EXPECT_LT(max_diff(ref, float_ref), 0.05f);  // the int8 graph still computes the float one
    auto engine = Engine::from_graph(g);
    Session native(engine, {Backend::NativeInt8, 1});
    const float* n = native.run(input, 2)[0];
    EXPECT_EQ(std::vector<float>(n, n + ref.size()), ref);
    if (!backend_available(Backend::Xnnpack)) return;
    Session xnn(engine, {Backend::Xnnpack, 1});
    const float* o = xnn.run(input, 2)[0];
    // XNNPACK's float HardSwish may differ from the reference in the last bit, which can move a
    // requantization by one step: close, not equal.
    EXPECT_LT(max_diff(std::vector<float>(o, o + ref.size()), ref), 0.05f);
}

TEST(QuantizeInt8, MissingRangeNamesTheTensor) {
    Graph g = small_net(5);
    const auto in = random_input(g, 1, 6);
    auto ranges = minmax_ranges(g, {in}, 1);
    const std::string victim = g.tensors[static_cast<std::size_t>(g.ops[2].outputs[0])].name;
    ranges.erase(victim);
    Graph copy = g;
    try {
        quantize_int8(copy, ranges);
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("'" + victim + "'"), std::string::npos) << e.what();
    }
    ranges = minmax_ranges(g, {in}, 1);
    ranges.erase("input");
    EXPECT_THROW(quantize_int8(g, ranges), Error);
}

TEST(QuantizeInt8, ClusteredWeightsKeepAtMostKDistinctValues) {
    Graph g = small_net(8);
    // Cluster the 1x1 expansion conv (40x12) to k = 8 values; leave the others continuous.
    const auto& op = g.ops[4];
    ASSERT_EQ(op.kind, OpKind::Conv2D);
    auto& w = g.tensors[static_cast<std::size_t>(op.inputs[1])];
    const std::string wname = w.name;
    const float centroids[8] = {-0.31f, -0.2f, -0.11f, -0.04f, 0.03f, 0.09f, 0.17f, 0.29f};
    for (std::size_t i = 0; i < w.owned.size(); ++i) w.owned[i] = centroids[i * 7 % 8];
    const std::string other = g.tensors[static_cast<std::size_t>(g.ops[0].inputs[1])].name;
    const auto in = random_input(g, 1, 9);
    quantize_int8(g, minmax_ranges(g, {in}, 1));
    const auto& q = named(g, wname + ".int8");
    std::set<int> distinct(q.data_i8(), q.data_i8() + q.element_count());
    EXPECT_LE(distinct.size(), 8u);
    EXPECT_EQ(q.quant.scale.size(), 40u);
    for (float s : q.quant.scale) EXPECT_EQ(s, q.quant.scale[0]);  // one scale, replicated
    EXPECT_FLOAT_EQ(q.quant.scale[0], 0.31f / 127.f);
    // The continuous first conv keeps a scale per channel.
    const auto& c = named(g, other + ".int8");
    EXPECT_GT(std::set<float>(c.quant.scale.begin(), c.quant.scale.end()).size(), 1u);
}

TEST(QuantizeInt8, ConstantCalibrationOutputStillRunsOnXnnpack) {
    // A layer whose output (nearly) never moved during calibration, such as a dead ReLU, would get
    // a scale so small that XNNPACK refuses the requantization (status 4); the pass raises it.
    Graph g = small_net(5);
    const auto in = random_input(g, 1, 6);
    auto ranges = minmax_ranges(g, {in}, 1);
    for (const auto& op : g.ops)
        if (op.kind == OpKind::Conv2D || op.kind == OpKind::Add || op.kind == OpKind::GlobalAveragePool)
            ranges[g.tensors[static_cast<std::size_t>(op.outputs[0])].name] = {0.f, 1e-9f};
    quantize_int8(g, ranges);
    Session ref(Engine::from_graph(g), {Backend::Reference, 1});
    const auto r = ref.logits(in, 1);
    if (!backend_available(Backend::Xnnpack)) return;
    Session xnn(Engine::from_graph(g), {Backend::Xnnpack, 1});
    EXPECT_EQ(xnn.logits(in, 1), r);
}

TEST(QuantizeInt8, FewValuesOnAFineGridKeepPerChannelScales) {
    // 255 values 0.005 apart over [-1, 0.27] (like an imported uint8 model's weights): one
    // symmetric scale (1/127 > 0.005) would merge neighbours, so they are not treated as clustered.
    Graph g = small_net(8);
    auto& w = g.tensors[static_cast<std::size_t>(g.ops[4].inputs[1])];
    const std::string wname = w.name;
    for (std::size_t i = 0; i < w.owned.size(); ++i) w.owned[i] = -1.f + 0.005f * static_cast<float>((i * 37) % 255);
    const auto in = random_input(g, 1, 9);
    quantize_int8(g, minmax_ranges(g, {in}, 1));
    const auto& q = named(g, wname + ".int8");
    EXPECT_GT(std::set<float>(q.quant.scale.begin(), q.quant.scale.end()).size(), 1u);
}

TEST(QuantizeInt8, NamedFiltersGetOneScaleEvenWhenCentroidsMerge) {
    // k = 8 centroids, two of them 0.0005 apart (a fifth of one step of 0.31 / 127): on their own they
    // would keep per-channel scales; named in one_scale they get one scale and at most 8 values.
    auto make = [] {
        Graph g = small_net(8);
        auto& w = g.tensors[static_cast<std::size_t>(g.ops[4].inputs[1])];
        const float centroids[8] = {-0.31f, -0.2f, -0.11f, -0.04f, 0.03f, 0.0305f, 0.17f, 0.29f};
        // Channel 0 (the first 12 weights of the 40x1x1x12 filter) holds only the small values,
        // so per-channel scales would differ and spread the values over more int8 codes.
        for (std::size_t i = 0; i < w.owned.size(); ++i) w.owned[i] = i < 12 ? centroids[3 + i % 3] : centroids[i * 7 % 8];
        return g;
    };
    Graph plain = make();
    const std::string wname = plain.tensors[static_cast<std::size_t>(plain.ops[4].inputs[1])].name;
    const auto in = random_input(plain, 1, 9);
    const auto ranges = minmax_ranges(plain, {in}, 1);
    quantize_int8(plain, ranges);
    const auto& p = named(plain, wname + ".int8");
    EXPECT_GT(std::set<float>(p.quant.scale.begin(), p.quant.scale.end()).size(), 1u);
    EXPECT_GT(std::set<int>(p.data_i8(), p.data_i8() + p.element_count()).size(), 8u);

    Graph hinted = make();
    QuantizeOptions o;
    o.one_scale = {wname};
    quantize_int8(hinted, ranges, o);
    const auto& q = named(hinted, wname + ".int8");
    EXPECT_EQ(std::set<float>(q.quant.scale.begin(), q.quant.scale.end()).size(), 1u);
    std::set<int> distinct(q.data_i8(), q.data_i8() + q.element_count());
    EXPECT_LE(distinct.size(), 8u);
    // It still runs, and near the float graph.
    Session s(Engine::from_graph(hinted), {Backend::Reference, 1});
    EXPECT_EQ(s.logits(in, 1).size(), 1u);

    Graph wrong = make();
    const auto ops_before = wrong.ops.size();
    o.one_scale = {"no/such/weights"};
    try {
        quantize_int8(wrong, ranges, o);
        FAIL() << "an unknown name was accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("no/such/weights"), std::string::npos) << e.what();
    }
    EXPECT_EQ(wrong.ops.size(), ops_before);  // refused before anything changed
    for (const auto& t : wrong.tensors) EXPECT_EQ(t.dtype, DType::F32) << t.name;
}

TEST(QuantizeInt8, ValidatorRejectsBadQuantization) {
    Graph g = small_net(5);
    const auto in = random_input(g, 1, 6);
    quantize_int8(g, minmax_ranges(g, {in}, 1));
    auto find_weight = [&](Graph& h) -> Tensor& {
        for (auto& op : h.ops)
            if (op.kind == OpKind::Conv2D) return h.tensors[static_cast<std::size_t>(op.inputs[1])];
        throw Error("no conv");
    };
    {
        Graph h = g;
        find_weight(h).quant.axis = 3;  // per-channel scales along the wrong axis
        EXPECT_THROW(validate(h), Error);
    }
    {
        Graph h = g;
        find_weight(h).quant.zero_point[0] = 3;  // filters are symmetric
        EXPECT_THROW(validate(h), Error);
    }
    {
        Graph h = g;
        h.tensors[static_cast<std::size_t>(h.ops[0].outputs[0])].quant.zero_point = {200};  // outside int8
        EXPECT_THROW(validate(h), Error);
    }
    {
        Graph h = g;
        find_weight(h).quant.scale.pop_back();  // scale count neither 1 nor the channels
        find_weight(h).quant.zero_point.pop_back();
        EXPECT_THROW(validate(h), Error);
    }
    {
        Graph h = g;
        auto& w = find_weight(h);
        w.owned_i8.pop_back();  // fewer values than the shape
        EXPECT_THROW(validate(h), Error);
    }
}

TEST(QuantizeInt8, SaveLoadRoundTripIsBitExact) {
    Graph g = small_net(11);
    g.metadata.size = g.metadata.resize_shorter = 17;  // the loader checks it against the input
    const auto in = random_input(g, 2, 12);
    quantize_int8(g, minmax_ranges(g, {in}, 2));
    const auto path = std::filesystem::temp_directory_path() / ("firesight_int8_" + std::to_string(::getpid()) + ".fse");
    save_engine(g, path);
    const Graph h = load_graph(path);
    ASSERT_EQ(h.tensors.size(), g.tensors.size());
    for (std::size_t i = 0; i < g.tensors.size(); ++i) {
        const auto& a = g.tensors[i];
        const auto& b = h.tensors[i];
        EXPECT_EQ(a.name, b.name);
        EXPECT_EQ(a.dtype, b.dtype);
        EXPECT_EQ(a.quant.scale, b.quant.scale) << a.name;
        EXPECT_EQ(a.quant.zero_point, b.quant.zero_point) << a.name;
        EXPECT_EQ(a.quant.axis, b.quant.axis) << a.name;
        ASSERT_EQ(a.constant, b.constant);
        if (a.constant) {
            const auto bytes = static_cast<std::size_t>(a.element_count()) * dtype_size(a.dtype);
            EXPECT_EQ(std::memcmp(a.bytes(), b.bytes(), bytes), 0) << a.name;
        }
    }
    EXPECT_EQ(testing::reference_output(g, in, 2), testing::reference_output(h, in, 2));
    std::filesystem::remove(path);
}

TEST(QuantizeInt8, SmallNetInt8EngineAgreesWithFloatEngine) {
    Graph g = small_net(21);
    std::vector<std::vector<float>> calibration;
    for (unsigned s = 0; s < 4; ++s) calibration.push_back(random_input(g, 2, 100 + s));
    const auto ranges = minmax_ranges(g, calibration, 2);
    Graph q = g;
    quantize_int8(q, ranges);
    const Backend backend = backend_available(Backend::Xnnpack) ? Backend::Xnnpack : Backend::Reference;
    Session fs(Engine::from_graph(g), {backend, 1});
    Session qs(Engine::from_graph(q), {backend, 1});
    Session qref(Engine::from_graph(q), {Backend::Reference, 1});
    Session qs2(Engine::from_graph(q), {backend, 2});
    float worst = 0.f;
    for (unsigned s = 0; s < 6; ++s) {
        const auto in = random_input(g, 2, 200 + s, -0.9f, 0.9f);
        const auto pf = fs.probabilities(in, 2);
        const auto pq = qs.probabilities(in, 2);
        for (int b = 0; b < 2; ++b)
            worst = std::max(worst, testing::max_abs_diff(pf[static_cast<std::size_t>(b)], pq[static_cast<std::size_t>(b)]));
        // The whole int8 network is the same computation on both backends up to the logits
        // (dequantized int8); only the float softmax after them may round differently.
        EXPECT_EQ(qs.logits(in, 2), qref.logits(in, 2));
        if (backend == Backend::Xnnpack) EXPECT_EQ(qs2.logits(in, 2), qref.logits(in, 2)) << "2 threads";
    }
    EXPECT_LT(worst, 0.05f);
}

}  // namespace
}  // namespace firesight::engine
