#include <opencv2/imgcodecs.hpp>

#include <cmath>
#include <cstring>
#include <fstream>
#include <set>

#include "firesight/builder/quantize.h"
#include "firesight/compress/compress_torch.h"
#include "firesight/common/error.h"
#include "firesight/compress/prune.h"
#include "test_util.h"
#include "torch_test_util.h"

using namespace firesight;
using namespace firesight::compress;

using test::distinct_values;

TEST(ClusteredLayer, FineTuningMovesCentroidsAndKeepsAtMostKValues) {
    torch::manual_seed(1);
    torch::nn::Linear layer(32, 16);
    const auto target_w = torch::randn({16, 32});
    ClusteredLayer cl("weight", layer->weight, KMeansOptions{8});
    EXPECT_LE(distinct_values(layer->weight), 8u);
    const auto start = cl.centroids().detach().clone();

    std::vector<torch::Tensor> params = {cl.centroids(), layer->bias};
    torch::optim::SGD opt(params, torch::optim::SGDOptions(0.01));
    const auto x = torch::randn({64, 32});
    const auto y = x.matmul(target_w.t());
    double first_loss = 0, last_loss = 0;
    for (int step = 0; step < 30; ++step) {
        opt.zero_grad();
        auto loss = torch::mse_loss(layer->forward(x), y);
        loss.backward();
        if (step == 0) {
            // The centroid gradient is the sum of the gradients of the weights assigned to it.
            const auto g = layer->weight.grad().flatten().clone();
            const auto idx = cl.indices();
            cl.accumulate_gradient();
            for (int c = 0; c < 8; ++c) {
                const float expect = g.masked_select(idx == c).sum().item<float>();
                EXPECT_NEAR(cl.centroids().grad()[c].item<float>(), expect, 1e-5 + 1e-4 * std::abs(expect)) << c;
            }
            EXPECT_FALSE(layer->weight.grad().defined());
            first_loss = loss.item<double>();
        } else {
            cl.accumulate_gradient();
        }
        opt.step();
        cl.apply();
        last_loss = loss.item<double>();
    }
    EXPECT_LT(last_loss, first_loss);
    EXPECT_FALSE(torch::equal(start, cl.centroids().detach()));
    EXPECT_LE(distinct_values(layer->weight), 8u);
    // The weight is exactly centroids[indices], and it round-trips through the palette bit-exactly.
    const auto c = cl.clustering();
    const auto expanded = expand_palette(make_palette(c));
    auto w = layer->weight.detach().contiguous();
    ASSERT_EQ(expanded.size(), static_cast<std::size_t>(w.numel()));
    EXPECT_EQ(std::memcmp(expanded.data(), w.data_ptr<float>(), expanded.size() * sizeof(float)), 0);
}

TEST(ClusteringState, PrunedAndClusteredNetworkKeepsBothThroughFineTuning) {
    torch::manual_seed(2);
    model::MobileNetV2 net(model::MobileNetV2Options{3, 0.0});
    net->train();
    const std::vector<std::string> names = {"features.17.project.conv.weight", "features.18.conv.weight", "classifier.weight"};
    PruningState pruning(*net, names);
    pruning.prune_to(0.5);
    KMeansOptions km;
    km.k = 16;
    km.preserve_zeros = true;
    ClusteringState clustering(*net, names, km);
    auto params = net->named_parameters();
    std::map<std::string, std::int64_t> zeros_before;
    for (const auto& n : names) {
        zeros_before[n] = (params[n] == 0).sum().item<std::int64_t>();
        EXPECT_LE(distinct_values(params[n]), 16u) << n;
    }
    // Train the centroids plus everything that is not clustered.
    std::vector<torch::Tensor> trainable = clustering.centroid_parameters();
    for (auto& p : net->named_parameters())
        if (std::find(names.begin(), names.end(), p.key()) == names.end()) trainable.push_back(p.value());
    torch::optim::Adam opt(trainable, torch::optim::AdamOptions(1e-3));
    for (int step = 0; step < 3; ++step) {
        opt.zero_grad();
        auto loss = torch::nn::functional::cross_entropy(net->forward(torch::randn({2, 3, 32, 32})), torch::tensor({0, 2}, torch::kInt64));
        loss.backward();
        clustering.accumulate_gradients();
        opt.step();
        clustering.apply();
    }
    for (const auto& n : names) {
        EXPECT_LE(distinct_values(params[n]), 16u) << n;
        EXPECT_EQ((params[n] == 0).sum().item<std::int64_t>(), zeros_before[n]) << n;
    }
}

