// End to end through the CLI: train on a generated 3-class folder with one corrupt file, eval,
// predict, resume; and a frozen-backbone head on a small fixed subset of the real fire-cair photos.
#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include <array>
#include <map>
#include <fstream>
#include <random>

#include <nlohmann/json.hpp>

#include "firesight/common/fileio.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace firesight;
using test::firesight_cli;
using test::shell_quote;

namespace {

cv::Scalar random_colour(std::mt19937& rng, int lo = 0, int hi = 255) {
    std::uniform_int_distribution<int> d(lo, hi);
    return cv::Scalar(d(rng), d(rng), d(rng));
}

// Three classes a person tells apart at a glance: stripes, bright discs on dark, smooth gradients.
// `names` renames them (discs, gradient, stripes) so a test can give them the product's classes.
void make_three_class_folder(const fs::path& root, int per_class, unsigned seed,
                             const std::array<std::string, 3>& names = {"discs", "gradient", "stripes"}) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> u(0, 1000);
    for (const auto& cls : names) fs::create_directories(root / cls);
    for (int i = 0; i < per_class; ++i) {
        cv::Mat stripes(96 + u(rng) % 40, 128 + u(rng) % 40, CV_8UC3);
        const int period = 6 + u(rng) % 14;
        const auto a = random_colour(rng), b = random_colour(rng);
        for (int y = 0; y < stripes.rows; ++y) stripes.row(y).setTo((y / period) % 2 ? a : b);
        cv::imwrite((root / names[2] / ("s" + std::to_string(i) + ".jpg")).string(), stripes);

        cv::Mat discs(110, 140, CV_8UC3, random_colour(rng, 0, 40));
        for (int k = 0; k < 3 + u(rng) % 4; ++k)
            cv::circle(discs, {u(rng) % 140, u(rng) % 110}, 8 + u(rng) % 20, random_colour(rng, 150, 255), cv::FILLED);
        cv::imwrite((root / names[0] / ("d" + std::to_string(i) + ".png")).string(), discs);

        cv::Mat grad(100, 130, CV_8UC3);
        const auto c0 = random_colour(rng), c1 = random_colour(rng);
        for (int y = 0; y < grad.rows; ++y)
            for (int x = 0; x < grad.cols; ++x) {
                const double t = (x + y) / double(grad.rows + grad.cols);
                for (int ch = 0; ch < 3; ++ch) grad.at<cv::Vec3b>(y, x)[ch] = cv::saturate_cast<uchar>(c0[ch] * (1 - t) + c1[ch] * t);
            }
        cv::imwrite((root / names[1] / ("g" + std::to_string(i) + ".jpg")).string(), grad);
    }
    std::ofstream(root / names[2] / "broken image.jpg") << "this is not a JPEG";
}

nlohmann::json read_json(const fs::path& p) { return nlohmann::json::parse(read_file_text(p)); }

}  // namespace

