// Evaluating engine variants: exact metrics from a tiny engine whose answers are known by
// construction, sizes and gzip sizes, timing through a child firesight-run, the results JSON
// round trip, the Pareto front, and the table / SVG / HTML views.
#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>

#include <cstdlib>
#include <map>
#include <fstream>
#include <random>

#include "firesight/engine/session.h"
#include "firesight/engine/ir.h"
#include "firesight/builder/quantize.h"
#include "firesight/engine/format.h"
#include "firesight/common/error.h"
#include "firesight/common/fileio.h"
#include "firesight/data/image.h"
#include "firesight/eval/variants.h"
#include "test_util.h"

namespace firesight::eval {
namespace {

namespace fs = std::filesystem;
using engine::Graph;
using engine::Op;
using engine::OpKind;

constexpr int kSize = 4;
constexpr int kWide = 48;  // channels of the hidden layer: repeated weights make the file compressible

// input [1,4,4,3] -> 1x1 conv copying input channel j%3 to channel j -> mean pool -> FC summing the
// copies of each input channel -> softmax. The predicted class is the input channel with the
// largest mean, so a test knows every answer.
Graph channel_argmax_engine() {
    Graph g;
    auto act = [&](std::vector<std::int32_t> shape, const std::string& name) {
        engine::Tensor t;
        t.name = name;
        t.shape = std::move(shape);
        return g.add_tensor(std::move(t));
    };
    const auto x = act({1, kSize, kSize, 3}, "input");
    g.inputs = {x};
    std::vector<float> conv_w(kWide * 3, 0.f), fc_w(3 * kWide, 0.f);
    for (int j = 0; j < kWide; ++j) {
        conv_w[static_cast<std::size_t>(j * 3 + j % 3)] = 1.f;
        fc_w[static_cast<std::size_t>((j % 3) * kWide + j)] = 1.f;
    }
    Op conv;
    conv.kind = OpKind::Conv2D;
    conv.inputs = {x, g.add_constant("conv.w", {kWide, 1, 1, 3}, conv_w), g.add_constant("conv.b", {kWide}, std::vector<float>(kWide, 0.f))};
    conv.outputs = {act({1, kSize, kSize, kWide}, "hidden")};
    g.ops.push_back(conv);
    Op pool;
    pool.kind = OpKind::GlobalAveragePool;
    pool.inputs = {conv.outputs[0]};
    pool.outputs = {act({1, kWide}, "pooled")};
    g.ops.push_back(pool);
    Op fc;
    fc.kind = OpKind::FullyConnected;
    fc.inputs = {pool.outputs[0], g.add_constant("fc.w", {3, kWide}, fc_w), g.add_constant("fc.b", {3}, {0.f, 0.f, 0.f})};
    fc.outputs = {act({1, 3}, "logits")};
    g.ops.push_back(fc);
    Op sm;
    sm.kind = OpKind::Softmax;
    sm.inputs = {fc.outputs[0]};
    sm.outputs = {act({1, 3}, "probabilities")};
    g.ops.push_back(sm);
    g.outputs = {sm.outputs[0], fc.outputs[0]};
    g.metadata.class_names = {"fire", "neutral", "smoke"};
    g.metadata.size = g.metadata.resize_shorter = kSize;
    g.metadata.mean = 0.f;
    g.metadata.scale = 1.f / 255.f;
    engine::validate(g);
    return g;
}

// An input whose channel `c` is the brightest everywhere (with some texture, so no two are alike).
std::vector<float> input_of_class(int c, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> low(0.f, 0.3f);
    std::vector<float> x(static_cast<std::size_t>(kSize * kSize * 3));
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<int>(i % 3) == c ? 0.8f + low(rng) : low(rng);
    return x;
}

struct Fixture {
    test::TempDir dir;
    fs::path engine_path = dir / "tiny.fse";
    Fixture() { engine::save_engine(channel_argmax_engine(), engine_path); }
};

// Predicted and true classes chosen so that the confusion matrix has off-diagonal entries.
EvalImages known_images() {
    const std::vector<int> predicted = {0, 0, 1, 2, 2, 1, 0};
    const std::vector<int> truth = {0, 1, 1, 2, 2, 2, 0};
    EvalImages im;
    im.classes = {"fire", "neutral", "smoke"};
    for (std::size_t i = 0; i < predicted.size(); ++i) {
        im.inputs.push_back(input_of_class(predicted[i], static_cast<unsigned>(i + 1)));
        im.labels.push_back(truth[i]);
        im.paths.push_back("synthetic-" + std::to_string(i));
    }
    return im;
}

TEST(EvaluateVariant, ExactMetricsSizesAndTimingFromAChildProcess) {
    Fixture f;
    const auto r = evaluate_variant("fp32", {{"int8", false}}, f.engine_path, known_images(), 5);
    EXPECT_EQ(r.name, "fp32");
    EXPECT_EQ(r.settings["int8"], false);
    EXPECT_EQ(r.engine, f.engine_path);
    const std::vector<std::vector<int>> want = {{2, 0, 0}, {1, 1, 0}, {0, 1, 2}};
    EXPECT_EQ(r.metrics.confusion, want);
    EXPECT_EQ(r.metrics.total, 7);
    EXPECT_DOUBLE_EQ(r.metrics.accuracy, 5.0 / 7.0);
    ASSERT_EQ(r.metrics.per_class.size(), 3u);
    EXPECT_DOUBLE_EQ(r.metrics.per_class[0].recall, 1.0);
    EXPECT_DOUBLE_EQ(r.metrics.per_class[1].recall, 0.5);
    EXPECT_DOUBLE_EQ(r.metrics.per_class[2].recall, 2.0 / 3.0);

    const auto bytes = read_file_bytes(f.engine_path);
    EXPECT_EQ(r.size_bytes, fs::file_size(f.engine_path));
    EXPECT_EQ(r.gzip_bytes, gzip_size(std::string(bytes.begin(), bytes.end())));
    EXPECT_GT(r.gzip_bytes, 0u);

    EXPECT_GT(r.latency_ms, 0.0);
    EXPECT_GE(r.latency_p90_ms, r.latency_ms);
    EXPECT_GT(r.peak_rss_mb, 0.0);
    EXPECT_LT(r.peak_rss_mb, 4096.0);  // megabytes, not kilobytes
    EXPECT_EQ(r.backend, engine::backend_available(engine::Backend::Xnnpack) ? "xnnpack" : "reference");
}

TEST(EvaluateVariant, Int8EngineKeepsTheAnswersAndNamesTheBackendItWasTimedOn) {
    Fixture f;
    auto g = channel_argmax_engine();
    // Ranges wide enough for every activation of the known inputs (values in [0, 1.1]).
    std::map<std::string, engine::TensorRange> ranges = {
        {"input", {0.f, 1.2f}}, {"hidden", {0.f, 1.2f}}, {"pooled", {0.f, 1.2f}}, {"logits", {0.f, 20.f}}};
    engine::quantize_int8(g, ranges);
    const auto q = f.dir / "tiny-int8.fse";
    engine::save_engine(g, q);
    const auto r = evaluate_variant("int8", {{"int8", true}}, q, known_images(), 3);
    const std::vector<std::vector<int>> want = {{2, 0, 0}, {1, 1, 0}, {0, 1, 2}};
    EXPECT_EQ(r.metrics.confusion, want);
    EXPECT_TRUE(r.backend == "xnnpack" || r.backend == "native-int8" || r.backend == "reference") << r.backend;
    EXPECT_GT(r.latency_ms, 0.0);
    const auto b = bench_engine(find_firesight_run(), q, 3, 1, "native-int8");
    EXPECT_EQ(b.backend, "native-int8");
}

TEST(EvaluateVariant, MatchesClassesByNameAndRefusesUnknownOnes) {
    Fixture f;
    // The same images with the classes listed in another order: labels follow the names.
    auto im = known_images();
    const std::vector<std::string> reordered = {"smoke", "fire", "neutral"};
    for (auto& l : im.labels) l = static_cast<int>(std::find(reordered.begin(), reordered.end(), im.classes[static_cast<std::size_t>(l)]) - reordered.begin());
    im.classes = reordered;
    const auto r = evaluate_variant("fp32", {}, f.engine_path, im, 0);
    EXPECT_DOUBLE_EQ(r.metrics.accuracy, 5.0 / 7.0);
    EXPECT_EQ(r.metrics.classes, (std::vector<std::string>{"fire", "neutral", "smoke"}));
    EXPECT_EQ(r.latency_ms, 0.0);  // bench_runs 0: not timed

    im.classes[0] = "lava";
    try {
        evaluate_variant("fp32", {}, f.engine_path, im, 0);
        FAIL() << "an unknown class was accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("'lava' is not a class"), std::string::npos) << e.what();
    }
    auto wrong_size = known_images();
    wrong_size.inputs[3].resize(10);
    try {
        evaluate_variant("fp32", {}, f.engine_path, wrong_size, 0);
        FAIL() << "a wrongly sized input was accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("synthetic-3: 10 input values"), std::string::npos) << e.what();
    }
}

TEST(EvaluateVariant, MissingFiresightRunIsAClearError) {
    Fixture f;
    // ctest points $FIRESIGHT_RUN at the build's firesight-run; put it back however this ends.
    const char* given = std::getenv("FIRESIGHT_RUN");
    ASSERT_NE(given, nullptr) << "ctest sets FIRESIGHT_RUN (tests/CMakeLists.txt)";
    struct Restore {
        std::string value;
        ~Restore() { ::setenv("FIRESIGHT_RUN", value.c_str(), 1); }
    } restore{given};
    const fs::path missing = f.dir / "no-such-dir" / "firesight-run";
    ::setenv("FIRESIGHT_RUN", missing.c_str(), 1);
    try {
        evaluate_variant("fp32", {}, f.engine_path, known_images(), 3);
        FAIL() << "evaluate_variant ran without firesight-run";
    } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("firesight-run not found"), std::string::npos) << msg;
        EXPECT_NE(msg.find(missing.string()), std::string::npos) << msg;
    }
    EXPECT_THROW(bench_engine(missing, f.engine_path, 3), Error);
    // Without the override it looks beside the program, as an installed firesight finds it; this
    // test binary has none beside it, and the error says where it looked.
    ::unsetenv("FIRESIGHT_RUN");
    try {
        find_firesight_run();
        FAIL() << "found a firesight-run beside the test binary";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("set $FIRESIGHT_RUN"), std::string::npos) << e.what();
    }
    ::setenv("FIRESIGHT_RUN", restore.value.c_str(), 1);
    EXPECT_TRUE(fs::exists(find_firesight_run()));
}

