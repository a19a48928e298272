// The frozen prefix on the runtime engine against libtorch's own forward (the trainer uses either,
// so they must compute the same activations), and the on-disk cache the trainer keeps them in.
#include <gtest/gtest.h>

#include <torch/torch.h>

#include <opencv2/core.hpp>

#include <future>
#include <random>
#include <thread>

#include "firesight/common/error.h"
#include "firesight/model/mobilenet_v2.h"
#include "firesight/train/feature_cache.h"
#include "firesight/train/prefix_engine.h"
#include "test_util.h"

using namespace firesight;

namespace {

// Largest |a - b| over the largest |b|: layout or padding mistakes give O(1), float rounding 1e-6.
double relative_error(const torch::Tensor& a, const torch::Tensor& b) {
    return (a - b).abs().max().item<double>() / std::max(1e-6, b.abs().max().item<double>());
}

cv::Mat random_image(int size) {
    cv::Mat m(size, size, CV_32FC3);
    cv::randu(m, cv::Scalar::all(-1), cv::Scalar::all(1));
    return m;
}

}  // namespace

class PrefixEngineTest : public ::testing::TestWithParam<std::tuple<int, int>> {};

TEST_P(PrefixEngineTest, MatchesLibtorchPrefixAndEmbedding) {
    if (!train::PrefixEngine::available()) GTEST_SKIP() << "built without the XNNPACK backend";
    const auto [size, upto] = GetParam();
    torch::manual_seed(7);
    model::MobileNetV2Options o;
    o.num_classes = 3;
    model::MobileNetV2 net(o);
    net->eval();
    train::PrefixEngine eng(net, size, upto, true);
    cv::setRNGSeed(upto * 1000 + size);
    const cv::Mat img = random_image(size);
    std::vector<float> prefix(static_cast<std::size_t>(eng.prefix_size())), emb(static_cast<std::size_t>(eng.embedding_size()));
    eng.run(img, prefix.data(), emb.data());

    torch::NoGradGuard g;
    const auto x = torch::from_blob(const_cast<float*>(img.ptr<float>()), {1, size, size, 3}).permute({0, 3, 1, 2}).contiguous();
    const auto ref_prefix = net->forward_features(x, 0, upto);
    const auto ref_emb = net->forward_features(ref_prefix, upto, 19).mean({2, 3});
    ASSERT_EQ(eng.prefix_shape(), (std::vector<std::int64_t>{ref_prefix.size(1), ref_prefix.size(2), ref_prefix.size(3)}));
    ASSERT_EQ(eng.embedding_size(), ref_emb.size(1));
    const auto got_prefix = torch::from_blob(prefix.data(), ref_prefix.sizes());
    const auto got_emb = torch::from_blob(emb.data(), ref_emb.sizes());
    EXPECT_LT(relative_error(got_prefix, ref_prefix), 1e-4) << "size " << size << ", prefix up to features." << upto;
    EXPECT_LT(relative_error(got_emb, ref_emb), 1e-4) << "size " << size << ", prefix up to features." << upto;
    // Not all zeros or constants (a dead network would compare equal trivially).
    EXPECT_GT(ref_prefix.std().item<double>(), 1e-3);
    EXPECT_GT(ref_emb.std().item<double>(), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(SizesAndBlocks, PrefixEngineTest,
                         ::testing::Values(std::make_tuple(96, 12), std::make_tuple(113, 12), std::make_tuple(96, 4),
                                           std::make_tuple(224, 12), std::make_tuple(96, 18)));

TEST(PrefixEngine, ConcurrentCallersGetTheSameResultsAsOne) {
    if (!train::PrefixEngine::available()) GTEST_SKIP() << "built without the XNNPACK backend";
    torch::manual_seed(9);
    model::MobileNetV2 net(model::MobileNetV2Options{3});
    net->eval();
    train::PrefixEngine eng(net, 64, 8, false);
    EXPECT_EQ(eng.embedding_size(), 0);
    std::vector<cv::Mat> imgs;
    std::vector<std::vector<float>> serial;
    for (int i = 0; i < 8; ++i) {
        cv::setRNGSeed(i + 1);
        imgs.push_back(random_image(64));
        serial.emplace_back(static_cast<std::size_t>(eng.prefix_size()));
        eng.run(imgs.back(), serial.back().data(), nullptr);
    }
    std::vector<std::future<std::vector<float>>> parallel;
    for (int i = 0; i < 8; ++i)
        parallel.push_back(std::async(std::launch::async, [&, i] {
            std::vector<float> out(static_cast<std::size_t>(eng.prefix_size()));
            eng.run(imgs[static_cast<std::size_t>(i)], out.data(), nullptr);
            return out;
        }));
    for (int i = 0; i < 8; ++i) EXPECT_EQ(parallel[static_cast<std::size_t>(i)].get(), serial[static_cast<std::size_t>(i)]) << i;
    std::vector<float> emb(1280);
    EXPECT_THROW(eng.run(imgs[0], nullptr, emb.data()), Error);  // no embedding output
    EXPECT_THROW(eng.run(random_image(32), serial[0].data(), nullptr), Error);  // wrong size
}

TEST(DiskStore, RecordsComeBackByIndexAndTheFileLeavesNoName) {
    test::TempDir d;
    std::vector<std::vector<unsigned char>> records;
    std::mt19937 rng(5);
    {
        train::DiskStore st(d.path());
        for (int i = 0; i < 200; ++i) {
            std::vector<unsigned char> r(rng() % 5000);
            for (auto& b : r) b = static_cast<unsigned char>(rng());
            EXPECT_EQ(st.append(r.data(), r.size()), static_cast<std::size_t>(i));
            records.push_back(std::move(r));
        }
        ASSERT_EQ(st.size(), records.size());
        std::uint64_t total = 0;
        for (const auto& r : records) total += r.size();
        EXPECT_EQ(st.total_bytes(), total);
        EXPECT_TRUE(std::filesystem::is_empty(d.path())) << "the cache file must be anonymous";
        // Readers on several threads at once, in a shuffled order.
        std::vector<std::future<bool>> checks;
        for (int t = 0; t < 4; ++t)
            checks.push_back(std::async(std::launch::async, [&, t] {
                std::mt19937 r(static_cast<unsigned>(t));
                for (int k = 0; k < 500; ++k) {
                    const auto i = r() % records.size();
                    if (st.read(i) != records[i]) return false;
                }
                return true;
            }));
        for (auto& c : checks) EXPECT_TRUE(c.get());
        EXPECT_THROW(st.read(records.size()), Error);
        train::DiskStore moved = std::move(st);
        EXPECT_EQ(moved.read(7), records[7]);
    }
    EXPECT_TRUE(std::filesystem::is_empty(d.path()));
}