TEST(TrainCli, GeneratedThreeClassFolderEndToEnd) {
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_quant());
    test::TempDir d;
    make_three_class_folder(d / "data", 30, 11);
    const auto run = d / "run";
    const auto r = test::run_command(firesight_cli() + " train --no-progress --data " + shell_quote((d / "data").string()) +
                                     " --out " + shell_quote(run.string()) + " --backbone " + shell_quote(test::mobilenet_quant().string()) +
                                     " --image-size 96 --head-epochs 25 --epochs 2 --seed 5");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    EXPECT_NE(r.out.find("broken image.jpg"), std::string::npos) << "the corrupt file is reported by name\n" << r.out;
    for (const char* f : {"model.pt", "metrics.json", "splits.json", "curves.svg", "confusion.svg", "report.html", "checkpoint.pt"})
        EXPECT_TRUE(fs::exists(run / f)) << f;
    const auto metrics = read_json(run / "metrics.json");
    const double acc = metrics["test"]["accuracy"].get<double>();
    EXPECT_GT(acc, 0.9) << r.out;
    EXPECT_EQ(metrics["classes"], (nlohmann::json{"discs", "gradient", "stripes"}));
    EXPECT_GT(metrics["peak_rss_mb"].get<double>(), 0);
    bool head = false, finetune = false;
    for (const auto& e : metrics["epochs"]) {
        head |= e["stage"] == "head";
        finetune |= e["stage"] == "finetune";
    }
    EXPECT_TRUE(head && finetune);
    const auto splits = read_json(run / "splits.json");
    ASSERT_EQ(splits["skipped"].size(), 1u);
    EXPECT_NE(splits["skipped"][0]["file"].get<std::string>().find("broken image.jpg"), std::string::npos);
    EXPECT_NE(read_file_text(run / "confusion.svg").find("stripes"), std::string::npos);
    EXPECT_NE(read_file_text(run / "report.html").find("<table>"), std::string::npos);

    // eval on the run's own test split agrees with the trainer's figure.
    const auto e = test::run_command(firesight_cli() + " eval --no-progress --json --model " + shell_quote(run.string()) +
                                     " --data " + shell_quote((d / "data").string()) + " --out " + shell_quote((d / "eval").string()));
    ASSERT_EQ(e.exit_code, 0) << e.out;
    const auto ej = nlohmann::json::parse(e.out.substr(e.out.find('{')));
    const int n_test = static_cast<int>(splits["test"].size());
    EXPECT_NEAR(ej["accuracy"].get<double>(), acc, 1.01 / n_test);
    EXPECT_EQ(ej["per_class"]["discs"]["support"].get<int>() + ej["per_class"]["gradient"]["support"].get<int>() +
                  ej["per_class"]["stripes"]["support"].get<int>(),
              n_test);
    EXPECT_TRUE(fs::exists(d / "eval" / "confusion.svg"));
    // --split all sees every readable image and warns about the corrupt one.
    const auto all = test::run_command(firesight_cli() + " eval --no-progress --json --split all --model " +
                                       shell_quote((run / "model.pt").string()) + " --data " + shell_quote((d / "data").string()));
    ASSERT_EQ(all.exit_code, 0) << all.out;
    EXPECT_NE(all.out.find("broken image.jpg"), std::string::npos);
    EXPECT_EQ(nlohmann::json::parse(all.out.substr(all.out.find("{\n")))["total"].get<int>(), 90);

    // predict on a run folder prints the three classes with percentages.
    const auto p = test::run_command(firesight_cli() + " predict --model " + shell_quote(run.string()) + " " +
                                     shell_quote((d / "data" / "discs" / "d0.png").string()));
    ASSERT_EQ(p.exit_code, 0) << p.out;
    EXPECT_NE(p.out.find("discs"), std::string::npos) << p.out;
    EXPECT_NE(p.out.find("gradient"), std::string::npos) << p.out;
    EXPECT_NE(p.out.find("stripes"), std::string::npos) << p.out;
    EXPECT_NE(p.out.find("%"), std::string::npos) << p.out;
}

TEST(TrainCli, SeveralRootsAlarmFiguresPerSourceAndThresholds) {
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_quant());
    test::TempDir d;
    // Root "shared": fire (discs), neutral (gradients), smoke (stripes). Root "mine": more neutral
    // photos, listed in a SOURCES.tsv by kind, as a user's own folder beside a shared set.
    make_three_class_folder(d / "shared", 20, 3, {"fire", "neutral", "smoke"});
    make_three_class_folder(d / "tmp", 20, 4, {"x", "neutral", "y"});
    fs::create_directories(d / "mine");
    fs::rename(d / "tmp" / "neutral", d / "mine" / "neutral");
    {
        std::ofstream tsv(d / "mine" / "SOURCES.tsv");
        tsv << "file\tkind\n";
        for (int i = 0; i < 20; ++i) tsv << "neutral/g" << i << ".jpg\t" << (i % 2 ? "fog" : "sunset") << "\n";
    }
    const auto run = d / "run";
    const std::string data = " --data " + shell_quote((d / "shared").string()) + " --data " + shell_quote((d / "mine").string());
    const auto r = test::run_command(firesight_cli() + " train --no-progress" + data + " --out " + shell_quote(run.string()) + " --backbone " +
                                     shell_quote(test::mobilenet_quant().string()) + " --image-size 96 --head-epochs 25 --epochs 0 --seed 5");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    EXPECT_NE(r.out.find("alarm (fire or smoke): recall"), std::string::npos) << r.out;
    const auto splits = read_json(run / "splits.json");
    ASSERT_EQ(splits["roots"].size(), 2u);
    int from_mine = 0;
    for (const auto& s : splits["test"]) from_mine += s.value("root", 0) == 1;
    EXPECT_EQ(from_mine, 3) << "15% of the 20 photos of the second root";

    // eval finds the roots in splits.json, reports the alarm, each source, and the thumbnail check.
    const auto e = test::run_command(firesight_cli() + " eval --no-progress --json --threshold smoke=0.3 --model " + shell_quote(run.string()));
    ASSERT_EQ(e.exit_code, 0) << e.out;
    const auto ej = nlohmann::json::parse(e.out.substr(e.out.find("{\n")));
    EXPECT_EQ(ej["total"].get<int>(), static_cast<int>(splits["test"].size()));
    ASSERT_TRUE(ej.contains("alarm"));
    EXPECT_EQ(ej["alarm"]["alarm_images"].get<int>() + ej["alarm"]["other_images"].get<int>(), ej["total"].get<int>());
    EXPECT_EQ(ej["decision"], "smoke if p(smoke) >= 0.30, else argmax");
    int per_source_total = 0;
    for (const auto& [name, m] : ej["per_source"].items()) {
        EXPECT_TRUE(name == "shared" || name == "mine" || name == "mine/fog" || name == "mine/sunset") << name;
        if (name != "mine") per_source_total += m["total"].get<int>();
    }
    EXPECT_EQ(per_source_total, ej["total"].get<int>());
    EXPECT_EQ(ej["per_source"]["mine"]["total"].get<int>(), 3) << "the root as a whole, beside its sources";
    EXPECT_EQ(ej["degraded"]["total"].get<int>(), ej["total"].get<int>());
    const auto bad = test::run_command(firesight_cli() + " eval --no-progress --threshold flame=0.3 --model " + shell_quote(run.string()));
    EXPECT_NE(bad.exit_code, 0);
    EXPECT_NE(bad.out.find("'flame' is not a class of the model"), std::string::npos) << bad.out;

    // predict turns a confident smoke or fire into an alarm line.
    const auto p = test::run_command(firesight_cli() + " predict --threshold fire=0.0 --model " + shell_quote(run.string()) + " " +
                                     shell_quote((d / "shared" / "neutral" / "g0.jpg").string()));
    ASSERT_EQ(p.exit_code, 0) << p.out;
    EXPECT_NE(p.out.find("-> ALARM (fire)"), std::string::npos) << "fire=0 makes every photo a fire alarm\n" << p.out;
}

