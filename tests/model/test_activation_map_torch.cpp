// Class activation maps from libtorch (TorchClassifier, for .tflite imports, run folders and
// model.pt) against the engine's on the same weights, on every backend, and the identity that a
// map's mean is its class logit minus the bias.
#include <gtest/gtest.h>

#include "firesight/engine/session.h"
#include "firesight/model/engine_convert.h"
#include "firesight/data/image.h"
#include "firesight/model/torch_classifier.h"
#include "test_util.h"

namespace firesight {
namespace {

TEST(ActivationMapTorch, EngineMapsMatchLibtorchOnTheSameWeights) {
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_tf2());
    const auto photo = test::assets() / "imagenet-samples" / "parrot.jpg";
    FIRESIGHT_REQUIRE_ASSET(photo);
    auto imported = model::import_mobilenet_v2(test::mobilenet_tf2());
    torch::manual_seed(7);
    imported.net->replace_head(3);
    model::TrainedModel tm;
    tm.net = imported.net;
    tm.class_names = {"fire", "neutral", "smoke"};
    tm.preprocess.size = tm.preprocess.resize_shorter = 224;
    auto engine = engine::Engine::from_graph(model::trained_model_to_graph(tm));
    model::TorchClassifier torch_clf(tm.net, tm.class_names, tm.preprocess, "test");

    const cv::Mat x = data::preprocess(data::decode_image(photo), tm.preprocess);
    const auto expected = torch_clf.predict_with_maps({x}).at(0);
    ASSERT_EQ(expected.maps.size(), 3u);
    ASSERT_EQ(expected.maps[0].size(), cv::Size(7, 7));
    // libtorch's own identity: mean of the map = logit - bias.
    {
        torch::InferenceMode guard;
        const auto t = torch::from_blob(const_cast<float*>(x.ptr<float>()), {1, 224, 224, 3}).permute({0, 3, 1, 2});
        const auto logits = tm.net->forward(t);
        for (int c = 0; c < 3; ++c)
            EXPECT_NEAR(cv::mean(expected.maps[static_cast<std::size_t>(c)])[0],
                        logits[0][c].item<float>() - tm.net->classifier->bias[c].item<float>(), 1e-4);
    }
    std::vector<engine::Backend> backends{engine::Backend::Reference, engine::Backend::NativeInt8};
    if (engine::backend_available(engine::Backend::Xnnpack)) backends.push_back(engine::Backend::Xnnpack);
    for (auto b : backends) {
        engine::SessionOptions o{b, 2};
        o.class_activation_maps = true;
        engine::Session s(engine, o);
        const auto probs = s.probabilities({x.ptr<float>(), x.total() * 3}).at(0);
        for (int c = 0; c < 3; ++c) {
            const auto m = s.class_activation_map(c);
            ASSERT_EQ(m.height, 7);
            ASSERT_EQ(m.width, 7);
            const cv::Mat& want = expected.maps[static_cast<std::size_t>(c)];
            double lo = 0, hi = 0;
            cv::minMaxLoc(cv::abs(want), &lo, &hi);
            const cv::Mat got(7, 7, CV_32F, const_cast<float*>(m.values.data()));
            EXPECT_LE(cv::norm(got, want, cv::NORM_INF), 1e-4 * std::max(1.0, hi)) << engine::backend_name(b) << " class " << c;
            EXPECT_NEAR(probs[static_cast<std::size_t>(c)], expected.probabilities[static_cast<std::size_t>(c)], 1e-5);
        }
    }
}

}  // namespace
}  // namespace firesight