TEST(EvaluateVariant, ChildPeakMemoryIsItsOwnNotTheParents) {
    Fixture f;
    // The parent holds 256 MB of touched memory; the child only loads a few-kilobyte engine.
    std::vector<char> ballast(256u << 20);
    for (std::size_t i = 0; i < ballast.size(); i += 4096) ballast[i] = static_cast<char>(i);
    const auto b = bench_engine(find_firesight_run(), f.engine_path, 3);
    EXPECT_GT(b.peak_rss_mb, 0.0);
    EXPECT_LT(b.peak_rss_mb, 128.0) << "the child's peak includes the parent's memory";
    EXPECT_NE(ballast[4096], 1);  // keep the ballast alive past the child
}

TEST(EvaluateVariant, BenchReportsConsistentFigures) {
    Fixture f;
    const auto b = bench_engine(find_firesight_run(), f.engine_path, 7);
    EXPECT_EQ(b.runs, 7);
    EXPECT_GT(b.latency_min_ms, 0.0);
    EXPECT_LE(b.latency_min_ms, b.latency_ms);
    EXPECT_LE(b.latency_ms, b.latency_p90_ms);
    EXPECT_GE(b.load_ms, 0.0);
    EXPECT_GT(b.peak_rss_mb, 0.0);
    // A broken engine makes the child fail, and the error says which file.
    std::ofstream(f.dir / "junk.fse", std::ios::binary) << std::string(300, 'x');
    try {
        bench_engine(find_firesight_run(), f.dir / "junk.fse", 3);
        FAIL() << "a junk engine was timed";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("junk.fse"), std::string::npos) << e.what();
    }
}