TEST(TrainCli, ResumeContinuesFromTheCheckpoint) {
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_quant());
    test::TempDir d;
    make_three_class_folder(d / "data", 8, 12);
    // Progress bars stay on: their labels show which stages ran.
    const auto base = firesight_cli() + " train --data " + shell_quote((d / "data").string()) + " --out " +
                      shell_quote((d / "run").string()) + " --backbone " + shell_quote(test::mobilenet_quant().string()) +
                      " --image-size 64 --head-epochs 5 --patience 10 --batch-size 8";
    const auto first = test::run_command(base + " --epochs 1");
    ASSERT_EQ(first.exit_code, 0) << first.out;
    EXPECT_NE(first.out.find("head (frozen backbone)"), std::string::npos) << first.out;
    const auto second = test::run_command(base + " --epochs 2 --resume");
    ASSERT_EQ(second.exit_code, 0) << second.out;
    EXPECT_NE(second.out.find("resume: continuing after finetune epoch 1"), std::string::npos) << second.out;
    EXPECT_EQ(second.out.find("head (frozen backbone)"), std::string::npos) << "the head stage must not run again";
    const auto metrics = read_json(d / "run" / "metrics.json");
    std::vector<int> finetune_epochs;
    int head_epochs = 0;
    for (const auto& e : metrics["epochs"]) {
        if (e["stage"] == "finetune") finetune_epochs.push_back(e["epoch"].get<int>());
        else ++head_epochs;
    }
    EXPECT_EQ(finetune_epochs, (std::vector<int>{1, 2}));
    EXPECT_EQ(head_epochs, 5);
}

TEST(TrainCli, BadArgumentsGiveOneLineErrors) {
    test::TempDir d;
    const auto r = test::run_command(firesight_cli() + " train --data " + shell_quote((d / "none").string()) + " --out " +
                                     shell_quote((d / "run").string()) + " --split 0.5,0.6,0.1");
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.out.find("--split"), std::string::npos) << r.out;
    const auto e = test::run_command(firesight_cli() + " eval --model " + shell_quote((d / "none").string()));
    EXPECT_NE(e.exit_code, 0);
    EXPECT_NE(e.out.find("no such file"), std::string::npos) << e.out;
}

