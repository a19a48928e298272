#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <set>

#include "firesight/compress/cluster.h"
#include "firesight/common/error.h"
#include "test_util.h"

using namespace firesight;
using namespace firesight::compress;

namespace {

std::vector<float> normal(std::size_t n, unsigned seed, float sigma = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> d(0.0f, sigma);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng);
    return v;
}

// Most weights small, a long thin tail of large ones: where linear and density init differ.
std::vector<float> skewed(std::size_t n, unsigned seed) {
    std::mt19937 rng(seed);
    std::lognormal_distribution<float> d(0.0f, 1.0f);
    std::vector<float> v(n);
    for (auto& x : v) x = d(rng);
    return v;
}

std::size_t distinct(const std::vector<float>& v) {
    std::set<std::uint32_t> bits;
    for (float x : v) {
        std::uint32_t b;
        std::memcpy(&b, &x, 4);
        bits.insert(b);
    }
    return bits.size();
}

double squared_error(const std::vector<float>& a, const std::vector<float>& b) {
    double e = 0;
    for (std::size_t i = 0; i < a.size(); ++i) e += (static_cast<double>(a[i]) - b[i]) * (static_cast<double>(a[i]) - b[i]);
    return e;
}

}  // namespace

TEST(KMeans, AtMostKDistinctValuesAndConsistentError) {
    const auto w = normal(5000, 1);
    for (int k : {8, 16, 64, 256}) {
        for (auto init : {CentroidInit::Linear, CentroidInit::Density}) {
            KMeansOptions opt;
            opt.k = k;
            opt.init = init;
            const auto c = kmeans_1d(w, opt);
            ASSERT_EQ(c.centroids.size(), static_cast<std::size_t>(k));
            ASSERT_EQ(c.indices.size(), w.size());
            for (auto i : c.indices) ASSERT_LT(i, k);
            const auto v = c.values();
            EXPECT_LE(distinct(v), static_cast<std::size_t>(k));
            EXPECT_GT(distinct(v), static_cast<std::size_t>(k / 2));  // the clusters are actually used
            EXPECT_TRUE(std::is_sorted(c.centroids.begin(), c.centroids.end()));
            // The reported error is the error of the returned assignment.
            EXPECT_NEAR(c.squared_error(), squared_error(v, w), 1e-6 * squared_error(v, w) + 1e-9);
            // Each weight sits on its nearest centroid.
            for (std::size_t i = 0; i < w.size(); i += 97) {
                const double d = std::abs(static_cast<double>(w[i]) - c.centroids[c.indices[i]]);
                for (float ctr : c.centroids) ASSERT_LE(d, std::abs(static_cast<double>(w[i]) - ctr) + 1e-6);
            }
        }
    }
}

TEST(KMeans, ErrorNeverIncreasesThroughIterations) {
    const auto w = skewed(4000, 2);
    for (auto init : {CentroidInit::Linear, CentroidInit::Density}) {
        KMeansOptions opt;
        opt.k = 16;
        opt.init = init;
        opt.max_iterations = 50;
        opt.tolerance = 0;
        const auto c = kmeans_1d(w, opt);
        ASSERT_GE(c.error_history.size(), 2u);
        for (std::size_t i = 1; i < c.error_history.size(); ++i)
            EXPECT_LE(c.error_history[i], c.error_history[i - 1] * (1 + 1e-12)) << "iteration " << i;
        EXPECT_LT(c.error_history.back(), c.error_history.front());
    }
}

