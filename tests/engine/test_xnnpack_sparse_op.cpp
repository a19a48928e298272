// XNNPACK's NCHW 1x1 convolution operator (its SpMM path, used directly, not through a subgraph)
// against firesight's reference Conv2D on sparse weights, so the benchmark in
// bench/sparse_1x1_bench.cpp compares two paths that compute the same thing.
#include <gtest/gtest.h>
#include <pthreadpool.h>
#include <xnnpack.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "kernels/reference/kernels.h"

namespace firesight::engine {
namespace {

struct Case {
    int batch, h, w, in, out;
    double sparsity;       // share of weights set to exactly zero
    bool zero_channel;     // output channel out/2 gets only zero weights
    bool bias;
    Activation act;        // None or Relu6
};

std::string describe(const Case& c) {
    return "batch " + std::to_string(c.batch) + ", " + std::to_string(c.h) + "x" + std::to_string(c.w) + "x" +
           std::to_string(c.in) + " -> " + std::to_string(c.out) + ", " + std::to_string(c.sparsity) + " zeros" +
           (c.zero_channel ? ", a zero channel" : "") + (c.bias ? ", bias" : ", no bias") + ", " + activation_name(c.act);
}

struct Problem {
    std::vector<float> x_nhwc, w, bias;
};

Problem make_problem(const Case& c, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    Problem p;
    p.x_nhwc.resize(static_cast<std::size_t>(c.batch) * c.h * c.w * c.in);
    for (auto& v : p.x_nhwc) v = u(rng) * 2.f;
    p.w.resize(static_cast<std::size_t>(c.out) * c.in);
    for (auto& v : p.w) v = u(rng);
    // Exactly round(sparsity * n) zeros at random places, as magnitude pruning leaves them.
    std::vector<std::size_t> order(p.w.size());
    std::iota(order.begin(), order.end(), std::size_t{0});
    std::shuffle(order.begin(), order.end(), rng);
    const auto zeros = static_cast<std::size_t>(c.sparsity * static_cast<double>(order.size()) + 0.5);
    for (std::size_t i = 0; i < zeros; ++i) p.w[order[i]] = 0.f;
    if (c.zero_channel) std::fill_n(p.w.begin() + static_cast<std::ptrdiff_t>(c.out / 2) * c.in, c.in, 0.f);
    if (c.bias) {
        p.bias.resize(static_cast<std::size_t>(c.out));
        for (auto& v : p.bias) v = u(rng);
    }
    return p;
}

std::vector<float> nhwc_to_nchw(const std::vector<float>& x, int n, int h, int w, int c) {
    std::vector<float> y(x.size());
    for (int b = 0; b < n; ++b)
        for (int p = 0; p < h * w; ++p)
            for (int k = 0; k < c; ++k)
                y[(static_cast<std::size_t>(b) * c + k) * h * w + p] = x[(static_cast<std::size_t>(b) * h * w + p) * c + k];
    return y;
}

std::vector<float> nchw_to_nhwc(const std::vector<float>& x, int n, int h, int w, int c) {
    std::vector<float> y(x.size());
    for (int b = 0; b < n; ++b)
        for (int p = 0; p < h * w; ++p)
            for (int k = 0; k < c; ++k)
                y[(static_cast<std::size_t>(b) * h * w + p) * c + k] = x[(static_cast<std::size_t>(b) * c + k) * h * w + p];
    return y;
}

float lower_bound(Activation a) { return a == Activation::None ? -std::numeric_limits<float>::infinity() : 0.f; }
float upper_bound(Activation a) {
    return a == Activation::Relu6 ? 6.f : std::numeric_limits<float>::infinity();
}

std::vector<float> reference(const Case& c, const Problem& p) {
    Op op;
    op.kind = OpKind::Conv2D;
    op.activation = c.act;
    std::vector<float> y(static_cast<std::size_t>(c.batch) * c.h * c.w * c.out);
    ref::conv2d(op, p.x_nhwc.data(), {c.batch, c.h, c.w, c.in}, p.w.data(), {c.out, 1, 1, c.in},
                c.bias ? p.bias.data() : nullptr, y.data(), {c.batch, c.h, c.w, c.out});
    return y;
}

// |bias| + sum |x * w| for each output: the scale a summation-order difference is relative to.
std::vector<float> magnitudes(const Case& c, const Problem& p) {
    std::vector<float> m(static_cast<std::size_t>(c.batch) * c.h * c.w * c.out);
    for (std::size_t px = 0; px < static_cast<std::size_t>(c.batch) * c.h * c.w; ++px)
        for (int o = 0; o < c.out; ++o) {
            double s = c.bias ? std::fabs(p.bias[static_cast<std::size_t>(o)]) : 0.0;
            for (int k = 0; k < c.in; ++k)
                s += std::fabs(static_cast<double>(p.x_nhwc[px * c.in + k]) * p.w[static_cast<std::size_t>(o) * c.in + k]);
            m[px * c.out + o] = static_cast<float>(s);
        }
    return m;
}

class XnnpackSparseOp : public ::testing::Test {
protected:
    static void SetUpTestSuite() { ASSERT_EQ(xnn_initialize(nullptr), xnn_status_success); }