TEST(EvaluateVariant, FiresightRunBenchPrintsOneJsonObjectAndRefusesMixedModes) {
    Fixture f;
    const auto run = test::shell_quote(find_firesight_run().string()), model = test::shell_quote(f.engine_path.string());
    const auto r = test::run_command(run + " --model " + model + " --bench 4 --json --backend reference");
    ASSERT_EQ(r.exit_code, 0) << r.out;
    const auto brace = r.out.find('{');  // stderr (the "loaded" line) comes along in r.out
    ASSERT_NE(brace, std::string::npos) << r.out;
    const auto j = nlohmann::json::parse(r.out.substr(brace));
    EXPECT_EQ(j["runs"], 4);
    EXPECT_EQ(j["threads"], 1);
    EXPECT_EQ(j["backend"], "reference");
    EXPECT_EQ(j["file_bytes"].get<std::uint64_t>(), fs::file_size(f.engine_path));
    for (const char* k : {"load_ms", "latency_median_ms", "latency_p90_ms", "latency_min_ms", "peak_rss_mb"})
        EXPECT_TRUE(j[k].is_number()) << k;
    const auto text = test::run_command(run + " --model " + model + " --bench 3");
    EXPECT_EQ(text.exit_code, 0) << text.out;
    EXPECT_NE(text.out.find("latency median"), std::string::npos) << text.out;
    const auto mixed = test::run_command(run + " --model " + model + " --bench 3 some.ppm");
    EXPECT_NE(mixed.exit_code, 0);
    EXPECT_NE(mixed.out.find("give no input files"), std::string::npos) << mixed.out;
    const auto nothing = test::run_command(run + " --model " + model);
    EXPECT_NE(nothing.exit_code, 0);
    EXPECT_NE(nothing.out.find("no inputs"), std::string::npos) << nothing.out;
    const auto json_missing = test::run_command(run + " --model " + model + " --json missing.ppm");
    EXPECT_NE(json_missing.exit_code, 0);
    EXPECT_NE(json_missing.out.find("missing.ppm"), std::string::npos) << json_missing.out;
}