TEST(ActivationObserver, MatchesForwardAndNamesEveryQuantizedTensor) {
    torch::manual_seed(3);
    model::MobileNetV2 net(model::MobileNetV2Options{4, 0.2});
    net->train();  // the observer must run in eval mode and restore this
    ActivationObserver obs;
    const auto x = torch::randn({2, 3, 64, 64});
    const auto logits = obs.observe(net, x);
    EXPECT_TRUE(net->is_training());
    net->eval();
    torch::NoGradGuard g;
    EXPECT_TRUE(torch::allclose(logits, net->forward(x), 1e-5, 1e-6));
    const auto& h = obs.histograms();
    for (const char* n : {"input", "features.0", "features.1", "features.1.depthwise", "features.2.expand", "features.3.project",
                          "features.17", "features.18", "pooled", "logits"})
        EXPECT_TRUE(h.count(n)) << n;
    EXPECT_FALSE(h.count("features.1.expand"));   // t = 1: no expansion conv
    EXPECT_FALSE(h.count("features.2.project"));  // 16 -> 24 with stride 2: no residual add
    // 1 input + 19 features + 16 expand + 17 depthwise + 10 residual addends + pooled + logits.
    EXPECT_EQ(h.size(), 1u + 19 + 16 + 17 + 10 + 2);
    EXPECT_EQ(h.at("input").total(), static_cast<std::uint64_t>(x.numel()));
    const auto r = obs.ranges({CalibrationMethod::MinMax});
    EXPECT_GE(r.at("features.0").min, 0.0f);  // ReLU6
    EXPECT_LE(r.at("features.0").max, 6.0f);
    EXPECT_FLOAT_EQ(r.at("input").max, x.max().item<float>());
}

TEST(ActivationObserver, ATailObservedFromCachedPrefixOutputMatchesAFullPass) {
    // What optimize does for variants that share a prefix: the prefix's histograms from one full
    // pass, the tail observed from the prefix's output.
    torch::manual_seed(5);
    model::MobileNetV2 net(model::MobileNetV2Options{3, 0.2});
    net->eval();
    const auto x = torch::randn({3, 3, 64, 64});
    constexpr int kFrom = 14;
    ActivationObserver full;
    const auto logits = full.observe(net, x);
    torch::Tensor prefix_out;
    {
        torch::NoGradGuard g;
        prefix_out = net->forward_features(x, 0, kFrom);
    }
    ActivationObserver tail;
    const auto tail_logits = tail.observe_from(net, prefix_out, kFrom);
    EXPECT_TRUE(torch::allclose(tail_logits, logits, 1e-5, 1e-6));
    EXPECT_FALSE(tail.histograms().count("input"));
    EXPECT_FALSE(tail.histograms().count("features.13"));
    EXPECT_TRUE(tail.histograms().count("features.14.expand"));
    auto is_prefix = [](const std::string& n) { return n == "input" || (n.rfind("features.", 0) == 0 && std::stoi(n.substr(9)) < kFrom); };
    tail.adopt(full, is_prefix);
    ASSERT_EQ(tail.histograms().size(), full.histograms().size());
    const auto a = full.ranges({CalibrationMethod::Entropy});
    const auto b = tail.ranges({CalibrationMethod::Entropy});
    for (const auto& [name, r] : a) {
        ASSERT_TRUE(b.count(name)) << name;
        EXPECT_NEAR(b.at(name).min, r.min, 1e-5f * std::max(1.0f, std::abs(r.min))) << name;
        EXPECT_NEAR(b.at(name).max, r.max, 1e-5f * std::max(1.0f, std::abs(r.max))) << name;
    }
    EXPECT_THROW(tail.observe_from(net, prefix_out, model::MobileNetV2Impl::kFeatureBlocks), Error);
}