    // Creates the NCHW 1x1 operator; skips the test where this CPU has no SpMM kernel.
    xnn_operator_t create_nchw(const Case& c, const Problem& p) {
        xnn_operator_t op = nullptr;
        const auto st = xnn_create_convolution2d_nchw_f32(0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, static_cast<std::size_t>(c.in),
                                                          static_cast<std::size_t>(c.out), static_cast<std::size_t>(c.in),
                                                          static_cast<std::size_t>(c.out), p.w.data(),
                                                          c.bias ? p.bias.data() : nullptr, lower_bound(c.act),
                                                          upper_bound(c.act), 0, &op);
        if (st == xnn_status_unsupported_hardware) {
            skipped_ = true;
            return nullptr;
        }
        EXPECT_EQ(st, xnn_status_success) << describe(c);
        return op;
    }

    // Runs the NCHW operator on NHWC input, returning NHWC output (empty when skipped).
    std::vector<float> run_nchw(const Case& c, const Problem& p, pthreadpool_t pool = nullptr) {
        xnn_operator_t op = create_nchw(c, p);
        if (!op) return {};
        const auto x = nhwc_to_nchw(p.x_nhwc, c.batch, c.h, c.w, c.in);
        std::vector<float> y(static_cast<std::size_t>(c.batch) * c.out * c.h * c.w, std::nanf(""));
        EXPECT_EQ(xnn_setup_convolution2d_nchw_f32(op, static_cast<std::size_t>(c.batch), static_cast<std::size_t>(c.h),
                                                   static_cast<std::size_t>(c.w), x.data(), y.data(), pool),
                  xnn_status_success);
        EXPECT_EQ(xnn_run_operator(op, pool), xnn_status_success);
        xnn_delete_operator(op);
        return nchw_to_nhwc(y, c.batch, c.h, c.w, c.out);
    }

    std::vector<float> run_nhwc(const Case& c, const Problem& p) {
        xnn_operator_t op = nullptr;
        EXPECT_EQ(xnn_create_convolution2d_nhwc_f32(0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, static_cast<std::size_t>(c.in),
                                                    static_cast<std::size_t>(c.out), static_cast<std::size_t>(c.in),
                                                    static_cast<std::size_t>(c.out), p.w.data(),
                                                    c.bias ? p.bias.data() : nullptr, lower_bound(c.act), upper_bound(c.act),
                                                    0, &op),
                  xnn_status_success);
        std::vector<float> y(static_cast<std::size_t>(c.batch) * c.h * c.w * c.out, std::nanf(""));
        EXPECT_EQ(xnn_setup_convolution2d_nhwc_f32(op, static_cast<std::size_t>(c.batch), static_cast<std::size_t>(c.h),
                                                   static_cast<std::size_t>(c.w), p.x_nhwc.data(), y.data(), nullptr),
                  xnn_status_success);
        EXPECT_EQ(xnn_run_operator(op, nullptr), xnn_status_success);
        xnn_delete_operator(op);
        return y;
    }

