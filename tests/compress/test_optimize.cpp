// firesight optimize: the choice rule on hand-made results, the resume files and fingerprint, and
// the whole search on a tiny run (exact sparsity and <= k values after fine-tuning, outputs,
// resume, a changed model invalidating the finished variants).
#include <algorithm>
#include <cstring>
#include <set>

#include <nlohmann/json.hpp>

#include "firesight/engine/ir.h"
#include "firesight/engine/session.h"
#include "firesight/model/trained_model.h"
#include "firesight/engine/format.h"
#include "firesight/common/error.h"
#include "firesight/common/fileio.h"
#include "firesight/compress/optimize.h"
#include "firesight/compress/prune.h"
#include "optimize_fixture.h"
#include "torch_test_util.h"

using namespace firesight;
using namespace firesight::compress;
using test::distinct_values;

namespace {

VariantRecord rec(const std::string& name, double test_drop, double val_drop, double latency, std::uint64_t size, int val_images = 78) {
    VariantRecord r;
    r.result.name = name;
    r.result.accuracy_drop = test_drop;
    r.result.latency_ms = latency;
    r.result.size_bytes = size;
    r.val_accuracy_drop = val_drop;
    r.val_images = val_images;
    return r;
}

}  // namespace

TEST(OptimizeChoice, FastestWithinTheBudgetOnTheValidationSplit) {
    std::vector<VariantRecord> v = {rec("fp32", 0, 0, 20, 9000), rec("int8", 0.5, 0.9, 8, 2400), rec("prune75-k16-int8", 0.0, 2.6, 5, 900),
                                    rec("int8-minmax", 3.0, 1.0, 7.5, 2400)};
    // prune75-k16-int8 is fastest but loses 2.6 points on val; int8-minmax loses exactly the budget
    // on val (its test drop does not count when every variant has a validation figure).
    EXPECT_EQ(choose_variant(v, 1.0, OptimizeTarget::Latency), "int8-minmax");
    EXPECT_EQ(choose_variant(v, 0.95, OptimizeTarget::Latency), "int8");
    EXPECT_EQ(choose_variant(v, 5.0, OptimizeTarget::Latency), "prune75-k16-int8");
    // int8 and int8-minmax tie on size within the budget: the faster one.
    EXPECT_EQ(choose_variant(v, 1.0, OptimizeTarget::Size), "int8-minmax");
}

TEST(OptimizeChoice, SizeTargetAndTies) {
    std::vector<VariantRecord> v = {rec("fp32", 0, 0, 20, 9000), rec("a", 0, 0, 9, 2000), rec("b", 0, 0, 8, 2000), rec("c", 0, 0.5, 30, 1500)};
    EXPECT_EQ(choose_variant(v, 1.0, OptimizeTarget::Size), "c");
    EXPECT_EQ(choose_variant(v, 0.1, OptimizeTarget::Size), "b");  // a and b tie on size: the faster
    EXPECT_EQ(choose_variant(v, 0.1, OptimizeTarget::Latency), "b");
}

TEST(OptimizeChoice, LatenciesWithinFivePercentAreTiedAndTheSmallerFileWins) {
    std::vector<VariantRecord> v = {rec("fp32", 0, 0, 20, 9000), rec("int8", 0, 0, 5.0, 2400), rec("prune50-int8", 0, 0, 4.9, 2600)};
    EXPECT_EQ(choose_variant(v, 1.0, OptimizeTarget::Latency), "int8");  // 2% faster is a tie: the smaller file
    v[2].result.latency_ms = 4.7;                                         // 6% faster: a real win
    EXPECT_EQ(choose_variant(v, 1.0, OptimizeTarget::Latency), "prune50-int8");
    EXPECT_EQ(choose_variant(v, 1.0, OptimizeTarget::Latency, 0.10), "int8");  // a wider tie
    EXPECT_EQ(choose_variant(v, 1.0, OptimizeTarget::Latency, 0.0), "prune50-int8");
    // The tie is measured from the fastest qualifying variant, not chained: 4.7 -> 4.9 -> 5.1 does
    // not pull in 5.1.
    v.push_back(rec("k16-int8", 0, 0, 4.93, 1000));
    EXPECT_EQ(choose_variant(v, 1.0, OptimizeTarget::Latency), "k16-int8");
    v.back().result.latency_ms = 5.0;
    EXPECT_EQ(choose_variant(v, 1.0, OptimizeTarget::Latency), "prune50-int8");
}

