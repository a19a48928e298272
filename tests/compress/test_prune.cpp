#include <algorithm>
#include <cmath>

#include "firesight/common/error.h"
#include "firesight/compress/prune.h"
#include "firesight/engine/backend.h"
#include "firesight/engine/session.h"
#include "firesight/model/engine_convert.h"
#include "test_util.h"

using namespace firesight;
using namespace firesight::compress;

namespace {

std::int64_t zeros(const torch::Tensor& t) { return (t == 0).sum().item<std::int64_t>(); }

model::MobileNetV2 small_net(int classes = 3) {
    torch::manual_seed(0);
    return model::MobileNetV2(model::MobileNetV2Options{classes, 0.0});
}

}  // namespace

TEST(MagnitudePruning, PerLayerHitsTheExactCountAndPrunesTheSmallest) {
    torch::manual_seed(1);
    std::map<std::string, torch::Tensor> w = {{"a", torch::randn({10, 7})}, {"b", torch::randn({33})}};
    for (double s : {0.0, 0.1, 0.3, 0.5, 0.77, 1.0}) {
        const auto masks = magnitude_masks(w, s, SparsityGranularity::PerLayer);
        for (const auto& [name, t] : w) {
            const auto& m = masks.at(name);
            ASSERT_EQ(m.sizes(), t.sizes());
            EXPECT_EQ(zeros(m), std::llround(s * static_cast<double>(t.numel()))) << name << " s=" << s;
            // Every pruned weight is no larger than every kept one.
            if (zeros(m) > 0 && zeros(m) < t.numel()) {
                const float pruned_max = t.abs().masked_select(m == 0).max().item<float>();
                const float kept_min = t.abs().masked_select(m == 1).min().item<float>();
                EXPECT_LE(pruned_max, kept_min);
            }
        }
    }
}

TEST(MagnitudePruning, TiesAreBrokenByPosition) {
    std::map<std::string, torch::Tensor> w = {{"t", torch::ones({10})}};
    const auto m = magnitude_masks(w, 0.5, SparsityGranularity::PerLayer).at("t");
    EXPECT_TRUE(torch::equal(m, torch::tensor({0, 0, 0, 0, 0, 1, 1, 1, 1, 1}, torch::kFloat32)));
    // Again and again the same.
    EXPECT_TRUE(torch::equal(m, magnitude_masks(w, 0.5, SparsityGranularity::PerLayer).at("t")));
}

TEST(MagnitudePruning, GlobalRanksAcrossLayers) {
    torch::manual_seed(2);
    std::map<std::string, torch::Tensor> w = {{"big", torch::randn({100}) * 10}, {"small", torch::randn({100}) * 0.01}};
    const auto m = magnitude_masks(w, 0.4, SparsityGranularity::Global);
    EXPECT_EQ(zeros(m.at("big")) + zeros(m.at("small")), 80);
    EXPECT_EQ(zeros(m.at("small")), 80);  // the small layer goes first
    EXPECT_THROW(magnitude_masks(w, 1.5, SparsityGranularity::Global), Error);
}

TEST(MagnitudePruning, DefaultScopeSkipsDepthwiseAndFirstConv) {
    auto net = small_net();
    const auto names = prunable_weights(*net);
    auto has = [&](const std::string& n) { return std::find(names.begin(), names.end(), n) != names.end(); };
    EXPECT_TRUE(has("features.2.expand.conv.weight"));
    EXPECT_TRUE(has("features.1.project.conv.weight"));
    EXPECT_TRUE(has("features.18.conv.weight"));
    EXPECT_TRUE(has("classifier.weight"));
    EXPECT_FALSE(has("features.0.conv.weight"));
    EXPECT_FALSE(has("features.2.depthwise.conv.weight"));
    EXPECT_FALSE(has("classifier.bias"));
    // features.1: project; features.2..17: expand + project; features.18; classifier.
    EXPECT_EQ(names.size(), 1u + 16 * 2 + 1 + 1);
    PruneScope all;
    all.spatial_convs = true;
    EXPECT_EQ(prunable_weights(*net, all).size(), names.size() + 1 + 17);
}