// The libtorch path for the frozen blocks (builds without XNNPACK take it) still trains, and the
// engine path (the default where XNNPACK is built) reaches the same kind of accuracy on the same
// split: both compute the same prefix (test_prefix_engine), so neither may fall behind.
TEST(TrainCli, FrozenBlocksOnLibtorchOrEngineBothLearn) {
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_quant());
    test::TempDir d;
    make_three_class_folder(d / "data", 24, 23);
    std::map<std::string, double> acc;
    for (const std::string frozen : {"libtorch", "engine"}) {
        const auto run = d / ("run-" + frozen);
        const auto r = test::run_command(firesight_cli() + " train --no-progress --data " + shell_quote((d / "data").string()) +
                                         " --out " + shell_quote(run.string()) + " --backbone " + shell_quote(test::mobilenet_quant().string()) +
                                         " --image-size 96 --head-epochs 20 --epochs 1 --seed 3 --frozen " + frozen);
        if (frozen == "engine" && r.out.find("without the XNNPACK backend") != std::string::npos) continue;
        ASSERT_EQ(r.exit_code, 0) << r.out;
        acc[frozen] = read_json(run / "metrics.json")["test"]["accuracy"].get<double>();
        EXPECT_GT(acc[frozen], 0.85) << frozen << "\n" << r.out;
    }
    if (acc.count("engine")) EXPECT_NEAR(acc["engine"], acc["libtorch"], 0.1);
    const auto bad = test::run_command(firesight_cli() + " train --no-progress --data " + shell_quote((d / "data").string()) + " --out " +
                                       shell_quote((d / "bad").string()) + " --backbone " + shell_quote(test::mobilenet_quant().string()) +
                                       " --image-size 96 --frozen gpu");
    EXPECT_NE(bad.exit_code, 0);
    EXPECT_NE(bad.out.find("--frozen 'gpu'"), std::string::npos) << bad.out;
}

// Real photos in the suite: a head on 12 fires and 24 neutral scenes (frozen backbone) must beat
// "always neutral" clearly on a sample of the remaining photos.
TEST(TrainCli, FireCairSmallSubsetBeatsTheMajorityClass) {
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_quant());
    const auto src = test::assets() / "fire-cair";
    FIRESIGHT_REQUIRE_ASSET(src);
    test::TempDir d;
    auto files = [&](const char* cls) {
        std::vector<fs::path> v;
        for (const auto& e : fs::directory_iterator(src / cls)) v.push_back(e.path());
        std::sort(v.begin(), v.end());
        return v;
    };
    auto link = [&](const fs::path& f, const std::string& split, const char* cls) {
        fs::create_directories(d / "data" / split / cls);
        fs::create_symlink(fs::absolute(f), d / "data" / split / cls / f.filename());
    };
    const auto fire = files("fire"), neutral = files("neutral");
    ASSERT_GT(fire.size(), 40u);
    ASSERT_GT(neutral.size(), 200u);
    // Fixed subset: every 3rd fire for training (first 12), test on every 3rd from another offset.
    int n_fire_test = 0;
    for (std::size_t i = 0; i < fire.size(); ++i) {
        if (i % 3 == 0 && i / 3 < 12) link(fire[i], "train", "fire");
        else if (i % 3 == 1 && i < 6) link(fire[i], "val", "fire");
        else if (i % 3 == 2) link(fire[i], "test", "fire"), ++n_fire_test;
    }
    for (std::size_t i = 0; i < neutral.size(); ++i) {
        if (i % 15 == 0 && i / 15 < 24) link(neutral[i], "train", "neutral");
        else if (i % 15 == 1 && i < 60) link(neutral[i], "val", "neutral");
        else if (i % 15 == 7) link(neutral[i], "test", "neutral");
    }
    const auto run = d / "run";
    const auto r = test::run_command(firesight_cli() + " train --no-progress --data " + shell_quote((d / "data").string()) +
                                     " --out " + shell_quote(run.string()) + " --backbone " + shell_quote(test::mobilenet_quant().string()) +
                                     " --image-size 160 --head-epochs 40 --epochs 0");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    const auto t = read_json(run / "metrics.json")["test"];
    const int n_fire = t["per_class"]["fire"]["support"].get<int>();
    const int n_neutral = t["per_class"]["neutral"]["support"].get<int>();
    EXPECT_EQ(n_fire, n_fire_test);
    const double majority = static_cast<double>(std::max(n_fire, n_neutral)) / (n_fire + n_neutral);
    EXPECT_GT(t["accuracy"].get<double>(), majority + 0.1) << r.out;
    EXPECT_GT(t["balanced_accuracy"].get<double>(), 0.8) << r.out;
    EXPECT_GT(t["per_class"]["fire"]["recall"].get<double>(), 0.7) << r.out;
}