TEST(ActivationObserver, CalibratesAnImportedNetworkOnImages) {
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_quant());
    const auto samples = test::assets() / "imagenet-samples";
    FIRESIGHT_REQUIRE_ASSET(samples);
    auto imported = model::import_mobilenet_v2(test::mobilenet_quant());
    // A corrupt file among the real ones is skipped, reported, and does not stop calibration.
    test::TempDir dir;
    for (const auto& f : list_image_files(samples)) std::filesystem::copy_file(f, dir / f.filename().string());
    { std::ofstream(dir / "truncated.jpg") << "\xff\xd8\xff\xe0 not really"; }
    CalibrationSetOptions opt;
    opt.count = 8;
    opt.progress = false;
    opt.preprocess.mean = imported.input.mean;
    opt.preprocess.scale = imported.input.scale;
    std::vector<CalibrationWarning> seen;
    opt.on_warning = [&](const CalibrationWarning& w) { seen.push_back(w); };
    CalibrationSet set(list_image_files(dir.path()), opt);
    EXPECT_EQ(set.size(), 7u);
    ASSERT_EQ(seen.size(), 1u);
    EXPECT_NE(seen[0].file.find("truncated.jpg"), std::string::npos);

    const auto obs = collect_activations(imported.net, set, 4, false);
    EXPECT_EQ(obs.histograms().at("input").total(), 7u * 3 * 224 * 224);
    const auto mm = obs.ranges({CalibrationMethod::MinMax});
    const auto pc = obs.ranges({CalibrationMethod::Percentile, 99.99});
    const auto en = obs.ranges({CalibrationMethod::Entropy});
    for (const auto& [name, r] : mm) {
        EXPECT_LE(pc.at(name).abs_max(), r.abs_max() * (1 + 1e-6f)) << name;
        EXPECT_LE(en.at(name).abs_max(), r.abs_max() * (1 + 1e-6f)) << name;
        EXPECT_GT(en.at(name).abs_max(), 0.0f) << name;
    }
    // A ReLU6 output of the real network: range inside [0, 6], and clipping does shrink something.
    EXPECT_EQ(en.at("features.5.expand").min, 0.0f);
    EXPECT_LE(mm.at("features.5.expand").max, 6.0f);
    double shrink = 0;
    for (const auto& [name, r] : mm) shrink += en.at(name).abs_max() / r.abs_max();
    EXPECT_LT(shrink / static_cast<double>(mm.size()), 0.999);

    // Simulated int8 (per-channel weights, calibrated activations) mostly keeps the fp32 top-1 of
    // this quantization-aware-trained network, without being the fp32 computation itself.
    auto batch = torch::empty({7, 3, 224, 224});
    for (std::size_t i = 0; i < 7; ++i) {
        const auto img = set.image(i);
        std::memcpy(batch.data_ptr<float>() + i * img.size(), img.data(), img.size() * sizeof(float));
    }
    const auto w0 = imported.net->classifier->weight.detach().clone();
    imported.net->eval();
    torch::NoGradGuard g;
    const auto fp32 = imported.net->forward(batch);
    {
        // Removing no channel is an exact copy of the imported network.
        ChannelPruneOptions none;
        none.fraction = 0.0;
        none.min_channels = 1;
        auto copy = prune_hidden_channels(imported.net, none);
        copy->eval();
        EXPECT_TRUE(torch::equal(copy->forward(batch), fp32));
    }
    {
        // 256 clusters per layer lose almost nothing on weights that were uint8 to begin with, and
        // magnitude pruning of 10% of the 1x1 weights costs little; both keep most top-1 answers.
        ChannelPruneOptions none;
        none.fraction = 0.0;
        none.min_channels = 1;
        auto clustered = prune_hidden_channels(imported.net, none);
        PruneScope all;
        all.spatial_convs = true;
        KMeansOptions km;
        km.k = 256;
        for (const auto& name : prunable_weights(*clustered, all)) {
            auto w = clustered->named_parameters()[name];
            const auto before = w.detach().clone();
            ClusteredLayer layer(name, w, km);
            const double rel = ((w - before).norm() / before.norm()).item<double>();
            EXPECT_LT(rel, 0.01) << name;
        }
        clustered->eval();
        EXPECT_GE((fp32.argmax(1) == clustered->forward(batch).argmax(1)).sum().item<int>(), 6);
        auto pruned = prune_hidden_channels(imported.net, none);
        PruningState p(*pruned, prunable_weights(*pruned));
        p.prune_to(0.1);
        pruned->eval();
        EXPECT_GE((fp32.argmax(1) == pruned->forward(batch).argmax(1)).sum().item<int>(), 5);
    }
    const auto int8 = simulate_int8_forward(imported.net, batch, pc);
    EXPECT_TRUE(torch::equal(w0, imported.net->classifier->weight));  // weights restored
    EXPECT_FALSE(torch::allclose(fp32, int8));
    const auto agree = (fp32.argmax(1) == int8.argmax(1)).sum().item<int>();
    EXPECT_GE(agree, 6) << "top-1 agreement of simulated int8 with fp32 on 7 images";
    for (const auto* ranges : {&en, &mm}) {
        const auto other = simulate_int8_forward(imported.net, batch, *ranges);
        EXPECT_GE((fp32.argmax(1) == other.argmax(1)).sum().item<int>(), 6);
    }
    std::map<std::string, ActivationRange> chosen;
    for (const auto& [name, c] : obs.chosen_ranges()) chosen[name] = c.range;
    EXPECT_EQ(chosen.size(), mm.size());
    EXPECT_EQ(chosen.at("logits").max, mm.at("logits").max);
    EXPECT_GE((fp32.argmax(1) == simulate_int8_forward(imported.net, batch, chosen).argmax(1)).sum().item<int>(), 6);
    auto missing = pc;
    missing.erase("features.4.depthwise");
    EXPECT_THROW(simulate_int8_forward(imported.net, batch.slice(0, 0, 1), missing), Error);
    EXPECT_TRUE(torch::equal(w0, imported.net->classifier->weight));  // restored on error too
}