TEST(PolynomialSchedule, StartMiddleEnd) {
    PolynomialSchedule s{0.1, 0.8, 100, 10, 50};  // updates at 100, 150, ..., 600
    EXPECT_DOUBLE_EQ(s.sparsity_at(0), 0.1);
    EXPECT_DOUBLE_EQ(s.sparsity_at(100), 0.1);
    EXPECT_DOUBLE_EQ(s.sparsity_at(350), 0.8 + (0.1 - 0.8) * 0.125);  // half way: (1 - 0.5)^3
    EXPECT_DOUBLE_EQ(s.sparsity_at(374), s.sparsity_at(350));          // held between updates
    EXPECT_DOUBLE_EQ(s.sparsity_at(600), 0.8);
    EXPECT_DOUBLE_EQ(s.sparsity_at(100000), 0.8);
    EXPECT_TRUE(s.is_update_step(150));
    EXPECT_FALSE(s.is_update_step(151));
    EXPECT_FALSE(s.is_update_step(650));
    double prev = 0;
    for (std::int64_t t = 0; t <= 700; t += 10) {
        EXPECT_GE(s.sparsity_at(t), prev);  // never decreases
        prev = s.sparsity_at(t);
    }
    // Fast at first, slow at the end: the first update adds more than the last.
    EXPECT_GT(s.sparsity_at(150) - s.sparsity_at(100), s.sparsity_at(600) - s.sparsity_at(550));
}

TEST(PruningState, KeepsExactSparsityThroughFineTuning) {
    auto net = small_net();
    net->train();
    const auto names = prunable_weights(*net);
    PruningState state(*net, names);
    state.prune_to(0.6);
    auto params = net->named_parameters();
    std::map<std::string, std::int64_t> expected;
    for (const auto& n : names) {
        expected[n] = std::llround(0.6 * static_cast<double>(params[n].numel()));
        ASSERT_EQ(zeros(params[n]), expected[n]) << n;
    }
    torch::optim::SGD opt(net->parameters(), torch::optim::SGDOptions(0.05).momentum(0.9));
    for (int step = 0; step < 4; ++step) {
        auto x = torch::randn({2, 3, 32, 32});
        auto y = torch::randint(0, 3, {2}, torch::kInt64);
        opt.zero_grad();
        auto loss = torch::nn::functional::cross_entropy(net->forward(x), y);
        loss.backward();
        state.mask_gradients();
        opt.step();
        state.apply();
    }
    for (const auto& n : names) {
        EXPECT_EQ(zeros(params[n]), expected[n]) << n;
        EXPECT_EQ(zeros(params[n] * state.masks().at(n) - params[n]), params[n].numel()) << n;  // zeros are where the mask is
    }
    EXPECT_NEAR(state.measured_sparsity(), 0.6, 1e-4);
    // The unpruned layers did train.
    EXPECT_EQ(zeros(params["features.0.conv.weight"]), 0);
}

TEST(PruningState, FollowsTheScheduleAndMasksOnlyGrow) {
    auto net = small_net();
    const std::vector<std::string> names = {"features.18.conv.weight", "classifier.weight"};
    PruningState state(*net, names, SparsityGranularity::Global);
    PolynomialSchedule sched{0.0, 0.75, 0, 4, 2};
    torch::Tensor prev_mask;
    for (std::int64_t step = 0; step <= 10; ++step) {
        {
            // Stand-in for an optimizer step that moves every weight.
            torch::NoGradGuard g;
            for (auto& p : net->parameters()) p.add_(torch::randn_like(p) * 0.01);
        }
        state.on_step(step, sched);
        const auto& m = state.masks().at("features.18.conv.weight");
        if (prev_mask.defined()) {
            EXPECT_TRUE(torch::all(m <= prev_mask).item<bool>()) << "a pruned weight came back at step " << step;
        }
        prev_mask = m.clone();
        EXPECT_NEAR(state.measured_sparsity(), sched.sparsity_at(step), 1e-4) << step;
    }
    EXPECT_NEAR(state.measured_sparsity(), 0.75, 1e-4);
    EXPECT_THROW(PruningState(*net, {"no.such.weight"}), Error);
}

