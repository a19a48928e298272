// The XNNPACK backend against the reference kernels on random graphs with awkward shapes:
// 1x1 and 3x3 stride-2 convs, channel counts that are not multiples of 8, 7x7 inputs, grouped
// convs, depth multipliers, batch 1 and 4, 1 and 2 threads.
#include <gtest/gtest.h>

#include "firesight/engine/session.h"
#include "firesight/common/error.h"
#include "graph_helpers.h"

namespace firesight::engine {
namespace {

using testing::GraphMaker;

Graph odd_graph(unsigned seed) {
    GraphMaker m(seed);
    auto x = m.input({1, 7, 7, 5});
    auto a = m.conv(x, 13, 1, 1, {0, 0, 0, 0}, Activation::Relu6);            // 1x1, 5 -> 13
    auto b = m.depthwise(a, 3, 2, {0, 0, 1, 1}, Activation::Relu6);            // 3x3 stride 2, SAME-like
    auto c = m.conv(b, 11, 3, 2, {1, 1, 1, 1}, Activation::Relu);              // 3x3 stride 2
    auto d = m.conv(c, 11, 1, 1, {0, 0, 0, 0});                                // 1x1
    auto e = m.add(c, d, Activation::Relu6);                                   // residual
    auto f = m.depthwise(e, 3, 1, {1, 1, 1, 1}, Activation::None, 2);          // multiplier 2 -> 22
    auto g = m.conv(f, 6, 3, 1, {2, 2, 2, 2}, Activation::None, 2, true, 2);   // grouped, dilated
    auto h = m.unary(OpKind::Relu, g);
    auto p = m.pool(h);
    auto l = m.fc(p, 9);
    auto r = m.reshape(l, {1, 3, 3});
    auto flat = m.reshape(r, {1, 9});
    m.g.outputs = {m.softmax(flat), l};
    return m.g;
}

Graph stem_graph(unsigned seed) {
    GraphMaker m(seed);
    auto x = m.input({1, 9, 9, 3});
    auto a = m.conv(x, 17, 3, 2, {0, 0, 1, 1}, Activation::Relu6);  // MobileNet stem shape
    auto b = m.pool(a, true);
    auto c = m.conv(b, 7, 1, 1, {0, 0, 0, 0}, Activation::None, 1, false);  // no bias
    m.g.outputs = {m.fc(c, 4)};
    return m.g;
}

void compare_backends(const Graph& graph, int batch, int threads) {
    auto engine = Engine::from_graph(graph);
    Session ref(engine, {Backend::Reference, 1});
    Session xnn(engine, {Backend::Xnnpack, threads});
    GraphMaker m(static_cast<unsigned>(batch * 100 + threads));
    std::int64_t per = 1;
    for (std::size_t i = 1; i < graph.tensors[static_cast<std::size_t>(graph.inputs[0])].shape.size(); ++i)
        per *= graph.tensors[static_cast<std::size_t>(graph.inputs[0])].shape[i];
    const auto input = m.random(static_cast<std::size_t>(per * batch), -2.f, 2.f);
    for (int rep = 0; rep < 2; ++rep) {  // the second run reuses the planned buffers
        const auto r = ref.run(input, batch);
        const auto x = xnn.run(input, batch);
        ASSERT_EQ(r.size(), x.size());
        for (std::size_t k = 0; k < r.size(); ++k) {
            const auto n = ref.output_size(static_cast<int>(k)) * batch;
            float worst = 0.f;
            for (std::int64_t i = 0; i < n; ++i) worst = std::max(worst, std::abs(r[k][i] - x[k][i]) / (1.f + std::abs(r[k][i])));
            EXPECT_LT(worst, 1e-5f) << "output " << k << " batch " << batch << " threads " << threads;
        }
    }
}

class XnnpackVsReference : public ::testing::TestWithParam<std::tuple<int, int, int>> {};

TEST_P(XnnpackVsReference, OddShapes) {
    if (!backend_available(Backend::Xnnpack)) GTEST_SKIP() << "built without xnnpack";
    const auto [seed, batch, threads] = GetParam();
    compare_backends(odd_graph(static_cast<unsigned>(seed)), batch, threads);
    compare_backends(stem_graph(static_cast<unsigned>(seed)), batch, threads);
}

INSTANTIATE_TEST_SUITE_P(Shapes, XnnpackVsReference,
                         ::testing::Combine(::testing::Values(1, 2, 3), ::testing::Values(1, 4), ::testing::Values(1, 2)));

TEST(EngineSession, BatchSizeCanChangeBetweenRuns) {
    auto engine = Engine::from_graph(stem_graph(4));
    Session s(engine, {Backend::Reference, 1});
    GraphMaker m(8);
    const auto input = m.random(4 * 243);
    const auto one = s.logits(std::span(input).first(243), 1);
    const auto four = s.logits(input, 4);
    ASSERT_EQ(four.size(), 4u);
    EXPECT_EQ(one[0], four[0]);
}

// The session reads batch x 9x9x3 floats: any other length is refused, naming both counts,
// before a kernel could read past the caller's buffer.
TEST(EngineSession, RefusesAnInputOfTheWrongLength) {
    auto engine = Engine::from_graph(stem_graph(4));
    for (auto backend : {Backend::Reference, Backend::Xnnpack, Backend::NativeInt8}) {
        if (!backend_available(backend)) continue;
        Session s(engine, {backend, 1});
        EXPECT_EQ(s.input_size(), 243);
        const std::vector<float> input(2 * 243 + 1, 0.5f);
        const auto refusal = [&](std::span<const float> x, int batch, int which) {
            try {
                if (which == 0) s.run(x, batch);
                if (which == 1) s.probabilities(x, batch);
                if (which == 2) s.logits(x, batch);
            } catch (const Error& e) {
                return std::string(e.what());
            }
            return std::string();
        };
        for (int which = 0; which < 3; ++which) {
            const auto what = std::string(backend_name(backend)) + " call " + std::to_string(which);
            EXPECT_NE(refusal(std::span(input).first(242), 1, which).find("session: input has 242 floats, expected 243 (batch 1x9x9x3 for input 'input')"),
                      std::string::npos) << what;
            EXPECT_NE(refusal(std::span(input).first(244), 1, which).find("input has 244 floats, expected 243"), std::string::npos) << what;
            EXPECT_NE(refusal(std::span(input).first(243), 2, which).find("input has 243 floats, expected 486 (batch 2x9x9x3"), std::string::npos) << what;
            EXPECT_NE(refusal({}, 1, which).find("input has 0 floats"), std::string::npos) << what;
            EXPECT_NE(refusal(std::span(input).first(243), 0, which).find("batch must be at least 1"), std::string::npos) << what;
            EXPECT_EQ(refusal(std::span(input).first(486), 2, which), "") << what;
        }
    }
}

TEST(EngineSession, UnknownBackendAndBadThreadsAreErrors) {
    EXPECT_THROW(parse_backend("cuda"), Error);
    auto engine = Engine::from_graph(stem_graph(4));
    EXPECT_THROW(Session(engine, {Backend::Reference, 0}), Error);
}

}  // namespace
}  // namespace firesight::engine
