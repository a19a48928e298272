#include <opencv2/imgcodecs.hpp>

#include <cmath>
#include <algorithm>
#include <fstream>
#include <numeric>
#include <random>
#include <set>

#include "firesight/builder/quantize.h"
#include "firesight/compress/calibrate.h"
#include "firesight/common/error.h"
#include "test_util.h"

using namespace firesight;
using namespace firesight::compress;

namespace {

std::vector<float> gaussian(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, 1.0f);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng);
    return v;
}

std::uint64_t sum_counts(const ActivationHistogram& h) {
    return std::accumulate(h.counts().begin(), h.counts().end(), std::uint64_t{0});
}

}  // namespace

TEST(ActivationHistogram, GrowsItsRangeWithoutLosingCounts) {
    ActivationHistogram h(16);
    h.add(std::vector<float>{0.0f, 0.0f});  // zeros before any range is known
    h.add(std::vector<float>{0.5f, -1.0f});
    EXPECT_DOUBLE_EQ(h.range(), 1.0);
    h.add(std::vector<float>{3.5f});  // 1 -> 2 -> 4
    EXPECT_DOUBLE_EQ(h.range(), 4.0);
    EXPECT_EQ(h.total(), 5u);
    EXPECT_EQ(sum_counts(h), 5u);
    // Width 0.25 after two merges: the zeros in bin 0, 0.5 in bin 2, 3.5 in bin 14.
    EXPECT_EQ(h.counts()[0], 2u);
    EXPECT_EQ(h.counts()[2], 1u);
    EXPECT_EQ(h.counts()[14], 1u);
    EXPECT_FLOAT_EQ(h.min(), -1.0f);
    EXPECT_FLOAT_EQ(h.max(), 3.5f);
    EXPECT_THROW(h.add(std::vector<float>{std::nanf("")}), Error);
    EXPECT_THROW(ActivationHistogram(3), Error);
}

TEST(Calibration, MinMaxOfUniformIsItsBound) {
    std::mt19937 rng(1);
    const float a = 2.5f;
    std::uniform_real_distribution<float> d(-a, a);
    ActivationHistogram h;
    // Batches of growing spread make the histogram rebin on the way.
    for (float frac : {0.1f, 0.5f, 1.0f}) {
        std::vector<float> v(50000);
        for (auto& x : v) x = d(rng) * frac;
        h.add(v);
    }
    EXPECT_EQ(sum_counts(h), h.total());
    const auto r = calibrate_range(h, {CalibrationMethod::MinMax});
    EXPECT_NEAR(r.min, -a, 1e-3);
    EXPECT_NEAR(r.max, a, 1e-3);
    EXPECT_GE(r.min, -a);
    EXPECT_LE(r.max, a);
    // Nothing to clip in a uniform distribution: entropy keeps (nearly) the whole range.
    EXPECT_GT(entropy_threshold(h), 0.9 * a);
}

TEST(Calibration, PercentileOfGaussianIsTheMatchingQuantile) {
    ActivationHistogram h;
    h.add(gaussian(400000, 2));
    // For |x| with x ~ N(0, 1): P(|x| < t) = p  <=>  t = Phi^-1((1 + p) / 2).
    EXPECT_NEAR(percentile_threshold(h, 99.0), 2.5758, 0.03);
    EXPECT_NEAR(percentile_threshold(h, 99.9), 3.2905, 0.08);
    EXPECT_NEAR(percentile_threshold(h, 95.0), 1.9600, 0.02);
    const auto r = calibrate_range(h, {CalibrationMethod::Percentile, 99.0});
    EXPECT_NEAR(r.max, 2.5758, 0.03);
    EXPECT_NEAR(r.min, -2.5758, 0.03);
    EXPECT_THROW(percentile_threshold(h, 0.0), Error);
    EXPECT_THROW(percentile_threshold(h, 101.0), Error);
}