TEST(EvaluateVariant, GzipSizeShrinksRepetitiveBytesOnly) {
    const std::string repetitive(200000, 'a');
    EXPECT_LT(gzip_size(repetitive), 1000u);
    std::mt19937 rng(5);
    std::string noise(200000, '\0');
    for (auto& c : noise) c = static_cast<char>(rng() & 0xff);
    const auto g = gzip_size(noise);
    EXPECT_GT(g, 199000u);  // random bytes do not compress
    EXPECT_LT(g, 201000u);
    EXPECT_EQ(gzip_size(""), 20u);  // gzip header + empty deflate block + trailer
}

TEST(EvaluateVariant, LoadsImagesWithTheEnginesPreprocessingAndSkipsCorruptOnes) {
    Fixture f;
    // Pure red, green and blue pictures (OpenCV writes BGR) are fire, neutral and smoke to this engine.
    const std::vector<cv::Scalar> bgr = {{0, 0, 250}, {0, 250, 0}, {250, 0, 0}};
    std::vector<std::string> paths;
    std::vector<int> labels;
    for (int c = 0; c < 3; ++c) {
        cv::Mat img(10, 12, CV_8UC3, bgr[static_cast<std::size_t>(c)]);
        const auto p = (f.dir / ("img" + std::to_string(c) + ".png")).string();
        ASSERT_TRUE(cv::imwrite(p, img));
        paths.push_back(p);
        labels.push_back(c);
    }
    const auto corrupt = (f.dir / "corrupt.jpg").string();
    std::ofstream(corrupt, std::ios::binary) << "\xff\xd8\xff\xe0 this is not really a jpeg";
    paths.insert(paths.begin() + 1, corrupt);
    labels.insert(labels.begin() + 1, 1);
    std::vector<std::string> skipped;
    const auto im = load_eval_images(f.engine_path, paths, labels, {}, &skipped);
    ASSERT_EQ(skipped.size(), 1u) << (skipped.empty() ? "" : skipped[0] + " / " + skipped.back());
    EXPECT_NE(skipped[0].find("corrupt.jpg"), std::string::npos) << skipped[0];
    ASSERT_EQ(im.inputs.size(), 3u);
    EXPECT_EQ(im.labels, (std::vector<int>{0, 1, 2}));
    EXPECT_EQ(im.classes, (std::vector<std::string>{"fire", "neutral", "smoke"}));
    // The same preprocessing as predict/eval use for this engine's metadata.
    data::Preprocess pre;
    pre.size = pre.resize_shorter = kSize;
    pre.mean = 0.f;
    pre.scale = 1.f / 255.f;
    const cv::Mat want = data::preprocess(data::decode_image(paths[0]), pre);
    ASSERT_EQ(im.inputs[0].size(), static_cast<std::size_t>(kSize * kSize * 3));
    for (std::size_t i = 0; i < im.inputs[0].size(); ++i) EXPECT_FLOAT_EQ(im.inputs[0][i], want.ptr<float>()[i]);
    const auto r = evaluate_variant("fp32", {}, f.engine_path, im, 0);
    EXPECT_DOUBLE_EQ(r.metrics.accuracy, 1.0);

    EXPECT_THROW(load_eval_images(f.engine_path, {paths[0]}, {5}, {}, nullptr), Error);  // label out of range
}

