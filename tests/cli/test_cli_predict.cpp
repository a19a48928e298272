#include <fstream>
#include <map>

#include <nlohmann/json.hpp>

#include "firesight/common/fileio.h"
#include "firesight/data/image.h"
#include "test_util.h"

using namespace firesight;
using test::run_command;
using test::shell_quote;

namespace {

// For each sample photo, words of which at least one must appear in a top-5 label.
const std::map<std::string, std::vector<std::string>> kExpected = {
    {"cat.bmp", {"cat"}},
    {"grace_hopper.bmp", {"military uniform"}},
    {"hot_dog.jpg", {"hotdog"}},
    {"parrot.jpg", {"macaw", "lorikeet"}},
    {"owl.jpg", {"great grey owl"}},
    {"dragonfly.bmp", {"dragonfly"}},
    {"bird.bmp", {"chickadee", "junco", "finch", "jay", "bulbul", "robin", "brambling", "indigo bunting",
                  "water ouzel", "magpie", "goldfinch"}},
};

void expect_right_classes_in_top5(const std::filesystem::path& model) {
    std::string cmd = test::firesight_cli() + " predict --model " + shell_quote(model.string()) + " --top 5 --json";
    for (const auto& [name, _] : kExpected) cmd += " " + shell_quote((test::assets() / "imagenet-samples" / name).string());
    const auto r = run_command(cmd);
    ASSERT_EQ(r.exit_code, 0) << r.out;
    const auto j = nlohmann::json::parse(r.out);
    ASSERT_EQ(j.size(), kExpected.size());
    for (const auto& item : j) {
        const std::string image = std::filesystem::path(item["image"].get<std::string>()).filename();
        ASSERT_EQ(item["top"].size(), 5u);
        bool found = false;
        std::string labels;
        for (const auto& t : item["top"]) {
            const auto label = t["label"].get<std::string>();
            labels += label + " | ";
            for (const auto& want : kExpected.at(image)) found |= label.find(want) != std::string::npos;
            EXPECT_GE(t["prob"].get<double>(), 0.0);
            EXPECT_LE(t["prob"].get<double>(), 1.0);
        }
        EXPECT_TRUE(found) << model.filename() << ": " << image << " top-5 was " << labels;
    }
}

}  // namespace

TEST(CliPredict, QuantModelPutsTheRightClassInTop5) {
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_quant());
    expect_right_classes_in_top5(test::mobilenet_quant());
}

TEST(CliPredict, Tf2ModelPutsTheRightClassInTop5) {
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_tf2());
    expect_right_classes_in_top5(test::mobilenet_tf2());
}

TEST(CliPredict, HumanOutputIsOneLinePerImage) {
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_quant());
    const auto r = run_command(test::firesight_cli() + " predict --model " + shell_quote(test::mobilenet_quant().string()) +
                               " --top 3 " + shell_quote((test::assets() / "imagenet-samples" / "grace_hopper.bmp").string()));
    ASSERT_EQ(r.exit_code, 0) << r.out;
    EXPECT_EQ(r.out.rfind("grace_hopper.bmp  military uniform ", 0), 0u) << r.out;
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1);
    EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '%'), 3);
}

TEST(CliPredict, HelpOnEverySubcommand) {
    auto r = run_command(test::firesight_cli() + " --help");
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_NE(r.out.find("predict"), std::string::npos);
    r = run_command(test::firesight_cli() + " predict --help");
    EXPECT_EQ(r.exit_code, 0);
    EXPECT_NE(r.out.find("--top"), std::string::npos);
}

class CliBadInput : public ::testing::Test {
protected:
    // Runs predict and checks: non-zero exit, no crash, a single "firesight: error:" line naming `expect`.
    void expect_clean_error(const std::string& model, const std::string& image, const std::string& expect) {
        const auto r = run_command(test::firesight_cli() + " predict --model " + shell_quote(model) + " " + shell_quote(image));
        EXPECT_NE(r.exit_code, 0) << r.out;
        EXPECT_LT(r.exit_code, 128) << "crashed: " << r.out;
        EXPECT_EQ(r.out.rfind("firesight: error: ", 0), 0u) << r.out;
        EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
        EXPECT_NE(r.out.find(expect), std::string::npos) << r.out;
    }
    std::string image() const { return (test::assets() / "imagenet-samples" / "cat.bmp").string(); }
    test::TempDir dir;
};

TEST_F(CliBadInput, MissingModel) { expect_clean_error((dir / "nope.tflite").string(), image(), "no such file"); }

TEST_F(CliBadInput, TruncatedModelAtSeveralPoints) {
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_quant());
    const auto bytes = read_file_bytes(test::mobilenet_quant());
    for (std::size_t cut : {std::size_t{6}, std::size_t{2000}, bytes.size() / 3, bytes.size() * 9 / 10}) {
        const auto path = dir / ("cut" + std::to_string(cut) + ".tflite");
        std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), static_cast<long>(cut));
        expect_clean_error(path.string(), image(), path.filename().string());
    }
}