TEST(Calibration, EntropyIgnoresAFewHugeOutliers) {
    ActivationHistogram h;
    auto v = gaussian(300000, 3);
    for (int i = 0; i < 10; ++i) v.push_back(i % 2 ? 50.0f : -48.0f);
    h.add(v);
    const auto mm = calibrate_range(h, {CalibrationMethod::MinMax});
    EXPECT_FLOAT_EQ(mm.max, 50.0f);
    const double t = entropy_threshold(h);
    // 128 levels need at least 128 of the 2048 bins: 128 / 2048 * 50 = 3.1 sigma is the floor.
    EXPECT_GT(t, 3.0);
    EXPECT_LT(t, 8.0);
    const auto r = calibrate_range(h, {CalibrationMethod::Entropy});
    EXPECT_NEAR(r.max, t, 1e-5);
    EXPECT_NEAR(r.min, -t, 1e-5);
}

TEST(Calibration, PerTensorChoiceTakesTheLowestExpectedError) {
    ActivationHistogram outliers;
    auto v = gaussian(1000000, 7);
    v.push_back(50.0f);
    v.push_back(-48.0f);
    outliers.add(v);
    const auto c = choose_calibration(outliers);
    // Covering two outliers in a million makes the step 98/255: more rounding noise on the bulk
    // (0.0123 per value) than clipping them costs (2 * 46^2 / 1e6 = 0.004). With ten times more
    // outliers squared error would prefer min-max; that is what the entropy method is for.
    EXPECT_NE(c.method, CalibrationMethod::MinMax);
    EXPECT_LT(c.range.abs_max(), 10.0f);
    const double mm = expected_quantization_mse(outliers, calibrate_range(outliers, {CalibrationMethod::MinMax}));
    EXPECT_LT(c.mse, mm / 2);
    for (auto m : {CalibrationMethod::MinMax, CalibrationMethod::Percentile, CalibrationMethod::Entropy})
        EXPECT_LE(c.mse, expected_quantization_mse(outliers, calibrate_range(outliers, {m})));
    // Rounding noise alone for a range that clips nothing: step^2 / 12.
    std::mt19937 rng(8);
    std::uniform_real_distribution<float> d(-1.0f, 1.0f);
    std::vector<float> u(100000);
    for (auto& x : u) x = d(rng);
    ActivationHistogram uniform;
    uniform.add(u);
    const auto r = calibrate_range(uniform, {CalibrationMethod::MinMax});
    const double step = asymmetric_int8(r).scale;
    EXPECT_NEAR(expected_quantization_mse(uniform, r), step * step / 12, 1e-9);
    std::map<std::string, ActivationHistogram> all = {{"a", outliers}, {"b", uniform}};
    const auto chosen = choose_calibrations(all);
    EXPECT_EQ(chosen.size(), 2u);
    EXPECT_EQ(chosen.at("a").method, c.method);
}

TEST(Calibration, EntropyIsNotPulledDownByExactZeros) {
    // ReLU outputs: a share of exact zeros plus a skewed positive part. int8 encodes 0 exactly, so
    // the threshold should depend on the positive part only, however many zeros there are.
    std::vector<double> thresholds;
    for (double zero_share : {0.0, 0.5, 0.9}) {
        std::mt19937 rng(9);
        std::exponential_distribution<float> e(4.0f);
        std::uniform_real_distribution<float> u(0.0f, 1.0f);
        std::vector<float> v(400000);
        for (auto& x : v) x = u(rng) < zero_share ? 0.0f : std::min(e(rng), 6.0f);
        ActivationHistogram h;
        h.add(v);
        EXPECT_EQ(h.exact_zeros(), static_cast<std::uint64_t>(std::count(v.begin(), v.end(), 0.0f)));
        thresholds.push_back(entropy_threshold(h));
    }
    for (double t : thresholds) {
        EXPECT_GT(t, 1.5);  // well past the bulk (exp(4): 99% below 1.15)
        EXPECT_NEAR(t, thresholds[0], 0.25 * thresholds[0]);
    }
}

