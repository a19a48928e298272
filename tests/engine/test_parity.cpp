// The engine against libtorch on the same weights and real images: max |logit difference|
// <= 1e-4 for each backend, for an imported .tflite and for a converted libtorch module with a
// new 3-class head. Also `firesight build` + `firesight predict` on the engine file.
#include <gtest/gtest.h>

#include <fstream>

#include "firesight/engine/session.h"
#include "firesight/builder/tflite_graph.h"
#include "firesight/model/engine_convert.h"
#include "firesight/data/image.h"
#include "graph_helpers.h"
#include "test_util.h"

namespace firesight {
namespace {

std::vector<std::filesystem::path> sample_images() {
    const auto dir = test::assets() / "imagenet-samples";
    return {dir / "grace_hopper.bmp", dir / "hot_dog.jpg", dir / "parrot.jpg"};
}

// Logits from libtorch and from both engine backends for each sample image.
void check_parity(model::MobileNetV2 net, const engine::Graph& g, float tolerance) {
    auto e = engine::Engine::from_graph(g);
    data::Preprocess pre;
    pre.size = g.metadata.size;
    pre.resize_shorter = g.metadata.resize_shorter;
    pre.mean = g.metadata.mean;
    pre.scale = g.metadata.scale;
    std::vector<engine::Backend> backends = {engine::Backend::Reference};
    if (engine::backend_available(engine::Backend::Xnnpack)) backends.push_back(engine::Backend::Xnnpack);
    if (engine::backend_available(engine::Backend::XnnpackFused)) backends.push_back(engine::Backend::XnnpackFused);
    net->eval();
    for (const auto& path : sample_images()) {
        FIRESIGHT_REQUIRE_ASSET(path);
        const cv::Mat x = data::preprocess(data::decode_image(path), pre);
        torch::Tensor t = torch::from_blob(const_cast<float*>(x.ptr<float>()), {1, x.rows, x.cols, 3}).permute({0, 3, 1, 2});
        std::vector<float> expect;
        {
            torch::InferenceMode guard;
            const auto l = net->forward(t).contiguous();
            expect.assign(l.data_ptr<float>(), l.data_ptr<float>() + l.numel());
        }
        for (auto b : backends) {
            engine::Session s(e, {b, 2});
            const auto got = s.logits({x.ptr<float>(), x.total() * 3})[0];
            const float diff = engine::testing::max_abs_diff(expect, got);
            EXPECT_LE(diff, tolerance) << path.filename() << " backend " << engine::backend_name(b);
            std::printf("[parity] %s %-9s max |logit diff| = %.2e (logit range %.1f)\n", path.filename().c_str(),
                        engine::backend_name(b), diff, *std::max_element(expect.begin(), expect.end()));
        }
    }
}

TEST(EngineParity, TfliteEngineMatchesLibtorchImport) {
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_quant());
    auto imported = model::import_mobilenet_v2(test::mobilenet_quant());
    check_parity(imported.net, engine::graph_from_tflite_file(test::mobilenet_quant()), 1e-4f);
}

TEST(EngineParity, ConvertedModuleWithNewHeadMatchesLibtorch) {
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_tf2());
    auto imported = model::import_mobilenet_v2(test::mobilenet_tf2());
    torch::manual_seed(3);
    imported.net->replace_head(3);
    model::TrainedModel tm;
    tm.net = imported.net;
    tm.class_names = {"fire", "neutral", "smoke"};
    tm.preprocess.size = tm.preprocess.resize_shorter = 224;
    const auto g = model::trained_model_to_graph(tm);
    EXPECT_EQ(g.metadata.class_names, tm.class_names);
    EXPECT_EQ(g.ops.size(), 52u + 10u + 3u);  // 52 convs, 10 residual adds, pool + fc + softmax
    check_parity(imported.net, g, 1e-4f);
}