TEST(ChannelPruning, RemovingZeroChannelsKeepsTheOutputAndShrinksTheNetwork) {
    auto net = small_net(5);
    net->eval();
    ChannelPruneOptions opt;
    opt.fraction = 0.25;
    const auto keep = select_hidden_channels(net, opt);
    ASSERT_EQ(keep.size(), 17u);
    std::int64_t removed_params = 0;
    {
        torch::NoGradGuard g;
        for (int b = 1; b <= 17; ++b) {
            auto* blk = net->features->ptr(b)->as<model::InvertedResidualImpl>();
            const std::int64_t hidden = blk->depthwise->conv->weight.size(0);
            const auto& k = keep[b - 1];
            if (!blk->expand) {
                EXPECT_EQ(static_cast<std::int64_t>(k.size()), hidden);
                continue;
            }
            EXPECT_EQ(static_cast<std::int64_t>(k.size()), std::max<std::int64_t>(8, static_cast<std::int64_t>(std::ceil(hidden * 0.75))));
            const std::int64_t in = blk->expand->conv->weight.size(1), out = blk->project->conv->weight.size(0);
            for (std::int64_t c = 0; c < hidden; ++c) {
                if (std::binary_search(k.begin(), k.end(), c)) continue;
                // Every weight tied to a removed channel: its expansion filter and bias, its depthwise
                // filter and bias, and its column in the projection.
                blk->expand->conv->weight[c].zero_();
                blk->expand->conv->bias[c].zero_();
                blk->depthwise->conv->weight[c].zero_();
                blk->depthwise->conv->bias[c].zero_();
                blk->project->conv->weight.select(1, c).zero_();
                removed_params += in + 1 + 9 + 1 + out;
            }
        }
    }
    torch::manual_seed(3);
    const auto x = torch::randn({2, 3, 64, 64});
    torch::Tensor before;
    {
        torch::NoGradGuard g;
        before = net->forward(x);
    }
    auto smaller = remove_hidden_channels(net, keep);
    EXPECT_FALSE(smaller->is_training());
    EXPECT_EQ(count_parameters(*smaller), count_parameters(*net) - removed_params);
    EXPECT_GT(removed_params, count_parameters(*net) / 20);
    torch::NoGradGuard g;
    const auto after = smaller->forward(x);
    EXPECT_TRUE(torch::allclose(before, after, 1e-4, 1e-5)) << (before - after).abs().max().item<float>();
    // Hidden widths really changed.
    EXPECT_EQ(smaller->named_parameters()["features.2.depthwise.conv.weight"].size(0), static_cast<std::int64_t>(keep[1].size()));
}

TEST(ChannelPruning, RemovesTheSmallestL1Filters) {
    auto net = small_net();
    auto* blk = net->features->ptr(2)->as<model::InvertedResidualImpl>();  // 16 -> 96 hidden
    {
        torch::NoGradGuard g;
        auto& w = blk->expand->conv->weight;
        w.fill_(1.0);
        for (int c : {5, 17, 40}) w[c].fill_(0.001);  // the three weakest
        w[60].fill_(0.002);
    }
    ChannelPruneOptions opt;
    opt.fraction = 3.0 / 96.0;
    const auto keep = select_hidden_channels(net, opt);
    ASSERT_EQ(keep[1].size(), 93u);
    for (int c : {5, 17, 40}) EXPECT_FALSE(std::binary_search(keep[1].begin(), keep[1].end(), c)) << c;
    EXPECT_TRUE(std::binary_search(keep[1].begin(), keep[1].end(), 60));
    auto smaller = prune_hidden_channels(net, opt);
    torch::NoGradGuard g;
    EXPECT_EQ(smaller->forward(torch::randn({1, 3, 32, 32})).sizes(), (std::vector<std::int64_t>{1, 3}));
    // A pruned network can be pruned again (its blocks carry their own hidden widths).
    auto smallest = prune_hidden_channels(smaller, opt);
    EXPECT_LT(count_parameters(*smallest), count_parameters(*smaller));
    opt.fraction = 1.0;
    EXPECT_THROW(select_hidden_channels(net, opt), Error);
}

