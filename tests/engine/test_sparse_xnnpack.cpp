// XNNPACK's sparse inference path (SessionOptions::sparse) against the reference kernels on
// graphs shaped the way XNNPACK wants them (3x3 stride-2 stem on 3 channels, pruned 1x1 convs,
// depthwise, residual add, global average pool), at several input sizes, batches and threads;
// and that XNNPACK really takes the other path only when the graph qualifies.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>

#include "firesight/builder/passes.h"
#include "firesight/common/error.h"
#include "firesight/builder/tflite_graph.h"
#include "graph_helpers.h"
#include "test_util.h"

namespace firesight::engine {
namespace {

using testing::GraphMaker;

// Sets exactly round(share * n) weights of each 1x1 conv to zero, chosen at random.
void prune_1x1(Graph& g, double share, unsigned seed) {
    std::mt19937 rng(seed);
    for (const auto& op : g.ops) {
        if (op.kind != OpKind::Conv2D) continue;
        auto& w = g.tensors[static_cast<std::size_t>(op.inputs[1])];
        if (w.shape[1] != 1 || w.shape[2] != 1) continue;
        std::vector<std::size_t> order(w.owned.size());
        std::iota(order.begin(), order.end(), 0);
        std::shuffle(order.begin(), order.end(), rng);
        const auto zeros = static_cast<std::size_t>(share * static_cast<double>(order.size()) + 0.5);
        for (std::size_t i = 0; i < zeros; ++i) w.owned[order[i]] = 0.f;
    }
}

// MobileNetV2-like: stem, an inverted residual block, a stride-2 block, a 1x1 head, pool, fc.
// `stem_pad` {top, left, bottom, right}: {1,1,1,1} qualifies, TF SAME's {0,0,1,1} does not.
Graph mobilenet_like(int h, int w, unsigned seed, double sparsity, std::array<int, 4> stem_pad = {1, 1, 1, 1}) {
    GraphMaker m(seed);
    auto x = m.input({1, h, w, 3});
    auto stem = m.conv(x, 16, 3, 2, stem_pad, Activation::Relu6);
    auto e1 = m.conv(stem, 48, 1, 1, {0, 0, 0, 0}, Activation::Relu6);
    auto d1 = m.depthwise(e1, 3, 1, {1, 1, 1, 1}, Activation::Relu6);
    auto p1 = m.conv(d1, 16, 1, 1, {0, 0, 0, 0});
    auto r1 = m.add(stem, p1);
    auto e2 = m.conv(r1, 64, 1, 1, {0, 0, 0, 0}, Activation::Relu6);
    auto d2 = m.depthwise(e2, 3, 2, {1, 1, 1, 1}, Activation::Relu6);
    auto p2 = m.conv(d2, 24, 1, 1, {0, 0, 0, 0});
    auto head = m.conv(p2, 96, 1, 1, {0, 0, 0, 0}, Activation::Relu6);
    auto logits = m.fc(m.pool(head), 7);
    m.g.outputs = {m.softmax(logits), logits};
    prune_1x1(m.g, sparsity, seed + 1000);
    return m.g;
}

std::vector<float> input_for(const Graph& g, int batch, unsigned seed) {
    std::int64_t per = 1;
    const auto& s = g.tensors[static_cast<std::size_t>(g.inputs[0])].shape;
    for (std::size_t i = 1; i < s.size(); ++i) per *= s[i];
    GraphMaker m(seed);
    return m.random(static_cast<std::size_t>(per * batch), -1.f, 1.f);
}

// Logits (output 1) of one backend configuration.
std::vector<float> run_logits(const std::shared_ptr<const Engine>& e, SessionOptions o, const std::vector<float>& input, int batch) {
    Session s(e, o);
    const auto out = s.run(input, batch);
    return std::vector<float>(out[1], out[1] + s.output_size(1) * batch);
}

class SparseXnnpack : public ::testing::TestWithParam<std::tuple<std::pair<int, int>, int, int>> {};

TEST_P(SparseXnnpack, MatchesReference) {
    if (!backend_available(Backend::Xnnpack)) GTEST_SKIP() << "built without xnnpack";
    const auto [hw, batch, threads] = GetParam();
    const Graph g = mobilenet_like(hw.first, hw.second, static_cast<unsigned>(hw.first * 31 + hw.second), 0.8);
    auto engine = Engine::from_graph(g);
    Session ref(engine, {Backend::Reference, 1});
    SessionOptions so;
    so.backend = Backend::Xnnpack;
    so.threads = threads;
    so.sparse = true;
    Session sparse(engine, so);
    const auto input = input_for(g, batch, static_cast<unsigned>(batch * 7 + threads));
    for (int rep = 0; rep < 2; ++rep) {
        const auto r = ref.run(input, batch);
        const auto x = sparse.run(input, batch);
        for (std::size_t k = 0; k < r.size(); ++k) {
            const auto n = ref.output_size(static_cast<int>(k)) * batch;
            float worst = 0.f;
            for (std::int64_t i = 0; i < n; ++i) worst = std::max(worst, std::abs(r[k][i] - x[k][i]) / (1.f + std::abs(r[k][i])));
            EXPECT_LT(worst, 1e-5f) << "output " << k << " size " << hw.first << "x" << hw.second << " batch " << batch;
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Shapes, SparseXnnpack,
                         ::testing::Combine(::testing::Values(std::pair{16, 16}, std::pair{15, 15}, std::pair{9, 13}, std::pair{32, 20},
                                                              std::pair{7, 7}),
                                            ::testing::Values(1, 3), ::testing::Values(1, 2)));

// When XNNPACK keeps its dense NHWC path the hint changes nothing, to the last bit (the sparse
// NCHW kernels sum in another order, so a switch shows in the low bits).
bool sparse_hint_changes_result(const Graph& g) {
    auto engine = Engine::from_graph(g);
    const auto input = input_for(g, 2, 5);
    SessionOptions dense{Backend::Xnnpack, 1};
    dense.sparse = false;
    SessionOptions sparse{Backend::Xnnpack, 1};
    sparse.sparse = true;
    const auto a = run_logits(engine, dense, input, 2), b = run_logits(engine, sparse, input, 2);
    return std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) != 0;
}

TEST(SparseXnnpackPath, GraphsThatDoNotQualifyRunExactlyAsDense) {
    if (!backend_available(Backend::Xnnpack)) GTEST_SKIP() << "built without xnnpack";
    // At most 2/3 zeros over the 1x1 convs.
    EXPECT_FALSE(sparse_hint_changes_result(mobilenet_like(32, 32, 3, 0.6))) << "60% zeros";
    // TF SAME padding of the stride-2 stem on an even size (0 top/left, 1 bottom/right).
    EXPECT_FALSE(sparse_hint_changes_result(mobilenet_like(32, 32, 3, 0.8, {0, 0, 1, 1}))) << "asymmetric stem padding";
}

TEST(SparseXnnpackPath, IgnoredOnX86WithAvx) {
    if (!backend_available(Backend::Xnnpack)) GTEST_SKIP() << "built without xnnpack";
#if defined(__x86_64__) || defined(__i386__)
    if (!__builtin_cpu_supports("avx")) GTEST_SKIP() << "x86 without AVX: XNNPACK may take the sparse path here";
    // This XNNPACK enables its CHW (sparse) kernels on x86 only without AVX, where they beat the
    // dense ones; so even a qualifying graph runs dense on this CPU.
    EXPECT_FALSE(sparse_hint_changes_result(mobilenet_like(32, 32, 3, 0.8)));
#else
    GTEST_SKIP() << "not x86: the sparse path is available and checked against the reference above";
#endif
}

// On ARM (a Jetson, a Raspberry Pi; under qemu-aarch64 in scripts/arm64.sh) XNNPACK's CHW kernels
// are on: a qualifying pruned graph really switches to the sparse NCHW path (its sums come out in
// another order, so the last bits differ from the dense run), and it still gives the dense path's
// answers (MatchesReference above holds it to the reference kernels within 1e-5).
TEST(SparseXnnpackPath, TakenOnArm) {
    if (!backend_available(Backend::Xnnpack)) GTEST_SKIP() << "built without xnnpack";
#if defined(__aarch64__) || defined(__arm__)
    EXPECT_TRUE(sparse_hint_changes_result(mobilenet_like(32, 32, 3, 0.8))) << "80% zeros, symmetric stem padding";
    EXPECT_TRUE(sparse_hint_changes_result(mobilenet_like(33, 33, 4, 0.9))) << "90% zeros, odd size";
#else
    GTEST_SKIP() << "not ARM";
#endif
}

// Magnitude pruning of every 1x1 convolution: the `share` of its smallest |w| set to zero.
void magnitude_prune_1x1(Graph& g, double share) {
    for (const auto& op : g.ops) {
        if (op.kind != OpKind::Conv2D) continue;
        auto& w = g.tensors[static_cast<std::size_t>(op.inputs[1])];
        if (w.shape[1] != 1 || w.shape[2] != 1) continue;
        std::vector<float> v(w.data(), w.data() + w.element_count());
        std::vector<float> mags(v.size());
        for (std::size_t i = 0; i < v.size(); ++i) mags[i] = std::abs(v[i]);
        const auto cut = static_cast<std::size_t>(share * static_cast<double>(mags.size()));
        std::nth_element(mags.begin(), mags.begin() + static_cast<long>(cut), mags.end());
        const float threshold = mags[cut];
        for (auto& x : v)
            if (std::abs(x) < threshold) x = 0.f;
        w.owned = std::move(v);
        w.external = nullptr;
        w.storage.reset();
    }
}

// The real MobileNetV2 at 224 has TF SAME padding 0 before / 1 after on every stride-2
// convolution; rebuilt at 225 every one of them is 1 / 1, and its shapes follow.
TEST(SetInputSize, MobileNetV2At225HasSymmetricStride2Padding) {
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_quant());
    Graph g = graph_from_tflite_file(test::mobilenet_quant());
    int asymmetric = 0;
    for (const auto& op : g.ops)
        if (op.stride_h == 2 && op.pad_top != op.pad_bottom) ++asymmetric;
    EXPECT_GT(asymmetric, 0);
    set_input_size(g, 225);
    EXPECT_EQ(g.metadata.size, 225);
    EXPECT_EQ(g.tensors[static_cast<std::size_t>(g.inputs[0])].shape, (std::vector<std::int32_t>{1, 225, 225, 3}));
    int stride2 = 0;
    for (const auto& op : g.ops)
        if (op.stride_h == 2) {
            ++stride2;
            EXPECT_EQ(op.pad_top, 1);
            EXPECT_EQ(op.pad_bottom, 1);
            EXPECT_EQ(op.pad_left, 1);
            EXPECT_EQ(op.pad_right, 1);
        }
    EXPECT_EQ(stride2, asymmetric);
    const auto shapes = infer_shapes(g, 1);
    EXPECT_EQ(shapes[static_cast<std::size_t>(g.outputs[0])], (std::vector<std::int32_t>{1, 1001}));
    // Back to 224 gives the imported graph's padding again.
    Graph back = g;
    set_input_size(back, 224);
    const Graph fresh = graph_from_tflite_file(test::mobilenet_quant());
    for (std::size_t i = 0; i < fresh.ops.size(); ++i) {
        EXPECT_EQ(back.ops[i].pad_top, fresh.ops[i].pad_top) << i;
        EXPECT_EQ(back.ops[i].pad_bottom, fresh.ops[i].pad_bottom) << i;
    }
}

TEST(SetInputSize, RefusesPaddingThatIsNeitherSameNorValid) {
    GraphMaker m(5);
    auto x = m.input({1, 16, 16, 3});
    auto c = m.conv(x, 4, 3, 1, {2, 2, 2, 2}, Activation::None);  // SAME would be 1 / 1
    m.g.outputs = {m.fc(m.pool(c), 2)};
    EXPECT_THROW(set_input_size(m.g, 17), Error);
}

// The same MobileNetV2, 80% of every 1x1 convolution's weights pruned by magnitude, at 225: it
// qualifies for XNNPACK's sparse NCHW path. Sparse and dense XNNPACK give the reference kernels'
// answers; on ARM the sparse path is really taken (under qemu in scripts/arm64.sh), on an x86 with
// AVX it is not.
TEST(SparseXnnpackPath, PrunedMobileNetV2At225) {
    if (!backend_available(Backend::Xnnpack)) GTEST_SKIP() << "built without xnnpack";
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_quant());
    Graph g = graph_from_tflite_file(test::mobilenet_quant());
    magnitude_prune_1x1(g, 0.8);
    set_input_size(g, 225);
    auto engine = Engine::from_graph(g);
    const auto input = input_for(g, 1, 9);
    const auto ref = run_logits(engine, {Backend::Reference, 1}, input, 1);
    SessionOptions dense{Backend::Xnnpack, 1};
    dense.sparse = false;
    SessionOptions sparse{Backend::Xnnpack, 1};
    const auto d = run_logits(engine, dense, input, 1), sp = run_logits(engine, sparse, input, 1);
    float worst = 0.f;
    for (std::size_t i = 0; i < ref.size(); ++i) {
        EXPECT_NEAR(d[i], ref[i], 1e-3f * (1.f + std::abs(ref[i]))) << i;
        worst = std::max(worst, std::abs(sp[i] - d[i]) / (1.f + std::abs(d[i])));
    }
    EXPECT_LT(worst, 1e-4f);
    const bool changed = std::memcmp(d.data(), sp.data(), d.size() * sizeof(float)) != 0;
#if defined(__aarch64__) || defined(__arm__)
    EXPECT_TRUE(changed) << "the sparse path was not taken on ARM";
#elif defined(__x86_64__) || defined(__i386__)
    if (__builtin_cpu_supports("avx")) EXPECT_FALSE(changed);
#endif
    std::printf("pruned MobileNetV2 at 225: sparse vs dense logits within %.2g, %s\n", worst,
                changed ? "sparse path taken" : "dense path (no CHW kernels on this CPU)");
}

}  // namespace
}  // namespace firesight::engine