TEST(OptimizeChoice, Fp32WhenNothingElseQualifiesAndTestSplitWithoutValidation) {
    std::vector<VariantRecord> v = {rec("fp32", 0, 0, 20, 9000), rec("int8", 2.0, 2.0, 8, 2400)};
    EXPECT_EQ(choose_variant(v, 1.0, OptimizeTarget::Latency), "fp32");
    // Without validation figures the test drop decides.
    std::vector<VariantRecord> w = {rec("fp32", 0, 0, 20, 9000, 0), rec("int8", 0.5, 9.0, 8, 2400, 0)};
    EXPECT_EQ(choose_variant(w, 1.0, OptimizeTarget::Latency), "int8");
    EXPECT_EQ(choose_variant({}, 1.0, OptimizeTarget::Latency), "");
}

TEST(OptimizeChoice, DropsAreMeasuredAgainstFp32) {
    std::vector<VariantRecord> v = {rec("int8", 0, 0, 8, 2400), rec("fp32", 0, 0, 20, 9000)};
    v[0].result.metrics.accuracy = 0.90;
    v[0].val_accuracy = 0.80;
    v[1].result.metrics.accuracy = 0.95;
    v[1].val_accuracy = 0.85;
    set_drops(v);
    EXPECT_NEAR(v[0].result.accuracy_drop, 5.0, 1e-9);
    EXPECT_NEAR(v[0].val_accuracy_drop, 5.0, 1e-9);
    EXPECT_NEAR(v[1].result.accuracy_drop, 0.0, 1e-9);
    std::vector<VariantRecord> none = {rec("int8", 0, 0, 8, 2400)};
    EXPECT_THROW(set_drops(none), Error);
}

TEST(OptimizeOptionsParsing, TargetNamesAndErrors) {
    EXPECT_EQ(parse_optimize_target("latency"), OptimizeTarget::Latency);
    EXPECT_EQ(parse_optimize_target("size"), OptimizeTarget::Size);
    try {
        parse_optimize_target("speed");
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("latency, size"), std::string::npos);
    }
}

TEST(OptimizeResume, FingerprintFollowsModelBytesAndSearchOptionsOnly) {
    test::TempDir d;
    write_file_atomic(d / "model.pt", "model bytes one");
    OptimizeOptions o;
    const auto f1 = optimize_fingerprint(d / "model.pt", o);
    o.max_accuracy_drop = 3;  // the choice, not the variants
    o.target = OptimizeTarget::Size;
    EXPECT_EQ(optimize_fingerprint(d / "model.pt", o), f1);
    o.sparsities = {0.9};
    EXPECT_NE(optimize_fingerprint(d / "model.pt", o), f1);
    o = {};
    write_file_atomic(d / "model.pt", "model bytes two");
    EXPECT_NE(optimize_fingerprint(d / "model.pt", o), f1);
    EXPECT_THROW(optimize_fingerprint(d / "none.pt", o), Error);
}

TEST(OptimizeResume, FinishedVariantFilesRoundTripAndNeedTheirEngine) {
    test::TempDir d;
    auto r = rec("prune50", 1.5, 0.5, 7, 1234);
    r.result.metrics = eval::compute_metrics({"fire", "neutral"}, {0, 0, 0, 0, 1, 1, 1, 1}, {0, 0, 0, 1, 1, 1, 1, 1});
    r.result.settings = {{"sparsity", 0.5}};
    r.val_accuracy = 0.75;
    save_finished_variant(d.path(), r, "abc");
    VariantRecord back;
    EXPECT_FALSE(load_finished_variant(d.path(), "prune50", "abc", back));  // no engine file
    write_file_atomic(d / "variants" / "prune50.fse", "engine");
    ASSERT_TRUE(load_finished_variant(d.path(), "prune50", "abc", back));
    EXPECT_EQ(back.result.name, "prune50");
    EXPECT_DOUBLE_EQ(back.val_accuracy, 0.75);
    EXPECT_EQ(back.val_images, 78);
    EXPECT_DOUBLE_EQ(back.result.latency_ms, 7);
    EXPECT_EQ(back.result.size_bytes, 1234u);
    EXPECT_DOUBLE_EQ(back.result.metrics.accuracy, 0.875);
    EXPECT_EQ(back.result.settings["sparsity"], 0.5);
    EXPECT_FALSE(load_finished_variant(d.path(), "prune50", "other", back));  // another model/options
    write_file_atomic(d / "variants" / "prune50.json", "{ truncated");
    EXPECT_FALSE(load_finished_variant(d.path(), "prune50", "abc", back));
}