VariantResult made_up(const std::string& name, double accuracy, double latency_ms, std::uint64_t size) {
    VariantResult r;
    r.name = name;
    r.engine = "/tmp/" + name + ".fse";
    // 100 images of two classes, `accuracy` of them right (all mistakes in class b).
    const int right = static_cast<int>(std::lround(accuracy * 100));
    std::vector<int> truth(100), pred(100);
    for (int i = 0; i < 100; ++i) {
        truth[static_cast<std::size_t>(i)] = i < 50 ? 0 : 1;
        pred[static_cast<std::size_t>(i)] = i < right ? truth[static_cast<std::size_t>(i)] : 1 - truth[static_cast<std::size_t>(i)];
    }
    r.metrics = compute_metrics({"fire", "neutral"}, truth, pred);
    r.latency_ms = latency_ms;
    r.latency_p90_ms = latency_ms * 1.1;
    r.size_bytes = size;
    r.gzip_bytes = size * 9 / 10;
    r.peak_rss_mb = 30 + static_cast<double>(size) / 1e6;
    r.settings = {{"note", name}};
    r.backend = name.find("int8") != std::string::npos ? "native-int8" : "xnnpack";
    return r;
}

std::vector<VariantResult> made_up_set() {
    return {made_up("fp32", 0.95, 40, 8'000'000),       made_up("int8", 0.92, 20, 2'000'000),
            made_up("prune50", 0.88, 30, 5'000'000),    made_up("k16", 0.92, 25, 3'000'000),
            made_up("int8-k16", 0.90, 10, 1'000'000),   made_up("untimed", 0.99, 0, 1'000'000)};
}

TEST(Variants, ParetoFrontExcludesDominatedAndUntimedPoints) {
    const auto v = made_up_set();
    // int8-k16 (90%, 10 ms), int8 (92%, 20 ms), fp32 (95%, 40 ms) are the front; prune50 is beaten by
    // int8 on both, k16 ties int8 on accuracy but is slower, untimed has no latency.
    EXPECT_EQ(pareto_front(v), (std::vector<std::size_t>{4, 1, 0}));
    // Equal points do not dominate each other.
    std::vector<VariantResult> twins = {made_up("a", 0.9, 10, 1), made_up("b", 0.9, 10, 1)};
    EXPECT_EQ(pareto_front(twins), (std::vector<std::size_t>{0, 1}));
    EXPECT_TRUE(pareto_front({}).empty());
}

