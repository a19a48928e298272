// ONNX export, verified by loading the file in OpenCV DNN and comparing its outputs with the
// engine's reference kernels on the same input.
#include <gtest/gtest.h>

#include <opencv2/dnn.hpp>

#include "firesight/engine/reference.h"
#include "firesight/builder/tflite_graph.h"
#include "firesight/builder/onnx_export.h"
#include "firesight/common/error.h"
#include "graph_helpers.h"
#include "test_util.h"

namespace firesight::engine {
namespace {

using testing::GraphMaker;

// NHWC floats -> an NCHW blob for OpenCV.
cv::Mat to_nchw_blob(const std::vector<float>& x, int n, int h, int w, int c) {
    const int dims[4] = {n, c, h, w};
    cv::Mat blob(4, dims, CV_32F);
    float* p = blob.ptr<float>();
    for (int b = 0; b < n; ++b)
        for (int y = 0; y < h; ++y)
            for (int xx = 0; xx < w; ++xx)
                for (int ch = 0; ch < c; ++ch)
                    p[((b * c + ch) * h + y) * w + xx] = x[static_cast<std::size_t>(((b * h + y) * w + xx) * c + ch)];
    return blob;
}

// Runs the exported file in OpenCV DNN and returns the max |difference| per engine output.
std::vector<float> compare_with_opencv(const Graph& g, const std::vector<float>& input) {
    test::TempDir dir;
    const auto path = dir / "m.onnx";
    save_onnx(g, path);
    cv::dnn::Net net = cv::dnn::readNetFromONNX(path.string());
    const auto& in_shape = g.tensors[static_cast<std::size_t>(g.inputs[0])].shape;
    net.setInput(to_nchw_blob(input, 1, in_shape[1], in_shape[2], in_shape[3]));
    std::vector<cv::String> names;
    for (auto o : g.outputs) names.push_back(g.tensors[static_cast<std::size_t>(o)].name);
    std::vector<cv::Mat> outs;
    net.forward(outs, names);
    auto all = run_reference_all(g, {input.data()}, 1);
    std::vector<float> diffs;
    for (std::size_t k = 0; k < g.outputs.size(); ++k) {
        const auto& expect = all[static_cast<std::size_t>(g.outputs[k])];
        EXPECT_EQ(outs[k].total(), expect.size());
        std::vector<float> got(outs[k].ptr<float>(), outs[k].ptr<float>() + std::min(outs[k].total(), expect.size()));
        diffs.push_back(testing::max_abs_diff(expect, got));
    }
    return diffs;
}

TEST(EngineOnnx, SmallGraphWithEveryExportedOpMatchesOpenCv) {
    GraphMaker m(31);
    auto x = m.input({1, 9, 9, 3});
    auto a = m.conv(x, 10, 3, 2, {0, 0, 1, 1}, Activation::Relu6);
    auto b = m.depthwise(a, 3, 1, {1, 1, 1, 1}, Activation::Relu);
    auto c = m.conv(b, 10, 1, 1, {0, 0, 0, 0});
    auto d = m.unary(OpKind::Relu6, m.unary(OpKind::HardSwish, m.add(a, c)));
    auto e = m.batch_norm(d);
    auto p = m.pool(e, true);
    auto l = m.fc(m.reshape(p, {1, 10}), 4);
    m.g.outputs = {m.softmax(l), l};
    const auto diffs = compare_with_opencv(m.g, m.random(243));
    for (auto dd : diffs) EXPECT_LT(dd, 1e-5f);
}

TEST(EngineOnnx, MobileNetV2MatchesOpenCvWithin1e4) {
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_tf2());
    const Graph g = graph_from_tflite_file(test::mobilenet_tf2());
    GraphMaker m(2);
    const auto diffs = compare_with_opencv(g, m.random(224 * 224 * 3));
    ASSERT_EQ(diffs.size(), 2u);
    EXPECT_LT(diffs[0], 1e-5f) << "probabilities";
    EXPECT_LT(diffs[1], 1e-4f) << "logits";
    std::printf("[onnx] MobileNetV2 OpenCV DNN vs engine: max |prob diff| %.2e, max |logit diff| %.2e\n", diffs[0], diffs[1]);
}

TEST(EngineOnnx, RefusesWhatOnnxCannotExpress) {
    GraphMaker m;
    auto x = m.input({1, 4, 4, 2});
    m.g.outputs = {m.reshape(x, {1, 32})};  // NHWC flattening
    EXPECT_THROW(export_onnx(m.g), Error);
}

}  // namespace
}  // namespace firesight::engine