TEST_F(CliBadInput, RandomBytes) {
    const auto path = dir / "random.tflite";
    std::ofstream f(path, std::ios::binary);
    for (int i = 0; i < 5000; ++i) f.put(static_cast<char>((i * 7919) % 251));
    f.close();
    expect_clean_error(path.string(), image(), "random.tflite");
}

TEST_F(CliBadInput, WrongIdentifier) {
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_quant());
    auto bytes = read_file_bytes(test::mobilenet_quant());
    std::memcpy(bytes.data() + 4, "TFL2", 4);
    const auto path = dir / "wrongid.tflite";
    std::ofstream(path, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), static_cast<long>(bytes.size()));
    expect_clean_error(path.string(), image(), "expected 'TFL3'");
}

TEST_F(CliBadInput, ModelThatIsNotAMobileNetV2) {
    FIRESIGHT_REQUIRE_ASSET(test::assets() / "mobilenet_v2" / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite");
    expect_clean_error((test::assets() / "mobilenet_v2" / "mobilenet_v1_1.0_224_quant_embedding_extractor.tflite").string(),
                       image(), "MobileNetV2");
}

TEST_F(CliBadInput, ImageThatIsNotAnImage) {
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_quant());
    const auto path = dir / "photo.jpg";
    std::ofstream(path) << "GIF? no, plain text";
    expect_clean_error(test::mobilenet_quant().string(), path.string(), "photo.jpg: not a decodable image");
}

TEST_F(CliBadInput, OneBadImageDoesNotStopTheOthers) {
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_quant());
    const auto bad = dir / "bad.png";
    std::ofstream(bad) << "nope";
    const auto r = run_command(test::firesight_cli() + " predict --model " + shell_quote(test::mobilenet_quant().string()) +
                               " " + shell_quote(bad.string()) + " " + shell_quote(image()));
    EXPECT_EQ(r.exit_code, 1) << r.out;
    EXPECT_NE(r.out.find("bad.png: not a decodable image"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("cat.bmp  "), std::string::npos) << r.out;
}

// predict --cam: one heat-map JPEG per photo, named after it (a second photo of the same name gets
// -2), the size of the photo; the engine built from the .tflite draws the same maps as libtorch.
TEST(CliPredict, CamWritesOneHeatMapPerPhotoAndEngineMatchesLibtorch) {
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_quant());
    test::TempDir dir;
    const auto samples = test::assets() / "imagenet-samples";
    std::filesystem::create_directories(dir / "other");
    std::filesystem::copy_file(samples / "hot_dog.jpg", dir / "other" / "parrot.jpg");
    write_file_atomic(dir / "broken.jpg", "not an image");
    const std::string photos = " " + shell_quote((samples / "parrot.jpg").string()) + " " + shell_quote((dir / "other" / "parrot.jpg").string()) +
                               " " + shell_quote((dir / "broken.jpg").string()) + " " + shell_quote((samples / "owl.jpg").string());
    const auto fse = dir / "m.fse";
    ASSERT_EQ(run_command(test::firesight_cli() + " build --model " + shell_quote(test::mobilenet_quant().string()) + " --out " +
                          shell_quote(fse.string())).exit_code, 0);
    for (const auto& [model, out] : {std::pair{test::mobilenet_quant(), dir / "cam-tflite"}, std::pair{fse, dir / "cam-engine"}}) {
        const auto r = run_command(test::firesight_cli() + " predict --json --top 3 --cam " + shell_quote(out.string()) + " --model " +
                                   shell_quote(model.string()) + photos + " 2>&1");
        EXPECT_EQ(r.exit_code, 1) << r.out;  // broken.jpg
        EXPECT_NE(r.out.find("broken.jpg"), std::string::npos) << r.out;
        for (const char* name : {"parrot.jpg", "parrot-2.jpg", "owl.jpg"}) {
            const cv::Mat img = data::decode_image(out / name);
            EXPECT_EQ(img.size(), data::decode_image(samples / (std::string(name) == "parrot-2.jpg" ? "hot_dog.jpg" : name)).size()) << name;
        }
        EXPECT_FALSE(std::filesystem::exists(out / "broken.jpg"));
        EXPECT_NE(r.out.find("\"cam\""), std::string::npos) << r.out;
    }
    for (const char* name : {"parrot.jpg", "parrot-2.jpg", "owl.jpg"}) {
        cv::Mat diff;
        cv::absdiff(data::decode_image(dir / "cam-tflite" / name), data::decode_image(dir / "cam-engine" / name), diff);
        EXPECT_LT(cv::mean(diff)[0], 3.0) << name << ": the engine's map differs from libtorch's";
    }
}