TEST(PruningState, InputNormsMakeWeightsOnQuietInputsGoFirst) {
    // A linear layer 2 x 4 whose big weights read input 0, which is always silent: by magnitude
    // they are kept, by |w| x input norm they are the first to go.
    torch::nn::Linear fc(4, 2);
    {
        torch::NoGradGuard g;
        fc->weight.copy_(torch::tensor({{9.f, 1.f, 2.f, 3.f}, {8.f, 4.f, 5.f, 6.f}}));
    }
    auto magnitude = fc->weight.detach().clone();
    PruningState plain(*fc, {"weight"});
    plain.prune_to(0.25);
    EXPECT_TRUE(torch::equal(fc->weight == 0, torch::tensor({{false, true, true, false}, {false, false, false, false}})));
    {
        torch::NoGradGuard g;
        fc->weight.copy_(magnitude);
    }
    PruningState aware(*fc, {"weight"});
    aware.set_input_norms({{"weight", torch::tensor({0.f, 1.f, 1.f, 1.f})}});
    aware.prune_to(0.25);
    EXPECT_TRUE(torch::equal(fc->weight == 0, torch::tensor({{true, false, false, false}, {true, false, false, false}})));
    aware.prune_to(0.5);  // then the smallest scores among the rest: 1 and 2
    EXPECT_TRUE(torch::equal(fc->weight == 0, torch::tensor({{true, true, true, false}, {true, false, false, false}})));
    // Weights on a dead input rank by magnitude, after exact zeros.
    {
        torch::NoGradGuard g;
        fc->weight.copy_(torch::tensor({{9.f, 0.f, 2.f, 3.f}, {8.f, 4.f, 5.f, 6.f}}));
    }
    PruningState dead(*fc, {"weight"});
    dead.set_input_norms({{"weight", torch::tensor({0.f, 1.f, 1.f, 1.f})}});
    dead.prune_to(0.125);
    EXPECT_TRUE(torch::equal(dead.masks().at("weight") == 0, torch::tensor({{false, true, false, false}, {false, false, false, false}})));
    dead.prune_to(0.25);
    EXPECT_TRUE(torch::equal(dead.masks().at("weight") == 0, torch::tensor({{false, true, false, false}, {true, false, false, false}})));
    EXPECT_THROW(aware.set_input_norms({{"weight", torch::ones({3})}}), Error);
    EXPECT_THROW(aware.set_input_norms({{"bias", torch::ones({4})}}), Error);
}

namespace {

// Zeroes every weight of hidden channel c of block b: the channel then adds nothing to the output.
void silence_channel(model::MobileNetV2& net, int b, std::int64_t c) {
    torch::NoGradGuard g;
    auto* blk = net->features->ptr(b)->as<model::InvertedResidualImpl>();
    blk->project->conv->weight.select(1, c).zero_();
}

torch::Tensor features_upto(model::MobileNetV2& net, const torch::Tensor& x, int upto) {
    torch::NoGradGuard g;
    return net->forward_features(x, 0, upto);
}

double relative_error(const torch::Tensor& got, const torch::Tensor& want) {
    return ((got - want).pow(2).sum() / want.pow(2).sum()).sqrt().item<double>();
}

}  // namespace

