// Class activation maps from the runtime: a hand-computed map, the identity that the mean of a
// class's map is its logit minus its bias, the same map on every backend for fp32 and int8
// graphs, and a clear refusal for graphs without a global average pool + linear head.
#include <gtest/gtest.h>

#include <cmath>
#include <numeric>

#include "firesight/engine/session.h"
#include "firesight/engine/ir.h"
#include "firesight/builder/quantize.h"
#include "firesight/common/error.h"
#include "graph_helpers.h"

namespace firesight::engine {
namespace {

using testing::GraphMaker;

std::vector<Backend> backends() {
    std::vector<Backend> b{Backend::Reference, Backend::NativeInt8};
    if (backend_available(Backend::Xnnpack)) b.push_back(Backend::Xnnpack);
    return b;
}

SessionOptions with_maps(Backend b) {
    SessionOptions o{b, 1};
    o.class_activation_maps = true;
    return o;
}

// input [batch, 9, 7, 3] -> conv 3x3 (ReLU6) -> conv 1x1 (ReLU6) -> global average pool ->
// [reshape] -> fully connected (4 classes) -> softmax; outputs probabilities, logits.
Graph small_classifier(bool reshape_between = false, unsigned seed = 3) {
    GraphMaker m(seed);
    auto x = m.input({1, 9, 7, 3});
    x = m.conv(x, 8, 3, 1, {1, 1, 1, 1}, Activation::Relu6);
    x = m.conv(x, 16, 1, 1, {0, 0, 0, 0}, Activation::Relu6);
    auto p = m.pool(x);
    if (reshape_between) p = m.reshape(p, {1, 16});
    const auto logits = m.fc(p, 4);
    m.g.outputs = {m.softmax(logits), logits};
    validate(m.g);
    return m.g;
}

std::vector<float> random_input(const Graph& g, int batch, unsigned seed) {
    const auto& s = g.tensors[static_cast<std::size_t>(g.inputs[0])].shape;
    std::size_t n = static_cast<std::size_t>(batch);
    for (std::size_t k = 1; k < s.size(); ++k) n *= static_cast<std::size_t>(s[k]);
    GraphMaker m(seed);
    return m.random(n, -1.f, 1.f);
}

// The fully connected layer's bias, read from the graph (f32 graphs only).
std::vector<float> fc_bias(const Graph& g) {
    for (const auto& op : g.ops)
        if (op.kind == OpKind::FullyConnected) {
            const auto& b = g.tensors[static_cast<std::size_t>(op.inputs[2])];
            return std::vector<float>(b.data(), b.data() + b.element_count());
        }
    return {};
}

float mean(const std::vector<float>& v) { return std::accumulate(v.begin(), v.end(), 0.f) / static_cast<float>(v.size()); }

TEST(ActivationMap, EqualsTheHandComputationOnAKnownHead) {
    // Feature map = the input (through a ReLU that keeps these positive values), 2x2 positions,
    // 2 channels; W = [[1, 0], [0.5, -1]], bias [10, 20].
    GraphMaker m;
    auto x = m.input({1, 2, 2, 2});
    x = m.unary(OpKind::Relu, x);
    const auto p = m.pool(x);
    Op fc;
    fc.kind = OpKind::FullyConnected;
    fc.inputs = {p, m.g.add_constant("w", {2, 2}, {1.f, 0.f, 0.5f, -1.f}), m.g.add_constant("b", {2}, {10.f, 20.f})};
    fc.outputs = {m.act({1, 2})};
    m.g.ops.push_back(fc);
    m.g.outputs = {m.softmax(fc.outputs[0]), fc.outputs[0]};
    const std::vector<float> input{1, 2, 3, 4, 5, 6, 7, 8};  // (y, x, channel) row-major
    auto engine = Engine::from_graph(m.g);
    for (auto b : backends()) {
        Session s(engine, with_maps(b));
        const auto& out = s.run(input);
        ASSERT_EQ(out.size(), 2u) << "the feature map must not show up as an output";
        const auto m0 = s.class_activation_map(0), m1 = s.class_activation_map(1);
        EXPECT_EQ(m0.height, 2);
        EXPECT_EQ(m0.width, 2);
        EXPECT_EQ(m0.values, (std::vector<float>{1, 3, 5, 7})) << backend_name(b);
        EXPECT_EQ(m1.values, (std::vector<float>{-1.5f, -2.5f, -3.5f, -4.5f})) << backend_name(b);
        // logits: means of the maps plus the bias: 4 + 10 and -3 + 20.
        EXPECT_NEAR(out[1][0], 14.f, 1e-5f);
        EXPECT_NEAR(out[1][1], 17.f, 1e-5f);
    }
}

TEST(ActivationMap, MeanIsTheLogitMinusBiasOnEveryBackend) {
    for (bool reshape : {false, true}) {
        const auto g = small_classifier(reshape);
        const auto bias = fc_bias(g);
        auto engine = Engine::from_graph(g);
        const int batch = 2;
        const auto input = random_input(g, batch, 11);
        for (auto b : backends()) {
            Session s(engine, with_maps(b));
            const auto logits = s.logits(input, batch);
            for (int item = 0; item < batch; ++item)
                for (int c = 0; c < 4; ++c) {
                    const auto map = s.class_activation_map(c, item);
                    ASSERT_EQ(map.values.size(), 9u * 7u);
                    EXPECT_NEAR(mean(map.values), logits[static_cast<std::size_t>(item)][static_cast<std::size_t>(c)] - bias[static_cast<std::size_t>(c)], 1e-4f)
                        << backend_name(b) << " item " << item << " class " << c;
                }
        }
    }
}

TEST(ActivationMap, EveryBackendGivesTheSameMapAndBatchItemsAreIndependent) {
    const auto g = small_classifier();
    auto engine = Engine::from_graph(g);
    const auto input = random_input(g, 2, 5);
    Session ref(engine, with_maps(Backend::Reference));
    ref.run(input, 2);
    const auto expected = ref.class_activation_map(2, 1);
    for (auto b : backends()) {
        Session s(engine, with_maps(b));
        s.run(std::span<const float>(input).subspan(input.size() / 2), 1);  // item 1 alone
        EXPECT_LT(testing::max_abs_diff(s.class_activation_map(2).values, expected.values), 1e-4f) << backend_name(b);
    }
}

TEST(ActivationMap, Int8GraphsGiveTheDequantizedMapOnEveryBackend) {
    auto g = small_classifier();
    const auto bias = fc_bias(g);
    const auto input = random_input(g, 1, 7);
    Session fp32(Engine::from_graph(g), with_maps(Backend::Reference));
    fp32.run(input);
    const auto float_map = fp32.class_activation_map(1);
    quantize_int8(g, testing::minmax_ranges(g, {input}, 1));
    auto engine = Engine::from_graph(g);
    Session ref(engine, with_maps(Backend::Reference));
    const auto logits = ref.logits(input).at(0);
    const auto expected = ref.class_activation_map(1);
    // Quantization moves the map by a few steps of the feature map's scale times the weights.
    float spread = 0.f;
    for (float v : float_map.values) spread = std::max(spread, std::abs(v));
    EXPECT_LT(testing::max_abs_diff(expected.values, float_map.values), 0.1f * spread);
    // The pooled features and the logits are rounded to int8 too: the identity holds to a step.
    EXPECT_NEAR(mean(expected.values), logits[1] - bias[1], 0.05f * (std::abs(logits[1]) + 1.f));
    for (auto b : backends()) {
        Session s(engine, with_maps(b));
        s.run(input);
        EXPECT_LT(testing::max_abs_diff(s.class_activation_map(1).values, expected.values), 1e-5f) << backend_name(b);
    }
}

TEST(ActivationMap, AOneByOneConvHeadLikeTfliteMobileNetWorks) {
    GraphMaker m(9);
    auto x = m.input({1, 4, 4, 3});
    x = m.conv(x, 6, 3, 1, {1, 1, 1, 1}, Activation::Relu6);
    const auto pooled = m.pool(x, true);                     // [1, 1, 1, 6]
    const auto conv = m.conv(pooled, 5, 1, 1, {0, 0, 0, 0});  // [1, 1, 1, 5]
    const auto logits = m.reshape(conv, {1, 5});
    m.g.outputs = {m.softmax(logits), logits};
    const auto& bias_t = m.g.tensors[static_cast<std::size_t>(m.g.ops[2].inputs[2])];
    const std::vector<float> bias(bias_t.data(), bias_t.data() + 5);
    auto engine = Engine::from_graph(m.g);
    const auto input = random_input(m.g, 1, 2);
    for (auto b : backends()) {
        Session s(engine, with_maps(b));
        const auto l = s.logits(input).at(0);
        for (int c = 0; c < 5; ++c) EXPECT_NEAR(mean(s.class_activation_map(c).values), l[static_cast<std::size_t>(c)] - bias[static_cast<std::size_t>(c)], 1e-4f);
    }
}

void expect_refused(const Graph& g, const std::string& why) {
    auto engine = Engine::from_graph(g);
    try {
        Session s(engine, with_maps(Backend::Reference));
        ADD_FAILURE() << "accepted a graph where " << why;
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("global average pool -> linear layer -> softmax"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find(why), std::string::npos) << e.what();
    }
    Session plain(engine, {Backend::Reference, 1});  // without maps the graph still runs
    EXPECT_NO_THROW(plain.run(random_input(g, 1, 1)));
}

TEST(ActivationMap, GraphsWithoutThePatternAreRefused) {
    {  // no pool: the head flattens the feature map
        GraphMaker m;
        auto x = m.input({1, 3, 3, 2});
        x = m.conv(x, 4, 1, 1, {0, 0, 0, 0}, Activation::Relu6);
        const auto l = m.fc(m.reshape(x, {1, 36}), 3);
        m.g.outputs = {m.softmax(l), l};
        expect_refused(m.g, "does not read a global average pool");
    }
    {  // a ReLU on the linear layer: the map would no longer average to the logit
        GraphMaker m;
        auto x = m.input({1, 3, 3, 2});
        const auto l = m.fc(m.pool(m.conv(x, 4, 1, 1, {0, 0, 0, 0})), 3, Activation::Relu);
        m.g.outputs = {m.softmax(l), l};
        expect_refused(m.g, "has an activation");
    }
    {  // output 0 is not a softmax
        GraphMaker m;
        auto x = m.input({1, 3, 3, 2});
        const auto l = m.fc(m.pool(m.conv(x, 4, 1, 1, {0, 0, 0, 0})), 3);
        m.g.outputs = {l};
        expect_refused(m.g, "not a softmax");
    }
}

TEST(ActivationMap, MisuseGivesClearErrors) {
    auto engine = Engine::from_graph(small_classifier());
    Session plain(engine, {Backend::Reference, 1});
    const auto input = random_input(engine->graph(), 1, 1);
    plain.run(input);
    EXPECT_THROW(plain.class_activation_map(0), Error);  // not asked for
    Session s(engine, with_maps(Backend::Reference));
    EXPECT_THROW(s.class_activation_map(0), Error);  // no run yet
    s.run(input);
    EXPECT_THROW(s.class_activation_map(4), Error);
    EXPECT_THROW(s.class_activation_map(-1), Error);
    EXPECT_THROW(s.class_activation_map(0, 1), Error);  // batch of 1
    EXPECT_NO_THROW(s.class_activation_map(3, 0));
}

}  // namespace
}  // namespace firesight::engine