TEST(FakeQuantize, QuantizationAwareForwardMatchesTheSimulationAndTrains) {
    torch::manual_seed(5);
    model::MobileNetV2 net(model::MobileNetV2Options{3, 0.0});
    ActivationObserver obs;
    const auto x = torch::randn({2, 3, 48, 48});
    obs.observe(net, x);
    const auto ranges = obs.ranges({CalibrationMethod::MinMax});
    net->eval();
    torch::Tensor sim;
    {
        torch::NoGradGuard g;
        sim = simulate_int8_forward(net, x, ranges);
    }
    const auto fc_before = net->classifier->weight.detach().clone();
    auto y = fake_quant_forward(net, x, ranges);
    EXPECT_TRUE(torch::allclose(y.detach(), sim, 1e-4, 1e-5)) << (y.detach() - sim).abs().max().item<float>();
    EXPECT_TRUE(torch::equal(net->classifier->weight, fc_before));  // the float weight is back in place
    torch::nn::functional::cross_entropy(y, torch::tensor({0, 1}, torch::kInt64)).backward();
    for (const char* n : {"features.0.conv.weight", "features.5.expand.conv.weight", "classifier.weight"}) {
        const auto g = net->named_parameters()[n].grad();
        ASSERT_TRUE(g.defined()) << n;
        EXPECT_GT(g.abs().sum().item<float>(), 0.0f) << n;
    }
}

TEST(FakeQuantize, ForwardRoundsBackwardPassesStraightThrough) {
    torch::manual_seed(4);
    auto x = (torch::randn({1000}) * 3).set_requires_grad(true);
    const QuantParams q = asymmetric_int8({-4.0f, 7.0f});
    auto y = fake_quantize(x, q);
    auto xa = x.detach().contiguous();
    auto ya = y.detach().contiguous();
    for (std::int64_t i = 0; i < x.numel(); ++i) {
        const float expect = dequantize_int8(quantize_int8(xa.data_ptr<float>()[i], q), q);
        ASSERT_NEAR(ya.data_ptr<float>()[i], expect, 1e-5f) << xa.data_ptr<float>()[i];
    }
    y.sum().backward();
    EXPECT_TRUE(torch::equal(x.grad(), torch::ones_like(x)));

    auto w = (torch::randn({8, 4, 3, 3}) * 0.1).set_requires_grad(true);
    auto wq = fake_quantize_per_channel(w);
    auto wc = w.detach().contiguous();
    const auto ref = dequantize(quantize_weights_per_channel(std::span<const float>(wc.data_ptr<float>(), 8 * 36), 8));
    auto wqc = wq.detach().contiguous();
    for (std::size_t i = 0; i < ref.size(); ++i) ASSERT_NEAR(wqc.data_ptr<float>()[i], ref[i], 1e-6f) << i;
    (wq * 2).sum().backward();
    EXPECT_TRUE(torch::equal(w.grad(), torch::full_like(w, 2.0)));
    EXPECT_LE(distinct_values(wq.select(0, 0)), 255u);
}