TEST(EngineCli, BuildFromATrainedRunKeepsNamesPreprocessingAndLogits) {
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_tf2());
    test::TempDir dir;
    auto imported = model::import_mobilenet_v2(test::mobilenet_tf2());
    torch::manual_seed(5);
    imported.net->replace_head(3);
    model::TrainedModel tm;
    tm.net = imported.net;
    tm.class_names = {"fire", "neutral", "smoke"};
    tm.preprocess.size = 224;
    tm.preprocess.resize_shorter = 256;
    tm.info_json = R"({"val_accuracy": 0.5})";
    std::filesystem::create_directories(dir / "run");
    model::save_trained_model(tm, dir / "run" / "model.pt");
    const auto fse = dir / "run.fse";
    auto r = test::run_command(test::firesight_cli() + " build --model " + test::shell_quote((dir / "run").string()) + " --out " +
                               test::shell_quote(fse.string()));
    ASSERT_EQ(r.exit_code, 0) << r.out;
    auto e = engine::Engine::load(fse);
    EXPECT_EQ(e->metadata().class_names, tm.class_names);
    EXPECT_EQ(e->metadata().resize_shorter, 256);
    EXPECT_NE(e->metadata().build_json.find("val_accuracy"), std::string::npos) << e->metadata().build_json;
    const auto path = test::assets() / "imagenet-samples" / "owl.jpg";
    data::Preprocess pre = tm.preprocess;
    const cv::Mat x = data::preprocess(data::decode_image(path), pre);
    torch::Tensor t = torch::from_blob(const_cast<float*>(x.ptr<float>()), {1, x.rows, x.cols, 3}).permute({0, 3, 1, 2});
    std::vector<float> expect;
    {
        torch::InferenceMode guard;
        tm.net->eval();
        const auto l = tm.net->forward(t).contiguous();
        expect.assign(l.data_ptr<float>(), l.data_ptr<float>() + l.numel());
    }
    engine::Session s(e, {engine::backend_available(engine::Backend::Xnnpack) ? engine::Backend::Xnnpack : engine::Backend::Reference, 2});
    EXPECT_LE(engine::testing::max_abs_diff(expect, s.logits({x.ptr<float>(), x.total() * 3})[0]), 1e-4f);
}

TEST(EngineCli, BuildThenPredictOnTheEngineFile) {
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_quant());
    test::TempDir dir;
    const auto fse = (dir / "m.fse").string();
    auto r = test::run_command(test::firesight_cli() + " build --model " + test::shell_quote(test::mobilenet_quant().string()) +
                               " --out " + test::shell_quote(fse));
    ASSERT_EQ(r.exit_code, 0) << r.out;
    EXPECT_NE(r.out.find("ops"), std::string::npos);
    const auto img = test::shell_quote((test::assets() / "imagenet-samples" / "grace_hopper.bmp").string());
    auto via_engine = test::run_command(test::firesight_cli() + " predict --top 1 --model " + test::shell_quote(fse) + " " + img);
    auto via_tflite = test::run_command(test::firesight_cli() + " predict --top 1 --model " +
                                        test::shell_quote(test::mobilenet_quant().string()) + " " + img);
    ASSERT_EQ(via_engine.exit_code, 0) << via_engine.out;
    ASSERT_EQ(via_tflite.exit_code, 0) << via_tflite.out;
    EXPECT_NE(via_engine.out.find("military uniform"), std::string::npos) << via_engine.out;
    // Same label and the same percentage to one decimal.
    EXPECT_EQ(via_engine.out, via_tflite.out);

    // A damaged engine file gives one clear error line naming the file.
    std::string bytes;
    {
        std::ifstream in(fse, std::ios::binary);
        bytes.assign(std::istreambuf_iterator<char>(in), {});
    }
    bytes[bytes.size() / 2] ^= 0x10;
    {
        std::ofstream out(fse, std::ios::binary | std::ios::trunc);
        out << bytes;
    }
    auto bad = test::run_command(test::firesight_cli() + " predict --model " + test::shell_quote(fse) + " " + img);
    EXPECT_NE(bad.exit_code, 0);
    EXPECT_NE(bad.out.find("m.fse"), std::string::npos) << bad.out;
    EXPECT_NE(bad.out.find("crc32"), std::string::npos) << bad.out;
}

}  // namespace
}  // namespace firesight