TEST(Calibration, ReluOutputKeepsMinZero) {
    ActivationHistogram h;
    auto v = gaussian(100000, 4);
    for (auto& x : v) x = std::min(std::max(x, 0.0f), 6.0f);
    h.add(v);
    for (auto m : {CalibrationMethod::MinMax, CalibrationMethod::Percentile, CalibrationMethod::Entropy}) {
        const auto r = calibrate_range(h, {m});
        EXPECT_EQ(r.min, 0.0f) << calibration_method_name(m);
        EXPECT_GT(r.max, 1.0f) << calibration_method_name(m);
    }
    EXPECT_EQ(parse_calibration_method("entropy"), CalibrationMethod::Entropy);
    EXPECT_THROW(parse_calibration_method("kl"), Error);
}

TEST(Quantization, AsymmetricRangeRepresentsZeroExactly) {
    const auto q = asymmetric_int8({0.0f, 6.0f});
    EXPECT_FLOAT_EQ(q.scale, 6.0f / 255.0f);
    EXPECT_EQ(q.zero_point, -128);
    EXPECT_EQ(dequantize_int8(quantize_int8(0.0f, q), q), 0.0f);
    const auto q2 = asymmetric_int8({-1.3f, 4.1f});
    EXPECT_EQ(dequantize_int8(quantize_int8(0.0f, q2), q2), 0.0f);
    EXPECT_EQ(quantize_int8(1e6f, q2), 127);  // saturates
    EXPECT_EQ(quantize_int8(-1e6f, q2), -128);
    for (float x = -1.3f; x <= 4.1f; x += 0.01f)
        EXPECT_LE(std::abs(dequantize_int8(quantize_int8(x, q2), q2) - x), element_error_bound(q2.scale) * 1.0001f) << x;
    EXPECT_THROW(asymmetric_int8({2.0f, 1.0f}), Error);
}

TEST(Quantization, PerChannelWeightsRoundTripWithinHalfAStep) {
    std::mt19937 rng(5);
    const std::size_t channels = 16, per = 3 * 3 * 7;
    std::vector<float> w(channels * per);
    for (std::size_t c = 0; c < channels; ++c) {
        std::normal_distribution<float> d(0.0f, 0.01f * static_cast<float>(c + 1));  // very different scales
        for (std::size_t i = 0; i < per; ++i) w[c * per + i] = c == 5 ? 0.0f : d(rng);
    }
    const auto q = quantize_weights_per_channel(w, channels);
    ASSERT_EQ(q.scales.size(), channels);
    const auto back = dequantize(q);
    for (std::size_t c = 0; c < channels; ++c) {
        float amax = 0;
        int qmax = 0;
        for (std::size_t i = 0; i < per; ++i) {
            const std::size_t k = c * per + i;
            amax = std::max(amax, std::abs(w[k]));
            qmax = std::max(qmax, std::abs(static_cast<int>(q.values[k])));
            ASSERT_LE(std::abs(back[k] - w[k]), element_error_bound(q.scales[c]) * (1 + 1e-6f)) << "channel " << c;
            ASSERT_GE(q.values[k], -127);
        }
        if (c == 5) {
            EXPECT_EQ(q.scales[c], 1.0f);
            EXPECT_EQ(qmax, 0);
        } else {
            EXPECT_FLOAT_EQ(q.scales[c], amax / 127.0f);
            EXPECT_EQ(qmax, 127);  // the largest weight uses the full range
        }
    }
    EXPECT_THROW(quantize_weights_per_channel(w, 17), Error);
}

TEST(Quantization, DotProductStaysWithinTheBound) {
    std::mt19937 rng(6);
    std::uniform_real_distribution<float> dx(0.0f, 6.0f), dw(-0.3f, 0.3f);
    for (int trial = 0; trial < 20; ++trial) {
        const std::size_t n = 1 + rng() % 500;
        std::vector<float> x(n), w(n);
        for (auto& v : x) v = dx(rng);
        for (auto& v : w) v = dw(rng);
        const auto qx = asymmetric_int8({0.0f, 6.0f});
        const auto qw = quantize_weights_per_channel(w, 1);
        const auto wq = dequantize(qw);
        double exact = 0, quant = 0;
        for (std::size_t i = 0; i < n; ++i) {
            exact += static_cast<double>(x[i]) * w[i];
            quant += static_cast<double>(dequantize_int8(quantize_int8(x[i], qx), qx)) * wq[i];
        }
        EXPECT_LE(std::abs(exact - quant), dot_product_error_bound(x, w, qx.scale, qw.scales[0]) + 1e-6) << "n=" << n;
    }
}

