// The engine built from the real MobileNetV2 .tflite files: structure after optimisation,
// labels, preprocessing, file round trip, and the two backends agreeing on it.
#include <gtest/gtest.h>

#include "firesight/engine/session.h"
#include "firesight/engine/format.h"
#include "firesight/builder/tflite_graph.h"
#include "firesight/common/error.h"
#include "firesight/import/tflite.h"
#include "graph_helpers.h"
#include "import/tflite_writer.h"
#include "test_util.h"

namespace firesight::engine {
namespace {

// An operator input of -1 (an absent optional tensor) or a missing axes input, where the builder
// needs a tensor, is refused naming the operator; fuzz_tflite_import found the builder reading
// tensor -1 (std::vector::at threw out_of_range, which nothing caught) and shape(-1) unchecked.
TEST(EngineTflite, OperatorsWithAbsentInputsAreRefusedNamingTheOperator) {
    const test::FakeTensor in{"in", {1, 4, 4, 3}}, out{"out", {1, 1, 1, 3}};
    const std::vector<std::pair<test::FakeOp, std::string>> cases = {
        {{40, {0, -1}, {1}}, "tflite operator 0 (MEAN): tensor index -1 is out of range"},
        {{40, {0}, {1}}, "tflite operator 0 (MEAN): missing input 1 (the axes)"},
        {{1, {-1}, {1}}, "tflite operator 0 (AVERAGE_POOL_2D): tensor index -1 is out of range"},
        {{22, {-1}, {1}}, "tflite operator 0 (RESHAPE): tensor index -1 is out of range"},
    };
    for (const auto& [op, message] : cases) {
        const auto bytes = test::build_tflite({in, out}, {op});
        std::string error;
        try {
            graph_from_tflite(tflite::parse_model(bytes.data(), bytes.size()));
        } catch (const Error& e) {
            error = e.what();
        }
        EXPECT_NE(error.find(message), std::string::npos) << message << " / got: " << error;
    }
}

// HARD_SWISH (MobileNetV3's activation) becomes the engine's HardSwish: x * relu6(x + 3) / 6,
// its flat parts (x <= -3: 0, x >= 3: x) and the curve between.
TEST(EngineTflite, HardSwishImportsAndComputesXTimesRelu6OfXPlus3Over6) {
    const test::FakeTensor in{"in", {1, 2, 2, 3}}, out{"out", {1, 2, 2, 3}};
    const auto bytes = test::build_tflite({in, out}, {{117, {0}, {1}}});
    const Graph g = graph_from_tflite(tflite::parse_model(bytes.data(), bytes.size()));
    ASSERT_EQ(g.ops.size(), 2u);  // the operator, and the softmax the builder adds for probabilities
    EXPECT_EQ(g.ops[0].kind, OpKind::HardSwish);
    ASSERT_EQ(g.outputs.size(), 2u);  // probabilities, then the logits: the HardSwish output
    const std::vector<float> x = {-5.f, -3.f, -2.f, -1.f, -0.5f, 0.f, 0.5f, 1.f, 2.f, 3.f, 4.f, 100.f};
    const auto logits = testing::reference_output(g, x, 1, 1);
    ASSERT_EQ(logits.size(), x.size());
    const float expect[] = {0.f, 0.f, -2.f / 6, -2.f / 6, -1.25f / 6, 0.f, 1.75f / 6, 4.f / 6, 10.f / 6, 3.f, 4.f, 100.f};
    for (std::size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(logits[i], expect[i], 1e-6f) << "x = " << x[i];
}

TEST(EngineTflite, BuildsQuantMobileNetV2WithLabelsAndPreprocessing) {
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_quant());
    const Graph g = graph_from_tflite_file(test::mobilenet_quant());
    int convs = 0, adds = 0;
    for (const auto& op : g.ops) {
        convs += op.kind == OpKind::Conv2D || op.kind == OpKind::DepthwiseConv2D;
        adds += op.kind == OpKind::Add;
        EXPECT_NE(op.kind, OpKind::Identity);
    }
    EXPECT_EQ(convs, 53);  // stem, 2 + 16 x 3 in the blocks, the 1280 conv, the 1x1 logits conv
    EXPECT_EQ(adds, 10);
    ASSERT_EQ(g.metadata.class_names.size(), 1001u);
    EXPECT_EQ(g.metadata.class_names[0], "background");
    EXPECT_EQ(g.metadata.size, 224);
    EXPECT_NEAR(g.metadata.mean, 128.f, 1.f);
    ASSERT_EQ(g.outputs.size(), 2u);
    EXPECT_NEAR(static_cast<double>(count_macs(g)), 300e6, 10e6);
}

TEST(EngineTflite, BackendsAgreeOnMobileNetV2AndFileRoundTrips) {
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_tf2());
    test::TempDir dir;
    save_engine(graph_from_tflite_file(test::mobilenet_tf2()), dir / "m.fse");
    auto e = Engine::load(dir / "m.fse");
    testing::GraphMaker m(5);
    const auto x = m.random(224 * 224 * 3);
    Session ref(e, {Backend::Reference, 1});
    const auto r = ref.logits(x)[0];
    if (!backend_available(Backend::Xnnpack)) GTEST_SKIP() << "built without xnnpack";
    Session xnn(e, {Backend::Xnnpack, 2});
    const auto l = xnn.logits(x)[0];
    EXPECT_LT(testing::max_abs_diff(r, l), 1e-4f);
}

}  // namespace
}  // namespace firesight::engine