TEST(Variants, JsonRoundTripKeepsEveryField) {
    auto v = made_up_set();
    set_accuracy_drops(v, "fp32");
    EXPECT_NEAR(v[1].accuracy_drop, 3.0, 1e-9);
    EXPECT_NEAR(v[5].accuracy_drop, -4.0, 1e-9);
    const auto j = nlohmann::json::parse(variants_json(v, "int8").dump());
    EXPECT_EQ(j["chosen"], "int8");
    EXPECT_EQ(j["pareto_front"], (nlohmann::json{"int8-k16", "int8", "fp32"}));
    const auto back = variants_from_json(j);
    ASSERT_EQ(back.size(), v.size());
    for (std::size_t i = 0; i < v.size(); ++i) {
        const auto& a = v[i];
        const auto& b = back[i];
        EXPECT_EQ(a.name, b.name);
        EXPECT_EQ(a.settings, b.settings);
        EXPECT_EQ(a.engine, b.engine);
        EXPECT_EQ(a.size_bytes, b.size_bytes);
        EXPECT_EQ(a.gzip_bytes, b.gzip_bytes);
        EXPECT_EQ(a.latency_ms, b.latency_ms);
        EXPECT_EQ(a.latency_p90_ms, b.latency_p90_ms);
        EXPECT_EQ(a.peak_rss_mb, b.peak_rss_mb);
        EXPECT_EQ(a.accuracy_drop, b.accuracy_drop);
        EXPECT_EQ(a.backend, b.backend);
        EXPECT_EQ(a.metrics.classes, b.metrics.classes);
        EXPECT_EQ(a.metrics.confusion, b.metrics.confusion);
        EXPECT_EQ(a.metrics.accuracy, b.metrics.accuracy);
        EXPECT_EQ(a.metrics.balanced_accuracy, b.metrics.balanced_accuracy);
        EXPECT_EQ(a.metrics.total, b.metrics.total);
        ASSERT_EQ(a.metrics.per_class.size(), b.metrics.per_class.size());
        for (std::size_t c = 0; c < a.metrics.per_class.size(); ++c) {
            EXPECT_EQ(a.metrics.per_class[c].precision, b.metrics.per_class[c].precision);
            EXPECT_EQ(a.metrics.per_class[c].recall, b.metrics.per_class[c].recall);
            EXPECT_EQ(a.metrics.per_class[c].f1, b.metrics.per_class[c].f1);
            EXPECT_EQ(a.metrics.per_class[c].support, b.metrics.per_class[c].support);
        }
    }
    auto broken = variant_to_json(v[1]);
    broken.erase("gzip_bytes");
    try {
        variant_from_json(broken);
        FAIL() << "a variant without gzip_bytes was accepted";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("'int8'"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("gzip_bytes"), std::string::npos) << e.what();
    }
    EXPECT_THROW(set_accuracy_drops(v, "no-such-variant"), Error);
}

TEST(Variants, TableHasEveryVariantAlignedWithRatiosAgainstFp32) {
    auto v = made_up_set();
    set_accuracy_drops(v);
    const auto t = variants_table(v, "int8-k16");
    std::vector<std::string> lines;
    for (std::size_t a = 0, b; a < t.size(); a = b + 1) {
        b = t.find('\n', a);
        lines.push_back(t.substr(a, b - a));
    }
    ASSERT_GE(lines.size(), v.size() + 1);
    EXPECT_NE(lines[0].find("recall fire"), std::string::npos) << t;
    EXPECT_NE(lines[0].find("recall neutral"), std::string::npos) << t;
    for (std::size_t i = 0; i < v.size(); ++i) {
        const auto& line = lines[i + 1];
        EXPECT_EQ(line.size(), lines[0].size()) << "row not aligned:\n" << t;
        EXPECT_EQ(line.rfind((v[i].name == "int8-k16" ? "* " : "  ") + v[i].name + " ", 0), 0u) << line;
    }
    // int8-k16: 8 MB / 1 MB = 8x smaller, 40 ms / 10 ms = 4x faster, 5 points below fp32.
    EXPECT_NE(lines[5].find("8.00x"), std::string::npos) << lines[5];
    EXPECT_NE(lines[5].find("4.00x"), std::string::npos) << lines[5];
    EXPECT_NE(lines[5].find("+5.00"), std::string::npos) << lines[5];
    EXPECT_NE(t.find("* chosen: int8-k16"), std::string::npos) << t;
    EXPECT_EQ(t.find("nan"), std::string::npos) << t;
    EXPECT_EQ(t.find("inf"), std::string::npos) << t;
}

// Checks that every opened element is closed in order (enough to catch a broken hand-written SVG).
void expect_balanced_xml(const std::string& s) {
    std::vector<std::string> stack;
    for (std::size_t i = s.find('<'); i != std::string::npos; i = s.find('<', i + 1)) {
        const auto end = s.find('>', i);
        ASSERT_NE(end, std::string::npos) << "unterminated tag at " << i;
        const std::string tag = s.substr(i + 1, end - i - 1);
        if (tag.empty() || tag[0] == '!' || tag[0] == '?' || tag.back() == '/') continue;
        const std::string name = tag.substr(tag[0] == '/' ? 1 : 0, tag.find_first_of(" \t\n") - (tag[0] == '/' ? 1 : 0));
        if (tag[0] == '/') {
            ASSERT_FALSE(stack.empty()) << "closing </" << name << "> with nothing open";
            ASSERT_EQ(stack.back(), name) << "mismatched closing tag";
            stack.pop_back();
        } else {
            stack.push_back(name);
        }
    }
    EXPECT_TRUE(stack.empty()) << "unclosed <" << (stack.empty() ? "" : stack.back()) << ">";
}

