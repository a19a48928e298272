#include "firesight/common/error.h"
#include "firesight/data/image.h"
#include "firesight/model/mobilenet_v2.h"
#include "test_util.h"

using namespace firesight;

TEST(SamePadding, MatchesTensorFlow) {
    // 224 -> 112 with a 3x3 stride-2 kernel: one extra pixel, after (bottom/right).
    auto p = model::same_padding(224, 3, 2);
    EXPECT_EQ(p.before, 0);
    EXPECT_EQ(p.after, 1);
    // Odd input: 7 -> 4 needs 2, split evenly.
    p = model::same_padding(7, 3, 2);
    EXPECT_EQ(p.before, 1);
    EXPECT_EQ(p.after, 1);
    // Stride 1, 3x3: symmetric 1.
    p = model::same_padding(56, 3, 1);
    EXPECT_EQ(p.before, 1);
    EXPECT_EQ(p.after, 1);
    // 1x1 kernels never pad; a 7x7 average pool is VALID and not padded here.
    p = model::same_padding(112, 1, 2);
    EXPECT_EQ(p.before + p.after, 0);
    // 5x5 stride 2 on 10: out 5, needs (5-1)*2+5-10 = 3 -> 1 before, 2 after.
    p = model::same_padding(10, 5, 2);
    EXPECT_EQ(p.before, 1);
    EXPECT_EQ(p.after, 2);
    // Dilation 2 widens a 3x3 kernel to 5.
    p = model::same_padding(10, 3, 1, 2);
    EXPECT_EQ(p.before, 2);
    EXPECT_EQ(p.after, 2);
}

TEST(MobileNetV2, StrideTwoConvPadsBottomRightLikeTensorFlow) {
    // A 3x3 stride-2 conv with all-ones weights on a 4x4 input: TF SAME pads only bottom/right,
    // so output (0,0) sums input rows 0..2 and cols 0..2.
    model::ConvAct c(1, 1, 3, 2, 1, false);
    torch::NoGradGuard g;
    c->conv->weight.fill_(1.0);
    c->conv->bias.zero_();
    auto x = torch::arange(16, torch::kFloat32).view({1, 1, 4, 4});
    auto y = c->forward(x);
    ASSERT_EQ(y.sizes(), (std::vector<long>{1, 1, 2, 2}));
    EXPECT_FLOAT_EQ(y[0][0][0][0].item<float>(), 0 + 1 + 2 + 4 + 5 + 6 + 8 + 9 + 10);
    // (1,1) covers rows 2..4 and cols 2..4, row/col 4 being padding.
    EXPECT_FLOAT_EQ(y[0][0][1][1].item<float>(), 10 + 11 + 14 + 15);
}

TEST(MobileNetV2, NamedSubmodulesAndShapes) {
    model::MobileNetV2 net(model::MobileNetV2Options{3, 0.2});
    const auto params = net->named_parameters();
    EXPECT_TRUE(params.contains("features.0.conv.weight"));
    EXPECT_TRUE(params.contains("features.1.depthwise.conv.weight"));
    EXPECT_FALSE(params.contains("features.1.expand.conv.weight"));  // t = 1 in the first block
    EXPECT_TRUE(params.contains("features.2.expand.conv.weight"));
    EXPECT_TRUE(params.contains("features.17.project.conv.weight"));
    EXPECT_TRUE(params.contains("features.18.conv.weight"));
    EXPECT_TRUE(params.contains("classifier.weight"));
    net->eval();
    torch::NoGradGuard g;
    auto y = net->forward(torch::zeros({2, 3, 224, 224}));
    EXPECT_EQ(y.sizes(), (std::vector<long>{2, 3}));
    auto mid = net->forward_features(torch::zeros({1, 3, 224, 224}), 0, 14);
    auto rest = net->forward_features(mid, 14, model::MobileNetV2Impl::kFeatureBlocks);
    EXPECT_EQ(rest.sizes(), (std::vector<long>{1, 1280, 7, 7}));
}

TEST(MobileNetV2, ImportsBothAssetsAndAgreesOnAnImage) {
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_quant());
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_tf2());
    auto a = model::import_mobilenet_v2(test::mobilenet_quant());
    auto b = model::import_mobilenet_v2(test::mobilenet_tf2());
    EXPECT_EQ(a.net->num_classes(), 1001);
    EXPECT_EQ(a.input.size, 224);
    EXPECT_FLOAT_EQ(a.input.mean, 128.0f);
    EXPECT_FLOAT_EQ(a.input.scale, 1.0f / 128.0f);
    EXPECT_NEAR(b.input.scale, 1.0f / 127.5f, 1e-6);
    // Weights came from the file: the first conv's weights are not the random init.
    EXPECT_EQ(a.net->named_parameters()["features.0.conv.weight"].sizes(), (std::vector<long>{32, 3, 3, 3}));

    const auto img = data::decode_image(test::assets() / "imagenet-samples" / "hot_dog.jpg");
    torch::NoGradGuard g;
    for (auto* m : {&a, &b}) {
        data::Preprocess p;
        p.mean = m->input.mean;
        p.scale = m->input.scale;
        cv::Mat x = data::preprocess(img, p);
        auto t = torch::from_blob(x.ptr<float>(), {1, 224, 224, 3}).permute({0, 3, 1, 2}).contiguous();
        auto probs = torch::softmax(m->net->forward(t), 1);
        EXPECT_EQ(probs.argmax(1).item<long>(), 935) << "hotdog is line 936 of imagenet_labels.txt, class 935";
        EXPECT_GT(probs[0][935].item<float>(), 0.5f);
    }
}

TEST(MobileNetV2, ReplaceHeadKeepsBackbone) {
    model::MobileNetV2 net(model::MobileNetV2Options{1001, 0.2});
    auto before = net->named_parameters()["features.5.expand.conv.weight"].clone();
    net->replace_head(3);
    EXPECT_EQ(net->num_classes(), 3);
    EXPECT_TRUE(torch::equal(before, net->named_parameters()["features.5.expand.conv.weight"]));
    EXPECT_EQ(net->named_parameters()["classifier.weight"].sizes(), (std::vector<long>{3, 1280}));
}

TEST(MobileNetV2, ImportRefusesANonMobileNet) {
    tflite::Model m;  // no layers at all
    EXPECT_THROW(model::import_mobilenet_v2(m), Error);
}