TEST(ContributionSelection, RemovesChannelsThatAddNothingFirst) {
    auto net = small_net();
    net->eval();
    {
        // Randomly initialised, some hidden channels never pass the ReLU6 and would tie with the
        // silenced ones; a positive depthwise bias keeps every channel of features.2 alive.
        torch::NoGradGuard g;
        net->features->ptr(2)->as<model::InvertedResidualImpl>()->depthwise->conv->bias.fill_(1.0);
    }
    for (std::int64_t c : {3, 10, 50, 77}) silence_channel(net, 2, c);  // features.2: 96 hidden
    torch::manual_seed(4);
    const auto images = torch::randn({4, 3, 48, 48});
    std::vector<double> fractions(17, 0.0);
    fractions[1] = 4.0 / 96.0;   // features.2: exactly the four silent ones
    fractions[4] = 0.5;          // features.5: 192 -> 96
    const auto keep = select_hidden_channels_by_contribution(net, images, fractions, 1, 1);
    ASSERT_EQ(keep.size(), 17u);
    ASSERT_EQ(keep[1].size(), 92u);
    for (std::int64_t c : {3, 10, 50, 77}) EXPECT_FALSE(std::binary_search(keep[1].begin(), keep[1].end(), c)) << c;
    EXPECT_EQ(keep[4].size(), 96u);
    EXPECT_TRUE(std::is_sorted(keep[4].begin(), keep[4].end()));
    EXPECT_EQ(std::adjacent_find(keep[4].begin(), keep[4].end()), keep[4].end());
    // Fraction 0 and the block without an expansion conv keep everything.
    EXPECT_EQ(keep[0].size(), 32u);
    EXPECT_EQ(keep[2].size(), 144u);
    // Removing channels that add nothing keeps the network's function.
    auto smaller = remove_hidden_channels(net, keep);
    torch::NoGradGuard g;
    EXPECT_TRUE(torch::allclose(net->forward(images), smaller->forward(images), 1e-4, 1e-5));
    // Rounding up to a multiple of 8.
    fractions[1] = 0.3;  // 96 * 0.7 = 67.2 -> 68 -> 72
    EXPECT_EQ(select_hidden_channels_by_contribution(net, images, fractions, 8, 8)[1].size(), 72u);
    fractions[1] = 1.0;
    EXPECT_THROW(select_hidden_channels_by_contribution(net, images, fractions), Error);
    EXPECT_THROW(select_hidden_channels_by_contribution(net, images, std::vector<double>(3, 0.0)), Error);
}

TEST(ProjectionRefit, RecoversTheReferenceWhenAnExactFitExists) {
    // The removed channels' projection columns are zero in the reference, so the pruned block can
    // match it exactly; scrambling the pruned block's projection leaves the refit to find it.
    auto ref = small_net();
    ref->eval();
    std::vector<std::int64_t> gone;
    for (std::int64_t c = 0; c < 144; c += 3) {
        silence_channel(ref, 3, c);  // features.3 (residual, 144 hidden, 56x56 at 224)
        gone.push_back(c);
    }
    auto keep = select_hidden_channels(ref, ChannelPruneOptions{0.0, 1, 1});
    keep[2].clear();
    for (std::int64_t c = 0; c < 144; ++c)
        if (c % 3 != 0) keep[2].push_back(c);
    auto pruned = remove_hidden_channels(ref, keep);
    {
        torch::NoGradGuard g;
        auto* blk = pruned->features->ptr(3)->as<model::InvertedResidualImpl>();
        blk->project->conv->weight.normal_(0.0, 0.5);
        blk->project->conv->bias.normal_(0.0, 0.5);
    }
    torch::manual_seed(6);
    const auto images = torch::randn({6, 3, 40, 40});
    const auto probe = torch::randn({2, 3, 40, 40});
    const auto want = features_upto(ref, probe, 4);
    EXPECT_GT(relative_error(features_upto(pruned, probe, 4), want), 0.1);
    const auto errors = reconstruct_projections(pruned, ref, images, {3}, 1e-9);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_LT(errors[0], 1e-3);
    // On images the fit never saw, too: the solution is the reference's own projection.
    EXPECT_LT(relative_error(features_upto(pruned, probe, 4), want), 1e-3);
    EXPECT_TRUE(torch::allclose(pruned->forward(probe), ref->forward(probe), 1e-3, 1e-4));
}