class OptimizeTinyRun : public ::testing::Test {
protected:
    void SetUp() override {
        FIRESIGHT_REQUIRE_ASSET(test::mobilenet_quant());
        test::write_synthetic_images(dir / "data", 12);
        test::write_tiny_run(dir / "data", dir / "run");
        o.model = dir / "run";
        o.data = {dir / "data"};
        o.out = dir / "out";
        o.sparsities = {0.5};
        o.clusters = {8};
        o.methods = {"auto", "minmax"};
        o.channel_fraction = 0.25;
        o.calibration = 8;
        o.finetune_steps = 12;
        o.finetune_batch = 4;
        o.bench_runs = 2;
        o.bench_rounds = 2;
        o.progress = false;
        o.qat = "always";
    }
    test::TempDir dir;
    OptimizeOptions o;
};

TEST_F(OptimizeTinyRun, SearchWritesEveryVariantKeepsSparsityAndClustersAndChoosesByTheRule) {
    const auto r = run_optimize(o);
    std::set<std::string> names;
    for (const auto& v : r.variants) names.insert(v.result.name);
    for (const std::string n : {"fp32", "int8", "int8-minmax", "prune50", "prune50-int8", "k8", "prune50-k8", "prune50-k8-int8", "channel25",
                                "channel25-int8", "struct", "struct-int8", "int8-qat"}) {
        EXPECT_TRUE(names.count(n)) << n;
        EXPECT_TRUE(std::filesystem::exists(o.out / "variants" / (n + ".fse"))) << n;
    }
    EXPECT_TRUE(r.reused.empty());
    // The corrupt image was skipped and reported, wherever the split put it.
    bool reported = false;
    for (const auto& w : r.warnings) reported |= w.find("broken.jpg") != std::string::npos;
    EXPECT_TRUE(reported);
    for (const auto& v : r.variants) {
        EXPECT_GT(v.val_images, 0);
        EXPECT_GT(v.result.size_bytes, 0u) << v.result.name;
        EXPECT_GT(v.result.latency_ms, 0.0) << v.result.name;
    }
    EXPECT_EQ(r.chosen, choose_variant(r.variants, o.max_accuracy_drop, o.target));

    // Fine-tuned bases: exact per-layer sparsity after the fine-tuning loop, <= k values per
    // clustered layer, and the pruned zeros kept through clustering.
    auto pruned = model::load_trained_model(o.out / "work" / "prune50.pt");
    auto clustered = model::load_trained_model(o.out / "work" / "prune50-k8.pt");
    auto clustered_only = model::load_trained_model(o.out / "work" / "k8.pt");
    const auto names_pruned = prunable_weights(*pruned.net);
    ASSERT_FALSE(names_pruned.empty());
    auto pp = pruned.net->named_parameters();
    auto cp = clustered.net->named_parameters();
    auto kp = clustered_only.net->named_parameters();
    int tail_layers = 0;
    for (const auto& n : names_pruned) {
        const auto& w = pp[n];
        const auto zeros = (w == 0).sum().item<std::int64_t>();
        // The fine-tuned blocks (features.14+ and the classifier) are pruned; the prefix is not.
        const bool tail = n.rfind("classifier", 0) == 0 || std::stoi(n.substr(9)) >= o.finetune_from;
        if (tail) {
            ++tail_layers;
            EXPECT_EQ(zeros, std::llround(0.5 * static_cast<double>(w.numel()))) << n;
            EXPECT_TRUE(torch::equal((w == 0), (w == 0) & (cp[n] == 0))) << n << ": a pruned weight came back";
        }
        // The prefix, never fine-tuned, keeps up to 256 values a layer; the tail k = 8.
        const std::size_t k = tail ? 8u : 256u;
        EXPECT_LE(distinct_values(cp[n]), k) << n;
        EXPECT_LE(distinct_values(kp[n]), k) << n;
        if (!tail) EXPECT_TRUE(torch::equal(cp[n], kp[n])) << n << ": the prefix is clustered alike in every clustered variant";
    }
    EXPECT_GE(tail_layers, 10);

    // Where the time went: every kind of work once, within the run's wall time.
    std::set<std::string> kinds;
    double accounted = 0;
    for (const auto& st : r.stages) {
        EXPECT_TRUE(kinds.insert(st.kind).second) << st.kind;
        EXPECT_GE(st.seconds, 0.0) << st.kind;
        accounted += st.seconds;
    }
    for (const char* kind : {"decode training images", "prefix caches", "fine-tuning", "calibration", "evaluation", "timing"})
        EXPECT_TRUE(kinds.count(kind)) << kind;
    EXPECT_LE(accounted, r.seconds + 0.01);

    // Outputs: model.fse is the chosen engine with the figures; results.json and report.html.
    auto g = engine::load_graph(o.out / "model.fse");
    const auto build = nlohmann::json::parse(g.metadata.build_json);
    EXPECT_EQ(build["optimize"]["variant"], r.chosen);
    EXPECT_EQ(build["optimize"]["selection_split"], "val");
    EXPECT_TRUE(build["optimize"]["measured"].contains("latency_ms"));
    EXPECT_EQ(g.metadata.class_names, (std::vector<std::string>{"fire", "neutral"}));
    const auto results = nlohmann::json::parse(read_file_text(o.out / "results.json"));
    EXPECT_EQ(results["optimize"]["validation"].size(), r.variants.size());
    EXPECT_TRUE(std::filesystem::file_size(o.out / "report.html") > 1000);
    // The int8 engines are really int8.
    for (const std::string n : {"prune50-k8-int8", "int8-qat"}) {
        auto q = engine::load_graph(o.out / "variants" / (n + ".fse"));
        int i8 = 0;
        for (const auto& t : q.tensors) i8 += t.constant && t.dtype == engine::DType::I8;
        EXPECT_GT(i8, 10) << n;
    }
}