    // Same values as the reference up to summation order: 1e-5 of |bias| + sum |x w|, which is far
    // below any single missing or misplaced weight's contribution.
    void expect_matches_reference(const Case& c, unsigned seed, pthreadpool_t pool = nullptr) {
        const auto p = make_problem(c, seed);
        const auto got = run_nchw(c, p, pool);
        if (skipped_) return;
        const auto want = reference(c, p);
        const auto mag = magnitudes(c, p);
        ASSERT_EQ(got.size(), want.size());
        int bad = 0;
        for (std::size_t i = 0; i < want.size() && bad < 5; ++i) {
            const float tol = 1e-5f * mag[i] + 1e-7f;
            if (!(std::fabs(got[i] - want[i]) <= tol)) {
                ADD_FAILURE() << describe(c) << ": element " << i << " (channel " << i % static_cast<std::size_t>(c.out)
                              << ") is " << got[i] << ", reference " << want[i] << " (tolerance " << tol << ")";
                ++bad;
            }
        }
    }

    bool skipped_ = false;
};

#define SKIP_IF_UNSUPPORTED()                                                                              \
    do {                                                                                                   \
        if (skipped_) GTEST_SKIP() << "xnn_create_convolution2d_nchw_f32: xnn_status_unsupported_hardware"; \
    } while (0)

TEST_F(XnnpackSparseOp, MatchesReferenceOverShapesSparsitiesBiasAndClamp) {
    // Pixel counts around the SpMM kernels' 32/16/8/4/2/1-pixel tiles; channel counts that are not
    // multiples of 4 or 8 too.
    const std::vector<std::array<int, 2>> sizes = {{1, 1}, {1, 2}, {3, 3}, {5, 7}, {7, 7}, {9, 13}, {14, 14}};
    const std::vector<std::array<int, 2>> channels = {{3, 5}, {8, 16}, {17, 33}, {64, 24}, {96, 160}};
    unsigned seed = 1;
    for (int batch : {1, 2})
        for (const auto& hw : sizes)
            for (const auto& io : channels)
                for (double sparsity : {0.5, 0.75, 0.9}) {
                    // Cycle through bias / activation / zero-channel combinations so every shape
                    // and sparsity meets several of them without running the full product.
                    const unsigned v = seed++;
                    Case c{batch, hw[0], hw[1], io[0], io[1], sparsity, v % 3 == 0, v % 2 == 0,
                           (v / 2) % 2 == 0 ? Activation::Relu6 : Activation::None};
                    expect_matches_reference(c, v);
                    SKIP_IF_UNSUPPORTED();
                }
    // And every bias / activation combination on one shape with odd sizes everywhere.
    for (bool bias : {false, true})
        for (Activation act : {Activation::None, Activation::Relu6})
            for (double sparsity : {0.5, 0.75, 0.9})
                expect_matches_reference({2, 11, 13, 37, 45, sparsity, true, bias, act}, seed++);
}

TEST_F(XnnpackSparseOp, FullyZeroOutputChannelsGiveTheClampedBias) {
    // Every output channel empty but one, and one case with no non-zero weight at all: the packed
    // form then has no non-zero entries to walk.
    for (int nonzero_channels : {0, 1}) {
        Case c{2, 5, 6, 12, 9, 0.0, false, true, Activation::Relu6};
        auto p = make_problem(c, 77);
        for (int o = nonzero_channels; o < c.out; ++o)
            std::fill_n(p.w.begin() + static_cast<std::ptrdiff_t>(o) * c.in, c.in, 0.f);
        p.bias[3] = 7.5f;   // above relu6's bound
        p.bias[4] = -2.f;   // below it
        const auto got = run_nchw(c, p);
        SKIP_IF_UNSUPPORTED();
        const auto want = reference(c, p);
        ASSERT_EQ(got.size(), want.size());
        for (std::size_t i = 0; i < want.size(); ++i) {
            const auto o = static_cast<int>(i % static_cast<std::size_t>(c.out));
            if (o < nonzero_channels) {
                EXPECT_NEAR(got[i], want[i], 1e-5f * (1.f + std::fabs(want[i]))) << "element " << i;
            } else {
                EXPECT_EQ(got[i], std::min(std::max(p.bias[static_cast<std::size_t>(o)], 0.f), 6.f)) << "element " << i;
                EXPECT_EQ(got[i], want[i]) << "element " << i;
            }
        }
    }
}

TEST_F(XnnpackSparseOp, MatchesReferenceOnAThreadPool) {
    pthreadpool_t pool = pthreadpool_create(2);
    ASSERT_NE(pool, nullptr);
    for (int batch : {1, 2}) {
        expect_matches_reference({batch, 14, 14, 96, 24, 0.75, true, true, Activation::None}, 300 + batch, pool);
        expect_matches_reference({batch, 7, 9, 40, 150, 0.9, false, true, Activation::Relu6}, 310 + batch, pool);
    }
    pthreadpool_destroy(pool);
    SKIP_IF_UNSUPPORTED();
}

// Evidence that the NCHW operator is the sparse one: it never reads an input channel whose weights
// are all zero, so an infinite value there leaves its output finite, while a dense kernel (the
// reference, or XNNPACK's NHWC GEMM) multiplies 0 * inf and gets a non-finite result. And 1x1 NCHW is accepted
// only in the one configuration XNNPACK maps to SpMM: padded, it is refused.
TEST_F(XnnpackSparseOp, RunsTheSpmmKernelThatSkipsZeroWeights) {
    Case c{1, 6, 6, 16, 24, 0.6, false, true, Activation::None};
    auto p = make_problem(c, 500);
    const int dead = 5;  // input channel with only zero weights
    for (int o = 0; o < c.out; ++o) p.w[static_cast<std::size_t>(o) * c.in + dead] = 0.f;
    for (std::size_t px = 0; px < static_cast<std::size_t>(c.h) * c.w; ++px)
        p.x_nhwc[px * c.in + dead] = std::numeric_limits<float>::infinity();

    const auto sparse = run_nchw(c, p);
    SKIP_IF_UNSUPPORTED();
    const auto dense = run_nhwc(c, p);
    const auto with_inf_reference = reference(c, p);
    auto finite = p;
    for (std::size_t px = 0; px < static_cast<std::size_t>(c.h) * c.w; ++px) finite.x_nhwc[px * c.in + dead] = 0.f;
    const auto want = reference(c, finite);
    const auto mag = magnitudes(c, finite);
    ASSERT_EQ(sparse.size(), want.size());
    for (std::size_t i = 0; i < want.size(); ++i) {
        ASSERT_TRUE(std::isnan(with_inf_reference[i])) << "element " << i << ": the reference should see 0 * inf";
        // Its NaN comes out as -inf: the min/max clamp (maxps) returns the bound when fed NaN.
        ASSERT_FALSE(std::isfinite(dense[i])) << "element " << i << ": XNNPACK's dense NHWC path should see 0 * inf, got "
                                              << dense[i];
        ASSERT_TRUE(std::isfinite(sparse[i])) << "element " << i << ": the NCHW path read a zero weight";
        EXPECT_NEAR(sparse[i], want[i], 1e-5f * mag[i] + 1e-7f) << "element " << i;
    }

    xnn_operator_t padded = nullptr;
    EXPECT_EQ(xnn_create_convolution2d_nchw_f32(1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 16, 24, 16, 24, p.w.data(), p.bias.data(),
                                                lower_bound(c.act), upper_bound(c.act), 0, &padded),
              xnn_status_unsupported_parameter)
        << "a padded 1x1 NCHW convolution has no SpMM kernel";
    if (padded) xnn_delete_operator(padded);
}

}  // namespace
}  // namespace firesight::engine