TEST(ProjectionRefit, ReducesTheErrorOfRealPruningBlockAfterBlock) {
    auto ref = small_net();
    ref->eval();
    torch::manual_seed(8);
    const auto images = torch::randn({6, 3, 48, 48});
    const auto probe = torch::randn({3, 3, 48, 48});
    std::vector<double> fractions(17, 0.0);
    for (int b = 2; b <= 6; ++b) fractions[static_cast<std::size_t>(b - 1)] = 0.5;
    const auto keep = select_hidden_channels_by_contribution(ref, images, fractions);
    auto plain = remove_hidden_channels(ref, keep);
    auto refit = remove_hidden_channels(ref, keep);
    const auto errors = reconstruct_projections(refit, ref, images, {2, 3, 4, 5, 6});
    ASSERT_EQ(errors.size(), 5u);
    // Each refitted block's output is closer to the reference than plain removal gives, on the
    // fitted images (what the returned errors measure) and on others.
    for (int b = 2; b <= 6; ++b) {
        const double e_plain = relative_error(features_upto(plain, images, b + 1), features_upto(ref, images, b + 1));
        EXPECT_NEAR(errors[static_cast<std::size_t>(b - 2)], relative_error(features_upto(refit, images, b + 1), features_upto(ref, images, b + 1)), 1e-4);
        EXPECT_LT(errors[static_cast<std::size_t>(b - 2)], e_plain) << "features." << b;
    }
    EXPECT_LT(relative_error(features_upto(refit, probe, 7), features_upto(ref, probe, 7)),
              relative_error(features_upto(plain, probe, 7), features_upto(ref, probe, 7)));
    // Blocks outside the list are untouched.
    auto p = refit->named_parameters();
    auto q = plain->named_parameters();
    EXPECT_TRUE(torch::equal(p["features.7.project.conv.weight"], q["features.7.project.conv.weight"]));
    EXPECT_FALSE(torch::equal(p["features.4.project.conv.weight"], q["features.4.project.conv.weight"]));
    EXPECT_THROW(reconstruct_projections(refit, ref, images, {3, 2}), Error);
    EXPECT_THROW(reconstruct_projections(refit, ref, images, {18}), Error);
}

namespace {

// The pruned network converted to an engine gives libtorch's logits on a random 64 px image, on the
// reference kernels and on XNNPACK where it is built.
void expect_engine_matches_libtorch(model::MobileNetV2& net) {
    model::TrainedModel tm;
    tm.net = net;
    tm.class_names = {"fire", "neutral", "smoke"};
    tm.preprocess.size = tm.preprocess.resize_shorter = 64;
    auto e = engine::Engine::from_graph(model::trained_model_to_graph(tm));
    const auto x = torch::randn({1, 3, 64, 64});
    torch::Tensor want;
    {
        torch::NoGradGuard ng;
        want = net->forward(x).contiguous();
    }
    const auto nhwc = x.permute({0, 2, 3, 1}).contiguous();
    std::vector<engine::Backend> backends{engine::Backend::Reference};
    if (engine::backend_available(engine::Backend::Xnnpack)) backends.push_back(engine::Backend::Xnnpack);
    for (auto b : backends) {
        engine::Session s(e, {b, 1});
        const auto got = s.logits({nhwc.data_ptr<float>(), static_cast<std::size_t>(nhwc.numel())})[0];
        ASSERT_EQ(got.size(), 3u);
        for (int i = 0; i < 3; ++i) EXPECT_NEAR(got[i], want[0][i].item<float>(), 1e-4) << engine::backend_name(b);
    }
}

}  // namespace

TEST(ProjectionRefit, PrunedNetworkRunsInTheEngineAsInLibtorch) {
    auto ref = small_net();
    ref->eval();
    torch::manual_seed(9);
    const auto images = torch::randn({4, 3, 64, 64});
    std::vector<double> fractions(17, 0.5);
    auto net = remove_hidden_channels(ref, select_hidden_channels_by_contribution(ref, images, fractions));
    reconstruct_projections(net, ref, images, {2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13});
    expect_engine_matches_libtorch(net);
}

namespace {

// Zeroes the classifier's column of embedding channel c: the channel then adds nothing to the logits.
void silence_embedding(model::MobileNetV2& net, std::int64_t c) {
    torch::NoGradGuard g;
    net->classifier->weight.select(1, c).zero_();
}

std::vector<std::int64_t> all_channels(std::int64_t n) {
    std::vector<std::int64_t> k(static_cast<std::size_t>(n));
    for (std::int64_t c = 0; c < n; ++c) k[static_cast<std::size_t>(c)] = c;
    return k;
}

}  // namespace