TEST_F(OptimizeTinyRun, RerunSkipsFinishedVariantsAndAChangedModelRedoesThem) {
    o.methods = {"auto"};
    o.clusters = {};
    o.channel_fraction = 0;
    o.structured_fraction = 0;
    o.qat = "never";
    const auto first = run_optimize(o);
    ASSERT_EQ(first.variants.size(), 4u);  // fp32, int8, prune50, prune50-int8
    const auto stamp = std::filesystem::last_write_time(o.out / "variants" / "prune50.fse");

    // With every variant finished a rerun decodes no image: it succeeds, warning about nothing,
    // with every image made unreadable.
    namespace fs = std::filesystem;
    fs::copy(o.data[0], dir / "data-backup", fs::copy_options::recursive);
    std::vector<fs::path> images;
    for (const auto& f : fs::recursive_directory_iterator(o.data[0]))
        if (f.is_regular_file()) images.push_back(f.path());
    ASSERT_FALSE(images.empty());
    for (const auto& f : images) write_file_atomic(f, "not an image");
    const auto again = run_optimize(o);
    EXPECT_EQ(again.reused.size(), 4u);
    EXPECT_TRUE(again.warnings.empty()) << again.warnings.front();
    EXPECT_EQ(std::filesystem::last_write_time(o.out / "variants" / "prune50.fse"), stamp);
    EXPECT_EQ(again.chosen, first.chosen);
    fs::remove_all(o.data[0]);
    fs::rename(dir / "data-backup", o.data[0]);

    // A variant lost mid-way (its engine deleted) is made again, the others stay.
    std::filesystem::remove(o.out / "variants" / "prune50-int8.fse");
    const auto partial = run_optimize(o);
    EXPECT_EQ(partial.reused.size(), 3u);
    EXPECT_TRUE(std::filesystem::exists(o.out / "variants" / "prune50-int8.fse"));

    // Another model (a different head) invalidates everything.
    test::write_tiny_run(dir / "data", dir / "run", 11);
    const auto changed = run_optimize(o);
    EXPECT_TRUE(changed.reused.empty());
    EXPECT_EQ(changed.variants.size(), 4u);
}

