// model.pt round trip (same logits), head replacement keeps the backbone, bad files are errors.
#include <gtest/gtest.h>

#include <fstream>

#include "firesight/common/error.h"
#include "firesight/model/trained_model.h"
#include "test_util.h"

using namespace firesight;

TEST(TrainedModel, SaveLoadGivesTheSameLogits) {
    test::TempDir d;
    torch::manual_seed(3);
    model::TrainedModel m;
    model::MobileNetV2Options o;
    o.num_classes = 3;
    m.net = model::MobileNetV2(o);
    m.net->eval();
    m.class_names = {"fire", "neutral", "smoke"};
    m.preprocess.size = m.preprocess.resize_shorter = 96;
    m.info_json = R"({"note":"test"})";
    model::save_trained_model(m, d / "model.pt");
    auto back = model::load_trained_model(d.path());  // the run folder works too
    EXPECT_EQ(back.class_names, m.class_names);
    EXPECT_EQ(back.preprocess.size, 96);
    EXPECT_FLOAT_EQ(back.preprocess.scale, m.preprocess.scale);
    EXPECT_NE(back.info_json.find("test"), std::string::npos);
    torch::NoGradGuard g;
    const auto x = torch::randn({2, 3, 96, 96});
    EXPECT_TRUE(torch::equal(m.net->forward(x), back.net->forward(x)));
}

TEST(TrainedModel, PrunedWidthsSurviveTheRoundTrip) {
    // Structured pruning (optimize's struct) narrows hidden layers and the embedding.
    test::TempDir d;
    torch::manual_seed(5);
    model::MobileNetV2Options o;
    o.num_classes = 2;
    o.hidden_channels = {32, 48, 72, 72, 96, 96, 96, 192, 192, 192, 192, 288, 288, 480, 480, 480, 480};
    o.embedding_channels = 640;
    model::TrainedModel m;
    m.net = model::MobileNetV2(o);
    m.net->eval();
    m.class_names = {"fire", "neutral"};
    m.preprocess.size = m.preprocess.resize_shorter = 64;
    model::save_trained_model(m, d / "model.pt");
    auto back = model::load_trained_model(d / "model.pt");
    EXPECT_EQ(back.net->embedding_channels(), 640);
    EXPECT_EQ(back.net->features->ptr(16)->as<model::InvertedResidualImpl>()->depthwise->conv->weight.size(0), 480);
    torch::NoGradGuard g;
    const auto x = torch::randn({1, 3, 64, 64});
    EXPECT_TRUE(torch::equal(m.net->forward(x), back.net->forward(x)));
    back.net->replace_head(3);
    EXPECT_EQ(back.net->classifier->weight.size(1), 640);
}

TEST(TrainedModel, HeadReplacementKeepsBackboneWeights) {
    torch::manual_seed(4);
    model::MobileNetV2 net;
    const auto before = net->named_parameters();
    std::map<std::string, torch::Tensor> copy;
    for (const auto& p : before) copy[p.key()] = p.value().detach().clone();
    net->replace_head(2);
    EXPECT_EQ(net->num_classes(), 2);
    int compared = 0;
    for (const auto& p : net->named_parameters()) {
        if (p.key().rfind("classifier", 0) == 0) continue;
        EXPECT_TRUE(torch::equal(p.value(), copy.at(p.key()))) << p.key();
        ++compared;
    }
    EXPECT_GT(compared, 100);
}

TEST(TrainedModel, BadFilesAreClearErrors) {
    test::TempDir d;
    EXPECT_THROW(model::load_trained_model(d / "none.pt"), Error);
    std::ofstream(d / "junk.pt") << "not a model";
    EXPECT_THROW(model::load_trained_model(d / "junk.pt"), Error);
    model::TrainedModel m;
    m.net = model::MobileNetV2(model::MobileNetV2Options{2});
    m.class_names = {"only one"};
    EXPECT_THROW(model::save_trained_model(m, d / "x.pt"), Error);
    EXPECT_FALSE(std::filesystem::exists(d / "x.pt"));
}