TEST(EmbeddingPruning, KeepingEveryChannelIsAnExactCopy) {
    auto net = small_net();
    net->eval();
    auto copy = remove_embedding_channels(net, all_channels(model::kEmbeddingSize));
    EXPECT_EQ(copy->embedding_channels(), model::kEmbeddingSize);
    torch::manual_seed(10);
    const auto x = torch::randn({2, 3, 48, 48});
    torch::NoGradGuard g;
    EXPECT_TRUE(torch::equal(net->forward(x), copy->forward(x)));
}

TEST(EmbeddingPruning, RemovesChannelsTheClassifierIgnoresFirstAndKeepsTheLogits) {
    auto net = small_net();
    net->eval();
    {
        // Every channel of a random network alive after the ReLU6, so only the silenced ones score 0.
        torch::NoGradGuard g;
        net->features->ptr(18)->as<model::ConvActImpl>()->conv->bias.fill_(1.0);
    }
    std::vector<std::int64_t> gone;
    for (std::int64_t c = 0; c < model::kEmbeddingSize; c += 2) {
        silence_embedding(net, c);
        gone.push_back(c);
    }
    torch::manual_seed(11);
    const auto images = torch::randn({4, 3, 48, 48});
    const auto keep = select_embedding_channels_by_contribution(net, images, 0.5, 8, 8);
    ASSERT_EQ(keep.size(), 640u);
    EXPECT_TRUE(std::is_sorted(keep.begin(), keep.end()));
    for (std::int64_t c : keep) EXPECT_EQ(c % 2, 1) << c;
    auto smaller = remove_embedding_channels(net, keep);
    EXPECT_EQ(smaller->embedding_channels(), 640);
    EXPECT_EQ(smaller->features->ptr(18)->as<model::ConvActImpl>()->conv->weight.size(0), 640);
    EXPECT_EQ(smaller->classifier->weight.sizes(), (std::vector<std::int64_t>{3, 640}));
    {
        torch::NoGradGuard g;
        EXPECT_TRUE(torch::allclose(net->forward(images), smaller->forward(images), 1e-4, 1e-5));
    }
    // Rounding up to a multiple of 8, and the hidden-channel removal keeps a pruned embedding.
    EXPECT_EQ(select_embedding_channels_by_contribution(net, images, 0.75, 8, 8).size(), 320u);
    EXPECT_EQ(select_embedding_channels_by_contribution(net, images, 0.9999, 8, 16).size(), 16u);
    auto copy = remove_hidden_channels(smaller, select_hidden_channels(smaller, ChannelPruneOptions{0.0, 1, 1}));
    EXPECT_EQ(copy->embedding_channels(), 640);
    EXPECT_THROW(select_embedding_channels_by_contribution(net, images, 1.0), Error);
    EXPECT_THROW(remove_embedding_channels(net, {}), Error);
    EXPECT_THROW(remove_embedding_channels(net, {5, 3}), Error);
    EXPECT_THROW(remove_embedding_channels(net, {0, model::kEmbeddingSize}), Error);
}

TEST(EmbeddingPruning, TailPrunedNetworkRunsInTheEngineAsInLibtorch) {
    // The whole struct structure: hidden channels of every block with an expansion conv (the
    // tail's too) and half the embedding removed.
    auto ref = small_net();
    ref->eval();
    torch::manual_seed(12);
    const auto images = torch::randn({4, 3, 64, 64});
    std::vector<double> fractions(17, 0.5);
    auto net = remove_hidden_channels(ref, select_hidden_channels_by_contribution(ref, images, fractions));
    const auto errors = reconstruct_projections(net, ref, images, {2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17});
    EXPECT_EQ(errors.size(), 16u);
    net = remove_embedding_channels(net, select_embedding_channels_by_contribution(ref, images, 0.5));
    net->eval();
    expect_engine_matches_libtorch(net);
}