std::string lower(std::string s) {
    for (auto& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

TEST(Variants, ParetoSvgAndHtmlNameEveryVariantAndStayWellFormed) {
    auto v = made_up_set();
    v.push_back(made_up("odd <name> & \"quotes\"", 0.91, 15, 1'500'000));
    set_accuracy_drops(v);
    const auto svg = pareto_svg(v, "int8");
    ASSERT_EQ(svg.rfind("<svg", 0), 0u);
    expect_balanced_xml(svg);
    for (const auto& r : v) {
        if (r.name.find('<') != std::string::npos || r.latency_ms == 0) continue;
        EXPECT_NE(svg.find(">" + r.name), std::string::npos) << r.name;
    }
    EXPECT_NE(svg.find("odd &lt;name&gt; &amp; &quot;quotes&quot;"), std::string::npos);
    EXPECT_NE(svg.find("int8 (chosen)"), std::string::npos);
    EXPECT_NE(svg.find("class=\"pareto-front\""), std::string::npos);
    EXPECT_NE(svg.find("not timed (not shown): untimed"), std::string::npos);
    EXPECT_EQ(lower(svg).find("nan"), std::string::npos);
    EXPECT_EQ(lower(svg).find("inf"), std::string::npos);

    // Marker area follows file size: fp32 (8 MB) has twice the radius of int8 (2 MB).
    auto radius_of = [&](const std::string& name) {
        const auto at = svg.find("<title>" + name + ":");
        const auto c = svg.rfind("<circle", at);
        const auto r = svg.find(" r=\"", c) + 4;
        return std::stod(svg.substr(r, svg.find('"', r) - r));
    };
    EXPECT_NEAR(radius_of("fp32") / radius_of("int8"), 2.0, 0.02);

    // Degenerate sets stay finite.
    for (const auto& few : {std::vector<VariantResult>{made_up("only", 0.5, 3, 100)}, std::vector<VariantResult>{made_up("zero", 0.5, 0, 0)},
                            std::vector<VariantResult>{made_up("a", 1.0, 5, 10), made_up("b", 1.0, 5, 10)}}) {
        const auto s = pareto_svg(few, "");
        expect_balanced_xml(s);
        EXPECT_EQ(lower(s).find("nan"), std::string::npos) << s;
        EXPECT_EQ(lower(s).find("inf"), std::string::npos) << s;
    }

    const auto html = variants_report_html(v, "int8", "Optimize <report>");
    EXPECT_EQ(html.rfind("<!DOCTYPE html>", 0), 0u);
    EXPECT_NE(html.find("<title>Optimize &lt;report&gt;</title>"), std::string::npos);
    EXPECT_NE(html.find("<tr class=\"chosen\"><td>int8</td>"), std::string::npos);
    EXPECT_EQ(lower(html).find("nan"), std::string::npos);
    std::size_t svgs = 0;
    for (auto p = html.find("<svg"); p != std::string::npos; p = html.find("<svg", p + 1)) ++svgs;
    EXPECT_EQ(svgs, v.size() + 1);  // the Pareto chart and one confusion matrix per variant
    for (const auto& r : v) {
        if (r.name.find('<') != std::string::npos) continue;
        EXPECT_NE(html.find("<td>" + r.name + "</td>"), std::string::npos) << r.name;
        EXPECT_NE(html.find(r.name + ": confusion matrix"), std::string::npos) << r.name;
    }
    EXPECT_NE(html.find("&quot;note&quot;: &quot;k16&quot;"), std::string::npos);  // settings shown
    // The body between <body> and </body> is balanced too (the head has void <meta>).
    const auto b0 = html.find("<body>"), b1 = html.find("</body>");
    ASSERT_NE(b0, std::string::npos);
    ASSERT_NE(b1, std::string::npos);
    expect_balanced_xml(html.substr(b0, b1 - b0 + 7));
}

}  // namespace
}  // namespace firesight::eval