TEST(CalibrationSet, SkipsAndReportsCorruptImages) {
    test::TempDir dir;
    // A pure red image: after preprocessing R = +1, G = B = -1, which pins down the CHW layout.
    cv::Mat red(40, 50, CV_8UC3, cv::Scalar(0, 0, 255));
    ASSERT_TRUE(cv::imwrite((dir / "a red.png").string(), red));
    ASSERT_TRUE(cv::imwrite((dir / "b.jpg").string(), red));
    ASSERT_TRUE(cv::imwrite((dir / "c;red.bmp").string(), red));
    { std::ofstream(dir / "broken.jpg") << "this is not a JPEG"; }
    { std::ofstream(dir / "empty.png"); }
    { std::ofstream(dir / "notes.txt") << "not an image, not listed"; }
    const auto files = list_image_files(dir.path());
    ASSERT_EQ(files.size(), 5u);

    CalibrationSetOptions opt;
    opt.count = 10;
    opt.preprocess.size = 32;
    opt.preprocess.resize_shorter = 32;
    opt.progress = false;
    std::vector<std::string> reported;
    opt.on_warning = [&](const CalibrationWarning& w) { reported.push_back(w.file); };
    CalibrationSet set(files, opt);
    EXPECT_EQ(set.size(), 3u);
    ASSERT_EQ(set.warnings().size(), 2u);
    EXPECT_EQ(reported.size(), 2u);
    std::set<std::string> bad;
    for (const auto& w : set.warnings()) {
        bad.insert(std::filesystem::path(w.file).filename().string());
        EXPECT_FALSE(w.reason.empty());
    }
    EXPECT_EQ(bad, (std::set<std::string>{"broken.jpg", "empty.png"}));
    const auto img = set.image(0);
    ASSERT_EQ(img.size(), 3u * 32 * 32);
    EXPECT_NEAR(img[0], 1.0f, 0.02f);
    EXPECT_NEAR(img[32 * 32], -1.0f, 0.02f);
    EXPECT_NEAR(img[2 * 32 * 32 + 100], -1.0f, 0.02f);
    EXPECT_THROW(set.image(3), Error);

    // Fewer wanted than good files: the corrupt ones may still be drawn, and are replaced.
    opt.count = 2;
    CalibrationSet two(files, opt), again(files, opt);
    EXPECT_EQ(two.size(), 2u);
    EXPECT_EQ(two.files(), again.files());  // same seed, same draw
}

TEST(CalibrationSet, NoDecodableImageIsAnError) {
    test::TempDir dir;
    { std::ofstream(dir / "x.jpg") << "garbage"; }
    CalibrationSetOptions opt;
    opt.progress = false;
    opt.on_warning = [](const CalibrationWarning&) {};
    try {
        CalibrationSet set({dir / "x.jpg"}, opt);
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("x.jpg"), std::string::npos) << e.what();
    }
    EXPECT_THROW(CalibrationSet({}, opt), Error);
    EXPECT_THROW(list_image_files(dir / "missing"), Error);
}

TEST(CalibrationSet, DrawsFromTheRealFireImages) {
    const auto root = test::assets() / "fire-cair";
    FIRESIGHT_REQUIRE_ASSET(root);
    const auto files = list_image_files(root);
    EXPECT_GT(files.size(), 500u);
    CalibrationSetOptions opt;
    opt.count = 6;
    opt.progress = false;
    CalibrationSet set(files, opt);
    EXPECT_EQ(set.size(), 6u);
    for (std::size_t i = 0; i < set.size(); ++i)
        for (float v : set.image(i)) ASSERT_TRUE(v >= -1.01f && v <= 1.01f);
}
