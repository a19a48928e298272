// The validator and the reference kernels on hand-checkable graphs.
#include <gtest/gtest.h>

#include <array>
#include <cmath>

#include "firesight/engine/reference.h"
#include "firesight/common/error.h"
#include "graph_helpers.h"

namespace firesight::engine {
namespace {

using testing::GraphMaker;

std::string validation_error(const Graph& g) {
    try {
        validate(g);
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

TEST(EngineGraph, ValidGraphPassesAndBatchFollowsInput) {
    GraphMaker m;
    auto x = m.input({1, 8, 8, 3});
    auto y = m.conv(x, 5, 3, 2, {0, 0, 1, 1}, Activation::Relu6);
    auto p = m.pool(y);
    m.g.outputs = {m.softmax(m.fc(p, 4))};
    EXPECT_EQ(validation_error(m.g), "");
    const auto shapes = infer_shapes(m.g, 4);
    EXPECT_EQ(shapes[static_cast<std::size_t>(y)], (std::vector<std::int32_t>{4, 4, 4, 5}));
    EXPECT_EQ(shapes[static_cast<std::size_t>(m.g.outputs[0])], (std::vector<std::int32_t>{4, 4}));
    EXPECT_EQ(count_macs(m.g), 4 * 4 * 5 * 27 + 5 * 4);
}

TEST(EngineGraph, ValidatorNamesWhatIsWrong) {
    {
        GraphMaker m;
        auto x = m.input({1, 8, 8, 3});
        auto y = m.conv(x, 5, 3, 1, {1, 1, 1, 1});
        m.g.outputs = {y};
        m.g.tensors[static_cast<std::size_t>(m.g.ops[0].inputs[1])].shape = {5, 3, 3, 4};
        m.g.tensors[static_cast<std::size_t>(m.g.ops[0].inputs[1])].owned.resize(5 * 3 * 3 * 4);
        EXPECT_NE(validation_error(m.g).find("filter"), std::string::npos) << validation_error(m.g);
    }
    {
        GraphMaker m;
        auto x = m.input({1, 4, 4, 2});
        auto y = m.unary(OpKind::Relu, x);
        m.g.outputs = {y};
        m.g.ops[0].inputs = {42};
        EXPECT_NE(validation_error(m.g).find("out of range"), std::string::npos);
    }
    {
        GraphMaker m;
        auto x = m.input({1, 4, 4, 2});
        auto a = m.unary(OpKind::Relu, x);
        auto b = m.unary(OpKind::Relu6, a);
        m.g.outputs = {b};
        std::swap(m.g.ops[0], m.g.ops[1]);  // uses `a` before it is computed
        EXPECT_NE(validation_error(m.g).find("not computed before"), std::string::npos);
    }
    {
        GraphMaker m;
        auto x = m.input({1, 4, 4, 2});
        auto y = m.conv(x, 3, 1, 1, {0, 0, 0, 0});
        m.g.outputs = {m.add(x, y)};
        EXPECT_NE(validation_error(m.g).find("differ"), std::string::npos);
    }
    {
        GraphMaker m;
        auto x = m.input({1, 4, 4, 2});
        auto y = m.conv(x, 3, 3, 1, {0, 0, 0, 0});
        m.g.tensors[static_cast<std::size_t>(y)].shape = {1, 4, 4, 3};  // really 2x2
        m.g.outputs = {y};
        EXPECT_NE(validation_error(m.g).find("declared"), std::string::npos);
    }
    {
        GraphMaker m;
        auto x = m.input({1, 4, 4, 2});
        m.g.outputs = {m.reshape(x, {1, 5, 7})};
        EXPECT_NE(validation_error(m.g).find("cannot reshape"), std::string::npos);
    }
}

TEST(EngineKernels, ConvWithPaddingSumsTheWindow) {
    Graph g;
    Tensor in;
    in.name = "x";
    in.shape = {1, 3, 3, 1};
    g.inputs = {g.add_tensor(in)};
    Op op;
    op.kind = OpKind::Conv2D;
    op.pad_top = op.pad_left = op.pad_bottom = op.pad_right = 1;
    op.inputs = {g.inputs[0], g.add_constant("w", {1, 3, 3, 1}, std::vector<float>(9, 1.f)), g.add_constant("b", {1}, {0.5f})};
    Tensor out;
    out.name = "y";
    out.shape = {1, 3, 3, 1};
    op.outputs = {g.add_tensor(out)};
    g.ops.push_back(op);
    g.outputs = op.outputs;
    const std::vector<float> x = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    const auto y = testing::reference_output(g, x, 1);
    // Corners see 4 pixels, edges 6, the centre all 9.
    const std::vector<float> expect = {12.5f, 21.5f, 16.5f, 27.5f, 45.5f, 33.5f, 24.5f, 39.5f, 28.5f};
    EXPECT_EQ(y, expect);
}

TEST(EngineKernels, DepthwiseMultiplierReadsTheRightChannel) {
    Graph g;
    Tensor in;
    in.name = "x";
    in.shape = {1, 1, 1, 2};
    g.inputs = {g.add_tensor(in)};
    Op op;
    op.kind = OpKind::DepthwiseConv2D;
    op.depth_multiplier = 2;
    op.inputs = {g.inputs[0], g.add_constant("w", {1, 1, 1, 4}, {1.f, 2.f, 3.f, 4.f})};
    Tensor out;
    out.name = "y";
    out.shape = {1, 1, 1, 4};
    op.outputs = {g.add_tensor(out)};
    g.ops.push_back(op);
    g.outputs = op.outputs;
    EXPECT_EQ(testing::reference_output(g, {10.f, 100.f}, 1), (std::vector<float>{10.f, 20.f, 300.f, 400.f}));
}

TEST(EngineKernels, SoftmaxPoolAndQuantizeRoundTrip) {
    GraphMaker m;
    auto x = m.input({2, 2, 2, 3});
    auto p = m.pool(x);
    auto s = m.softmax(p);
    // f32 -> i8 -> f32 through a quantize/dequantize pair.
    Tensor q;
    q.name = "q";
    q.shape = {2, 3};
    q.dtype = DType::I8;
    q.quant.scale = {0.01f};
    q.quant.zero_point = {-5};
    const auto qi = m.g.add_tensor(q);
    Op qop;
    qop.kind = OpKind::Quantize;
    qop.inputs = {s};
    qop.outputs = {qi};
    m.g.ops.push_back(qop);
    const auto d = m.unary(OpKind::Dequantize, qi);
    m.g.outputs = {s, d};
    validate(m.g);
    std::vector<float> input(24);
    for (std::size_t i = 0; i < input.size(); ++i) input[i] = static_cast<float>(i % 7) - 3.f;
    auto all = run_reference_all(m.g, {input.data()}, 2);
    const auto& probs = all[static_cast<std::size_t>(s)];
    for (int b = 0; b < 2; ++b) EXPECT_NEAR(probs[b * 3] + probs[b * 3 + 1] + probs[b * 3 + 2], 1.0f, 1e-6f);
    const auto& pooled = all[static_cast<std::size_t>(p)];
    EXPECT_NEAR(pooled[0], (input[0] + input[3] + input[6] + input[9]) / 4.f, 1e-6f);
    const auto& back = all[static_cast<std::size_t>(d)];
    for (std::size_t i = 0; i < probs.size(); ++i) EXPECT_NEAR(back[i], probs[i], 0.005f + 1e-6f);
}

}  // namespace
}  // namespace firesight::engine