TEST(KMeans, DefaultOptionsIterateUntilConverged) {
    // Weights that were uint8 before (a few hundred distinct values): Lloyd's must improve on the
    // initial centroids, and 256 clusters must come close to exact.
    std::mt19937 rng(11);
    std::normal_distribution<float> d(0.0f, 10.0f);
    std::vector<float> w(20000);
    for (auto& x : w) x = 0.01f * std::round(d(rng));
    for (int k : {16, 256}) {
        KMeansOptions opt;
        opt.k = k;
        const auto c = kmeans_1d(w, opt);
        EXPECT_GE(c.error_history.size(), 2u) << k;
        EXPECT_LT(c.error_history.back(), 0.9 * c.error_history.front()) << k;
    }
    KMeansOptions opt;
    opt.k = 256;
    double norm = 0;
    for (float x : w) norm += static_cast<double>(x) * x;
    EXPECT_LT(kmeans_1d(w, opt).squared_error(), 1e-4 * norm);
}

TEST(KMeans, DensityInitBeatsABadInitOnASkewedDistribution) {
    const auto w = skewed(20000, 3);
    const auto [lo, hi] = std::minmax_element(w.begin(), w.end());
    KMeansOptions opt;
    opt.k = 16;
    opt.max_iterations = 20;
    // Bad: every centroid in the sparse top 10% of the range, where almost no weight lies.
    std::vector<float> bad;
    for (int j = 0; j < opt.k; ++j) bad.push_back(*hi - (*hi - *lo) * 0.1f * j / (opt.k - 1));
    const auto from_bad = kmeans_1d(w, bad, opt);
    opt.init = CentroidInit::Density;
    const auto from_density = kmeans_1d(w, opt);
    opt.init = CentroidInit::Linear;
    const auto from_linear = kmeans_1d(w, opt);
    EXPECT_LT(from_density.squared_error(), from_bad.squared_error());
    // Density init puts half the centroids below the median, an even grid almost none there (on this
    // distribution even-grid k-means still ends with a lower squared error: the tail dominates it,
    // which is why linear init is kept as an option).
    std::vector<float> sorted = w;
    std::sort(sorted.begin(), sorted.end());
    const float median = sorted[sorted.size() / 2];
    auto below = [&](const std::vector<float>& c) { return std::count_if(c.begin(), c.end(), [&](float v) { return v < median; }); };
    EXPECT_EQ(below(initial_centroids(w, 16, CentroidInit::Density)), 8);
    EXPECT_LE(below(initial_centroids(w, 16, CentroidInit::Linear)), 1);
    EXPECT_LT(from_linear.squared_error(), from_bad.squared_error());
}

TEST(KMeans, IsDeterministic) {
    const auto w = normal(3000, 4);
    KMeansOptions opt;
    opt.k = 32;
    const auto a = kmeans_1d(w, opt), b = kmeans_1d(w, opt);
    EXPECT_EQ(a.centroids, b.centroids);
    EXPECT_EQ(a.indices, b.indices);
}

TEST(KMeans, PreserveZerosKeepsPrunedWeightsExactlyZero) {
    auto w = normal(4000, 5);
    for (std::size_t i = 0; i < w.size(); i += 2) w[i] = 0.0f;  // 50% pruned
    KMeansOptions opt;
    opt.k = 8;
    opt.preserve_zeros = true;
    const auto c = kmeans_1d(w, opt);
    ASSERT_GE(c.zero_centroid, 0);
    EXPECT_EQ(c.centroids[c.zero_centroid], 0.0f);
    const auto v = c.values();
    EXPECT_LE(distinct(v), 8u);
    for (std::size_t i = 0; i < w.size(); ++i) {
        if (w[i] == 0.0f) ASSERT_EQ(v[i], 0.0f) << i;
        else ASSERT_NE(c.indices[i], c.zero_centroid) << i;  // live weights do not collapse to zero
    }
}

TEST(KMeans, RejectsBadInput) {
    const std::vector<float> empty;
    EXPECT_THROW(kmeans_1d(empty, KMeansOptions{}), Error);
    std::vector<float> nan = {1.0f, std::nanf("")};
    EXPECT_THROW(kmeans_1d(nan, KMeansOptions{}), Error);
    KMeansOptions opt;
    opt.k = 0;
    EXPECT_THROW(kmeans_1d(normal(10, 1), opt), Error);
}