TEST_F(OptimizeTinyRun, BadInputIsAClearError) {
    auto expect_error = [](OptimizeOptions bad, const std::string& words) {
        try {
            run_optimize(bad);
            ADD_FAILURE() << "no error for " << words;
        } catch (const Error& e) {
            EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
        }
    };
    auto b = o;
    b.max_accuracy_drop = -1;
    expect_error(b, "--max-accuracy-drop");
    b = o;
    b.model = dir / "nope";
    expect_error(b, "nope");
    b = o;
    b.sparsities = {1.5};
    expect_error(b, "--sparsity");
    b = o;
    b.methods = {"auto", "kl"};
    expect_error(b, "kl");
    b = o;
    b.qat = "sometimes";
    expect_error(b, "--qat");
    // Data without the run's classes.
    test::TempDir other;
    std::filesystem::create_directories(other / "cats");
    std::filesystem::copy_file(dir / "data" / "fire" / "img0.png", other / "cats" / "a.png");
    b = o;
    b.data = {other.path()};
    expect_error(b, "class 'fire'");
    EXPECT_FALSE(std::filesystem::exists(o.out / "model.fse"));
}

TEST_F(OptimizeTinyRun, OnlyBuildsTheNamedVariantsAndStructRemovesChannelsOfEveryBlock) {
    o.only = {"struct-int8"};
    o.structured_fraction = 0.5;
    o.structured_tail_fraction = 0.25;
    o.structured_embedding_fraction = 0.5;
    o.structured_stem_fraction = 0.5;
    const auto r = run_optimize(o);
    std::set<std::string> names;
    for (const auto& v : r.variants) names.insert(v.result.name);
    EXPECT_EQ(names, (std::set<std::string>{"fp32", "struct-int8"}));
    EXPECT_FALSE(std::filesystem::exists(o.out / "variants" / "prune50.fse"));
    // The base: half the hidden channels (rounded up to 8) of features.2 .. features.13 gone, a
    // quarter of the fine-tuned tail's (features.14+), half of features.1's (no expansion conv:
    // features.0's outputs) and half of features.18's outputs.
    auto fp32 = model::load_trained_model(o.model / "model.pt");
    auto st = model::load_trained_model(o.out / "work" / "struct.pt");
    for (int b = 1; b <= 17; ++b) {
        const auto full = fp32.net->features->ptr(b)->as<model::InvertedResidualImpl>()->depthwise->conv->weight.size(0);
        const auto kept = st.net->features->ptr(b)->as<model::InvertedResidualImpl>()->depthwise->conv->weight.size(0);
        if (b < o.finetune_from) EXPECT_EQ(kept, (full / 2 + 7) / 8 * 8) << "features." << b;
        else EXPECT_EQ(kept, (full * 3 / 4 + 7) / 8 * 8) << "features." << b;
    }
    EXPECT_EQ(st.net->embedding_channels(), 640);
    EXPECT_EQ(st.net->named_parameters()["features.0.conv.weight"].size(0), 16);
    const auto& v = *std::find_if(r.variants.begin(), r.variants.end(), [](const VariantRecord& x) { return x.result.name == "struct-int8"; });
    EXPECT_EQ(v.result.settings.at("refit_relative_error").size(), 17u);  // features.1 .. 17
    EXPECT_TRUE(v.result.settings.at("int8").get<bool>());
    EXPECT_LT(engine::Engine::load(o.out / "variants" / "struct-int8.fse")->macs(), engine::Engine::load(o.out / "variants" / "fp32.fse")->macs());
}
