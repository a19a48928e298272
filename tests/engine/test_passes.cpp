// Each optimisation pass on a small graph: it makes the change it should, only where it is
// allowed to, and the graph computes the same values afterwards.
#include <gtest/gtest.h>

#include "graph_helpers.h"
#include "firesight/common/error.h"

namespace firesight::engine {
namespace {

using testing::GraphMaker;
using testing::max_abs_diff;
using testing::reference_output;

int count(const Graph& g, OpKind k) {
    int n = 0;
    for (const auto& op : g.ops) n += op.kind == k;
    return n;
}

TEST(EnginePasses, FoldBatchNormIntoConvAndDepthwiseAndFc) {
    GraphMaker m(3);
    auto x = m.input({2, 6, 6, 4});
    auto c = m.batch_norm(m.conv(x, 5, 3, 1, {1, 1, 1, 1}));
    auto d = m.batch_norm(m.depthwise(c, 3, 2, {0, 0, 1, 1}));
    auto f = m.batch_norm(m.fc(m.pool(d), 3));
    m.g.outputs = {f};
    const auto input = m.random(2 * 6 * 6 * 4);
    const auto before = reference_output(m.g, input, 2);
    Graph g = m.g;
    EXPECT_EQ(fold_batch_norm(g), 3);
    validate(g);
    EXPECT_EQ(count(g, OpKind::BatchNorm), 0);
    EXPECT_LT(max_abs_diff(before, reference_output(g, input, 2)), 1e-5f);
}

TEST(EnginePasses, BatchNormAfterSharedOutputIsNotFolded) {
    GraphMaker m;
    auto x = m.input({1, 4, 4, 2});
    auto c = m.conv(x, 2, 1, 1, {0, 0, 0, 0});
    auto b = m.batch_norm(c);
    m.g.outputs = {m.add(c, b)};  // the conv output is also read by the add
    EXPECT_EQ(fold_batch_norm(m.g), 0);
}

TEST(EnginePasses, FuseActivationsIntoProducers) {
    GraphMaker m(5);
    auto x = m.input({1, 5, 5, 3});
    auto c = m.unary(OpKind::Relu6, m.conv(x, 4, 3, 1, {1, 1, 1, 1}));
    auto a = m.unary(OpKind::Relu, m.add(c, c));
    auto r = m.unary(OpKind::Relu6, m.unary(OpKind::Relu, m.fc(m.pool(a), 3)));
    m.g.outputs = {r};
    const auto input = m.random(75, -3.f, 3.f);
    const auto before = reference_output(m.g, input, 1);
    Graph g = m.g;
    EXPECT_EQ(fuse_activations(g), 3);  // relu6->conv, relu->add, relu->fc (relu6 on top remains)
    EXPECT_EQ(fuse_activations(g), 1);  // relu6 over relu(fc) becomes relu6
    validate(g);
    EXPECT_EQ(count(g, OpKind::Relu) + count(g, OpKind::Relu6), 0);
    EXPECT_EQ(g.ops.back().activation, Activation::Relu6);
    EXPECT_EQ(max_abs_diff(before, reference_output(g, input, 1)), 0.f);
}

TEST(EnginePasses, ActivationOnAGraphOutputIsNotFused) {
    GraphMaker m;
    auto x = m.input({1, 3, 3, 2});
    auto c = m.conv(x, 2, 1, 1, {0, 0, 0, 0});
    m.g.outputs = {c, m.unary(OpKind::Relu, c)};
    EXPECT_EQ(fuse_activations(m.g), 0);
}

TEST(EnginePasses, RemoveIdentitiesAndSameShapeReshapes) {
    GraphMaker m(7);
    auto x = m.input({1, 4, 4, 3});
    auto c = m.conv(x, 3, 1, 1, {0, 0, 0, 0});
    auto i = m.unary(OpKind::Identity, c);
    auto r = m.reshape(i, {1, 4, 4, 3});
    auto f = m.reshape(r, {1, 48});  // a real reshape stays
    m.g.outputs = {m.unary(OpKind::Identity, f)};
    const auto input = m.random(48);
    const auto before = reference_output(m.g, input, 1);
    Graph g = m.g;
    EXPECT_EQ(remove_identities(g), 3);
    remove_dead(g);
    validate(g);
    EXPECT_EQ(g.ops.size(), 2u);
    EXPECT_EQ(count(g, OpKind::Reshape), 1);
    EXPECT_EQ(before, reference_output(g, input, 1));
}

TEST(EnginePasses, FoldConstantSubgraphs) {
    GraphMaker m(9);
    auto x = m.input({1, 2, 2, 3});
    auto k = m.constant({1, 2, 2, 3}, -2.f, 2.f);
    auto kr = m.unary(OpKind::Relu, m.unary(OpKind::Relu6, k));
    m.g.outputs = {m.add(x, kr)};
    const auto input = m.random(12);
    const auto before = reference_output(m.g, input, 1);
    Graph g = m.g;
    EXPECT_EQ(fold_constants(g), 2);  // the relu6 over the constant, then the relu over its result
    EXPECT_EQ(fold_constants(g), 0);
    remove_dead(g);
    validate(g);
    ASSERT_EQ(g.ops.size(), 1u);
    EXPECT_EQ(g.ops[0].kind, OpKind::Add);
    EXPECT_TRUE(g.tensors[static_cast<std::size_t>(g.ops[0].inputs[1])].constant);
    EXPECT_EQ(before, reference_output(g, input, 1));
}

TEST(EnginePasses, RemoveDeadOpsAndTensors) {
    GraphMaker m;
    auto x = m.input({1, 3, 3, 2});
    auto used = m.conv(x, 2, 1, 1, {0, 0, 0, 0});
    m.conv(x, 7, 3, 1, {1, 1, 1, 1});  // nobody reads it
    m.g.outputs = {used};
    const auto tensors_before = m.g.tensors.size();
    EXPECT_GT(remove_dead(m.g), 0);
    validate(m.g);
    EXPECT_EQ(m.g.ops.size(), 1u);
    EXPECT_EQ(m.g.tensors.size(), tensors_before - 3);  // dead output, its weights and bias
}

TEST(EnginePasses, OptimizeRunsToAFixedPointAndKeepsValues) {
    GraphMaker m(11);
    auto x = m.input({1, 7, 7, 5});
    auto a = m.unary(OpKind::Relu6, m.batch_norm(m.conv(x, 6, 1, 1, {0, 0, 0, 0})));
    auto b = m.unary(OpKind::Relu6, m.batch_norm(m.depthwise(a, 3, 1, {1, 1, 1, 1})));
    auto c = m.batch_norm(m.conv(b, 5, 1, 1, {0, 0, 0, 0}));
    auto s = m.add(x, m.unary(OpKind::Identity, c));
    m.g.outputs = {m.softmax(m.fc(m.pool(s), 4))};
    const auto input = m.random(245);
    const auto before = reference_output(m.g, input, 1);
    Graph g = m.g;
    const auto summary = optimize(g);
    EXPECT_NE(summary.find("3 batch norms folded"), std::string::npos) << summary;
    EXPECT_EQ(g.ops.size(), 7u) << summary;  // conv, dw, conv, add, pool, fc, softmax
    EXPECT_LT(max_abs_diff(before, reference_output(g, input, 1)), 1e-6f);
}

TEST(EnginePasses, CutAfterATensorRunsThePrefixAndDequantizesInt8) {
    GraphMaker m(12);
    auto x = m.input({1, 6, 6, 3});
    auto a = m.unary(OpKind::Relu6, m.conv(x, 4, 1, 1, {0, 0, 0, 0}));
    auto b = m.unary(OpKind::Relu6, m.depthwise(a, 3, 1, {1, 1, 1, 1}));
    m.g.outputs = {m.softmax(m.fc(m.pool(b), 3))};
    const auto b_name = m.g.tensors[static_cast<std::size_t>(b)].name;
    const auto input = m.random(108);

    // Float: the cut's output is that tensor as the whole graph computes it.
    Graph probe = m.g;
    probe.outputs = {b};
    const auto expected = reference_output(probe, input, 1);
    auto cut = cut_after(m.g, b);
    validate(cut);
    EXPECT_EQ(cut.tensors[static_cast<std::size_t>(cut.outputs[0])].name, b_name);
    EXPECT_LT(cut.ops.size(), m.g.ops.size());  // pool, fc and softmax are gone
    EXPECT_LT(max_abs_diff(expected, reference_output(cut, input, 1)), 1e-6f);

    // Int8: a Dequantize is added right behind the producer, so the cut gives floats.
    Graph q = m.g;
    quantize_int8(q, testing::minmax_ranges(q, {input}, 1));
    std::int32_t qb = -1;
    for (std::size_t t = 0; t < q.tensors.size(); ++t)  // the int8 copy of b (quantize_int8 names it b.int8)
        if (q.tensors[t].name.rfind(b_name, 0) == 0 && q.tensors[t].dtype == DType::I8) qb = static_cast<std::int32_t>(t);
    ASSERT_GE(qb, 0);
    auto qcut = cut_after(q, qb);
    validate(qcut);
    EXPECT_EQ(qcut.tensors[static_cast<std::size_t>(qcut.outputs[0])].dtype, DType::F32);
    EXPECT_EQ(qcut.ops.back().kind, OpKind::Dequantize);
    // Within a few int8 steps of the float prefix (ReLU6 outputs: a step is at most 6/255).
    EXPECT_LT(max_abs_diff(expected, reference_output(qcut, input, 1)), 0.15f);

    EXPECT_THROW(cut_after(m.g, static_cast<std::int32_t>(m.g.tensors.size())), Error);
}

}  // namespace
}  // namespace firesight::engine