TEST(Palette, BitsPerIndex) {
    EXPECT_EQ(palette_bits(1), 0);
    EXPECT_EQ(palette_bits(2), 1);
    EXPECT_EQ(palette_bits(3), 2);
    EXPECT_EQ(palette_bits(8), 3);
    EXPECT_EQ(palette_bits(16), 4);
    EXPECT_EQ(palette_bits(17), 5);
    EXPECT_EQ(palette_bits(256), 8);
    EXPECT_EQ(palette_bits(257), 9);
    EXPECT_THROW(palette_bits(0), Error);
}

TEST(Palette, LayoutIsLittleEndianBitStream) {
    // 1, 2, 3 at 2 bits: bits 0-1 = 01, 2-3 = 10, 4-5 = 11 -> 0b00111001.
    const std::vector<std::uint16_t> idx = {1, 2, 3};
    EXPECT_EQ(pack_indices(idx, 2), (std::vector<std::uint8_t>{0x39}));
    // 5 bits crossing a byte: 31 then 1 -> byte0 = 0b00111111, byte1 = 0b00000000.
    const std::vector<std::uint16_t> idx5 = {31, 1};
    EXPECT_EQ(pack_indices(idx5, 5), (std::vector<std::uint8_t>{0x3F, 0x00}));
}

TEST(Palette, PackingRoundTripsForManyKAndOddCounts) {
    std::mt19937 rng(6);
    for (std::size_t k : {2u, 3u, 8u, 16u, 17u, 256u, 1000u}) {
        const int bits = palette_bits(k);
        for (std::size_t n : {1u, 3u, 7u, 13u, 1001u, 4099u}) {
            std::vector<std::uint16_t> idx(n);
            for (auto& i : idx) i = static_cast<std::uint16_t>(rng() % k);
            idx[0] = static_cast<std::uint16_t>(k - 1);  // the largest index must survive
            const auto packed = pack_indices(idx, bits);
            ASSERT_EQ(packed.size(), (n * bits + 7) / 8) << "k=" << k << " n=" << n;
            EXPECT_EQ(unpack_indices(packed, n, bits), idx) << "k=" << k << " n=" << n;
        }
    }
}

TEST(Palette, ClusteredWeightsExpandBitExactly) {
    for (int k : {2, 3, 8, 16, 17, 256}) {
        const auto w = normal(999, 7 + k, 0.05f);
        KMeansOptions opt;
        opt.k = k;
        const auto c = kmeans_1d(w, opt);
        const auto p = make_palette(c);
        EXPECT_EQ(p.bits, palette_bits(k));
        EXPECT_EQ(p.packed.size(), packed_size_bytes(999, p.bits));
        const auto expanded = expand_palette(p);
        const auto direct = c.values();
        ASSERT_EQ(expanded.size(), direct.size());
        EXPECT_EQ(std::memcmp(expanded.data(), direct.data(), direct.size() * sizeof(float)), 0) << "k=" << k;
    }
}

TEST(Palette, RejectsCorruptInput) {
    const std::vector<std::uint16_t> idx = {0, 1, 2, 3, 4};
    const auto packed = pack_indices(idx, 3);
    EXPECT_THROW(unpack_indices(std::span(packed).first(packed.size() - 1), idx.size(), 3), Error);
    EXPECT_THROW(pack_indices(idx, 2), Error);  // 4 does not fit in 2 bits
    Palette p;
    p.centroids = {0.5f, 1.5f, 2.5f};  // 3 centroids, 2 bits: index 3 is representable but invalid
    p.bits = 2;
    p.count = 5;
    p.packed = pack_indices(std::vector<std::uint16_t>{0, 1, 2, 3, 0}, 2);
    EXPECT_THROW(expand_palette(p), Error);
    p.bits = 3;
    EXPECT_THROW(expand_palette(p), Error);  // bits do not match the centroid count
}
