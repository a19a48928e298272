// The fused inverted-residual blocks of the xnnpack-fused backend (src/engine/kernels/xnnpack/
// fused_block.h) against the reference kernels: a FusedBlock alone between guard bytes over a sweep
// of shapes (stride 1 and 2, SAME and symmetric padding, residual or not, odd sizes, maps of 1 to 3
// strips and more, batch 1 and 2, 1 and 2 workers), then whole graphs through the executor, where
// the fused path must give exactly what layer-by-layer XNNPACK gives (same micro-kernels), and the
// real MobileNetV2 on the session's xnnpack-fused backend.
#include <gtest/gtest.h>
#include <pthreadpool.h>
#include <xnnpack.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "executor.h"
#include "firesight/builder/tflite_graph.h"
#include "graph_helpers.h"
#include "kernels/xnnpack/fused_block.h"
#include "test_util.h"

namespace firesight::engine {
namespace {

using testing::GraphMaker;

struct Case {
    int batch, h, w, cin, e, cout, stride;
    std::array<int, 4> pad;  // depthwise top, left, bottom, right
    bool residual;
};

std::string describe(const Case& c) {
    return std::to_string(c.batch) + "x" + std::to_string(c.h) + "x" + std::to_string(c.w) + "x" + std::to_string(c.cin) + " e" +
           std::to_string(c.e) + " -> " + std::to_string(c.cout) + " s" + std::to_string(c.stride) + " pad " + std::to_string(c.pad[0]) +
           std::to_string(c.pad[1]) + std::to_string(c.pad[2]) + std::to_string(c.pad[3]) + (c.residual ? " residual" : "");
}

// input -> expand (relu6) -> depthwise 3x3 (relu6) -> project [-> add input]
Graph block_graph(const Case& c, unsigned seed) {
    GraphMaker m(seed);
    const auto x = m.input({c.batch, c.h, c.w, c.cin});
    const auto e = m.conv(x, c.e, 1, 1, {0, 0, 0, 0}, Activation::Relu6);
    const auto d = m.depthwise(e, 3, c.stride, c.pad, Activation::Relu6);
    auto y = m.conv(d, c.cout, 1, 1, {0, 0, 0, 0});
    if (c.residual) y = m.add(y, x);
    m.g.outputs = {y};
    return m.g;
}

std::vector<Case> sweep() {
    std::vector<Case> cases;
    const std::array<int, 4> same1{1, 1, 1, 1}, same2_even{0, 0, 1, 1};
    for (int hw : {1, 2, 3, 4, 5, 7, 13, 14, 28}) {
        cases.push_back({1, hw, hw, 8, 24, 8, 1, same1, true});
        cases.push_back({1, hw, hw + 2, 8, 16, 12, 1, same1, false});
        cases.push_back({1, hw, hw, 8, 24, 16, 2, hw % 2 ? same1 : same2_even, false});
    }
    cases.push_back({2, 9, 7, 16, 40, 16, 1, same1, true});      // batch 2: strips cross images
    cases.push_back({2, 14, 14, 8, 32, 8, 2, same2_even, false});
    cases.push_back({1, 56, 56, 24, 144, 24, 1, same1, true});    // MobileNetV2's shapes
    cases.push_back({1, 112, 112, 16, 96, 24, 2, same2_even, false});
    cases.push_back({1, 11, 11, 4, 12, 4, 1, {0, 0, 0, 0}, false});  // valid padding
    cases.push_back({1, 12, 10, 4, 12, 4, 2, {1, 0, 2, 1}, false});  // uneven padding
    return cases;
}

constexpr std::size_t kGuard = 64;
constexpr float kCanary = -1234.5f;

// A float buffer between kGuard canaries on each side, itself canary-filled.
struct Guarded {
    std::vector<float> v;
    explicit Guarded(std::size_t n) : v(n + 2 * kGuard, kCanary) {}
    float* data() { return v.data() + kGuard; }
    bool intact() const {
        for (std::size_t i = 0; i < kGuard; ++i)
            if (v[i] != kCanary || v[v.size() - 1 - i] != kCanary) return false;
        return true;
    }
};

float worst_relative(const std::vector<float>& expect, const float* got) {
    float worst = 0.f;
    for (std::size_t i = 0; i < expect.size(); ++i) {
        const float d = std::abs(expect[i] - got[i]) / (1.f + std::abs(expect[i]));
        worst = std::isnan(d) ? INFINITY : std::max(worst, d);
    }
    return worst;
}

TEST(FusedBlock, MatchesReferenceBetweenGuardBytes) {
    ASSERT_EQ(xnn_initialize(nullptr), xnn_status_success);
    pthreadpool_t pool = pthreadpool_create(2);
    unsigned seed = 1;
    for (const auto& c : sweep()) {
        const Graph g = block_graph(c, seed++);
        const auto shapes = infer_shapes(g, c.batch);
        const auto blocks = find_fused_blocks(g, shapes, 0);
        ASSERT_EQ(blocks.size(), 1u) << describe(c);
        EXPECT_EQ(blocks[0].add >= 0, c.residual) << describe(c);
        GraphMaker rng(seed);
        const auto input = rng.random(std::size_t(c.batch) * c.h * c.w * c.cin, -2.f, 2.f);
        const auto expect = run_reference_all(g, {input.data()}, c.batch)[std::size_t(g.outputs[0])];
        for (int workers : {1, 2}) {
            FusedBlock block(g, shapes, blocks[0], workers);
            Guarded in(input.size()), out(expect.size());
            std::memcpy(in.data(), input.data(), input.size() * sizeof(float));
            for (int rep = 0; rep < 2; ++rep) {
                block.run(in.data(), out.data(), workers > 1 ? pool : nullptr);
                const std::string what = describe(c) + ", " + std::to_string(workers) + " workers, run " + std::to_string(rep);
                EXPECT_TRUE(in.intact() && out.intact()) << what << ": wrote outside its buffers";
                EXPECT_EQ(std::memcmp(in.data(), input.data(), input.size() * sizeof(float)), 0) << what << ": changed its input";
                EXPECT_LT(worst_relative(expect, out.data()), 1e-5f) << what;
            }
        }
    }
    pthreadpool_destroy(pool);
}

// stem conv -> block (residual) -> block (stride 2) -> pool -> fully connected -> softmax: two
// subgraphs around two fused blocks.
Graph small_network(int hw) {
    GraphMaker m(7);
    const auto x = m.input({1, hw, hw, 3});
    const auto s = m.conv(x, 8, 3, 1, {1, 1, 1, 1}, Activation::Relu6);
    const auto e1 = m.conv(s, 24, 1, 1, {0, 0, 0, 0}, Activation::Relu6);
    const auto d1 = m.depthwise(e1, 3, 1, {1, 1, 1, 1}, Activation::Relu6);
    const auto b1 = m.add(m.conv(d1, 8, 1, 1, {0, 0, 0, 0}), s);
    const auto e2 = m.conv(b1, 32, 1, 1, {0, 0, 0, 0}, Activation::Relu6);
    const auto d2 = m.depthwise(e2, 3, 2, {0, 0, 1, 1}, Activation::Relu6);
    const auto b2 = m.conv(d2, 16, 1, 1, {0, 0, 0, 0});
    m.g.outputs = {m.unary(OpKind::Softmax, m.fc(m.pool(b2), 5))};
    return m.g;
}

std::vector<float> run_executor(const Graph& g, int threads, std::size_t fuse, const std::vector<float>& input) {
    auto ex = make_xnnpack_executor(g, threads, false, fuse);
    ex->plan(1);
    std::vector<const float*> out;
    ex->run(input.data(), out);
    const auto n = std::size_t(infer_shapes(g, 1)[std::size_t(g.outputs[0])][1]);
    return {out[0], out[0] + n};
}

TEST(FusedBlock, ExecutorGivesWhatLayerByLayerGives) {
    for (int hw : {7, 14, 16, 28}) {
        const Graph g = small_network(hw);
        ASSERT_EQ(find_fused_blocks(g, infer_shapes(g, 1), 0).size(), 2u);
        GraphMaker rng(3);
        const auto input = rng.random(std::size_t(hw) * hw * 3);
        const auto expect = run_reference_all(g, {input.data()}, 1)[std::size_t(g.outputs[0])];
        for (int threads : {1, 2}) {
            const auto layers = run_executor(g, threads, kNoFusion, input), fused = run_executor(g, threads, 0, input);
            EXPECT_EQ(fused, layers) << hw << "x" << hw << ", " << threads << " threads";
            EXPECT_LT(worst_relative(expect, fused.data()), 1e-5f) << hw << "x" << hw << ", " << threads << " threads";
        }
    }
}

TEST(FusedBlock, LeavesBlocksWithOutsideReadersOrSmallTensors) {
    Graph g = small_network(14);
    const auto shapes = infer_shapes(g, 1);
    // 14x14x24 floats expanded in the first block, 14x14x32 in the second.
    EXPECT_EQ(find_fused_blocks(g, shapes, 14 * 14 * 32 * 4).size(), 1u);
    EXPECT_EQ(find_fused_blocks(g, shapes, 14 * 14 * 32 * 4 + 1).size(), 0u);
    g.outputs.push_back(g.ops[1].outputs[0]);  // the first expanded tensor becomes a graph output
    const auto blocks = find_fused_blocks(g, shapes, 0);
    ASSERT_EQ(blocks.size(), 1u);
    EXPECT_EQ(blocks[0].expand, 5);
    GraphMaker rng(4);
    const auto input = rng.random(14 * 14 * 3);
    for (int threads : {1, 2}) {
        auto a = make_xnnpack_executor(g, threads, false, 0), b = make_xnnpack_executor(g, threads, false, kNoFusion);
        a->plan(1);
        b->plan(1);
        std::vector<const float*> oa, ob;
        a->run(input.data(), oa);
        b->run(input.data(), ob);
        EXPECT_EQ(std::memcmp(oa[0], ob[0], 5 * sizeof(float)), 0);
        EXPECT_EQ(std::memcmp(oa[1], ob[1], 14 * 14 * 24 * sizeof(float)), 0);
    }
}

TEST(FusedBlock, MobileNetV2OnTheFusedBackend) {
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_quant());
    Graph g = graph_from_tflite_file(test::mobilenet_quant());
    optimize(g);
    const auto blocks = find_fused_blocks(g, infer_shapes(g, 1), 1u << 20);
    EXPECT_EQ(blocks.size(), 3u) << "the 112x112x96 and the two 56x56x144 expanded tensors";
    EXPECT_EQ(parse_backend("xnnpack-fused"), Backend::XnnpackFused);
    EXPECT_STREQ(backend_name(Backend::XnnpackFused), "xnnpack-fused");
    const auto e = Engine::from_graph(g);
    GraphMaker rng(5);
    const auto input = rng.random(224 * 224 * 3);
    const auto expect = run_reference_all(g, {input.data()}, 1)[std::size_t(g.outputs[0])];
    for (int threads : {1, 2}) {
        Session layers(e, {Backend::Xnnpack, threads}), fused(e, {Backend::XnnpackFused, threads});
        const float* a = layers.run(std::span<const float>(input), 1)[0];
        const float* b = fused.run(std::span<const float>(input), 1)[0];
        ASSERT_EQ(std::size_t(fused.output_size(0)), expect.size());
        EXPECT_EQ(std::memcmp(a, b, expect.size() * sizeof(float)), 0) << threads << " threads";
        EXPECT_LT(worst_relative(expect, b), 1e-4f) << threads << " threads";
    }
}

}  // namespace
}  // namespace firesight::engine