TEST(StemPruning, Features1ChannelsTakeFeatures0OutputsWithThem) {
    auto net = small_net();
    net->eval();
    {
        // All 32 stem channels alive after the ReLU6, so only the silenced ones score 0.
        torch::NoGradGuard g;
        net->features->ptr(1)->as<model::InvertedResidualImpl>()->depthwise->conv->bias.fill_(1.0);
    }
    for (std::int64_t c : {0, 7, 8, 30}) silence_channel(net, 1, c);
    torch::manual_seed(13);
    const auto images = torch::randn({4, 3, 48, 48});
    std::vector<double> fractions(17, 0.0);
    fractions[0] = 4.0 / 32.0;
    const auto keep = select_hidden_channels_by_contribution(net, images, fractions, 1, 1);
    ASSERT_EQ(keep[0].size(), 28u);
    for (std::int64_t c : {0, 7, 8, 30}) EXPECT_FALSE(std::binary_search(keep[0].begin(), keep[0].end(), c)) << c;
    auto smaller = remove_hidden_channels(net, keep);
    auto p = smaller->named_parameters();
    EXPECT_EQ(p["features.0.conv.weight"].sizes(), (std::vector<std::int64_t>{28, 3, 3, 3}));
    EXPECT_EQ(p["features.0.conv.bias"].size(0), 28);
    EXPECT_EQ(p["features.1.depthwise.conv.weight"].size(0), 28);
    EXPECT_EQ(p["features.1.project.conv.weight"].size(1), 28);
    {
        torch::NoGradGuard g;
        EXPECT_TRUE(torch::allclose(net->forward(images), smaller->forward(images), 1e-4, 1e-5));
    }
    // Not removing any is an exact copy, and the narrower stem survives a further copy.
    auto same = remove_hidden_channels(net, select_hidden_channels(net, ChannelPruneOptions{0.0, 1, 1}));
    EXPECT_TRUE(torch::equal(same->named_parameters()["features.0.conv.weight"], net->named_parameters()["features.0.conv.weight"]));
    auto copy = remove_hidden_channels(smaller, select_hidden_channels(smaller, ChannelPruneOptions{0.0, 1, 1}));
    EXPECT_EQ(copy->named_parameters()["features.0.conv.weight"].size(0), 28);
    // A stem as narrow as features.1's output (16) gives it no residual: the paper has none there.
    fractions[0] = 0.5;
    auto half = remove_hidden_channels(net, select_hidden_channels_by_contribution(net, images, fractions, 8, 8));
    EXPECT_EQ(half->named_parameters()["features.0.conv.weight"].size(0), 16);
    EXPECT_FALSE(half->features->ptr(1)->as<model::InvertedResidualImpl>()->use_residual);
}

TEST(StemPruning, Features1ProjectionRefitMatchesAnExactFit) {
    // The stem channels removed add nothing in the reference, so the refit of features.1's
    // projection can reproduce its output from the rest.
    auto ref = small_net();
    ref->eval();
    for (std::int64_t c = 0; c < 32; c += 4) silence_channel(ref, 1, c);
    auto keep = select_hidden_channels(ref, ChannelPruneOptions{0.0, 1, 1});
    keep[0].clear();
    for (std::int64_t c = 0; c < 32; ++c)
        if (c % 4 != 0) keep[0].push_back(c);
    auto pruned = remove_hidden_channels(ref, keep);
    {
        torch::NoGradGuard g;
        pruned->features->ptr(1)->as<model::InvertedResidualImpl>()->project->conv->weight.normal_(0.0, 0.5);
    }
    torch::manual_seed(14);
    const auto images = torch::randn({4, 3, 40, 40});
    const auto errors = reconstruct_projections(pruned, ref, images, {1}, 1e-9);
    ASSERT_EQ(errors.size(), 1u);
    EXPECT_LT(errors[0], 1e-3);
    torch::NoGradGuard g;
    EXPECT_TRUE(torch::allclose(pruned->forward(images), ref->forward(images), 1e-3, 1e-4));
}
