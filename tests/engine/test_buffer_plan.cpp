// The buffer planner of the op-by-op executors: activations whose lifetimes overlap never share
// bytes, buffers are reused once a tensor's last reader ran, and sessions on the planned buffers
// compute what run_reference_all (one buffer per tensor) computes, f32 and int8.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <map>

#include "buffer_plan.h"
#include "firesight/engine/session.h"
#include "firesight/engine/ir.h"
#include "firesight/builder/quantize.h"
#include "firesight/engine/reference.h"
#include "graph_helpers.h"

namespace firesight::engine {
namespace {

using testing::GraphMaker;

// MobileNetV2-like: a residual add keeps an early tensor alive across three layers, the depthwise
// output is also a graph output, and the logits are read both by softmax and by the caller.
Graph residual_net(GraphMaker& m) {
    const auto x = m.input({1, 17, 15, 3});
    auto t = m.conv(x, 16, 3, 2, {1, 1, 1, 1}, Activation::Relu6);
    auto e = m.conv(t, 48, 1, 1, {0, 0, 0, 0}, Activation::Relu6);
    auto d = m.depthwise(e, 3, 1, {1, 1, 1, 1}, Activation::Relu6);
    auto p = m.conv(d, 16, 1, 1, {0, 0, 0, 0});
    auto a = m.add(t, p);
    auto e2 = m.conv(a, 64, 1, 1, {0, 0, 0, 0}, Activation::Relu6);
    auto d2 = m.depthwise(e2, 3, 2, {0, 0, 1, 1}, Activation::Relu6);
    auto f = m.conv(d2, 96, 1, 1, {0, 0, 0, 0}, Activation::Relu6);
    auto logits = m.fc(m.pool(f), 5);
    m.g.outputs = {m.softmax(logits), logits, d};
    return m.g;
}

std::size_t bytes_of(const Graph& g, const std::vector<std::vector<std::int32_t>>& shapes, std::size_t t) {
    std::size_t n = dtype_size(g.tensors[t].dtype);
    for (auto d : shapes[t]) n *= static_cast<std::size_t>(d);
    return n;
}

// Every pair of activations alive at the same op (from the op that writes one to the last op
// that reads it; graph outputs to the end) must have disjoint bytes.
void expect_no_live_overlap(const Graph& g, int batch) {
    const auto p = detail::plan_buffers(g, batch);
    const std::size_t n = g.tensors.size();
    ASSERT_EQ(p.data.size(), n);
    const int end = static_cast<int>(g.ops.size());
    std::vector<int> first(n, -1), last(n, -1);
    for (int i = 0; i < end; ++i) {
        for (auto t : g.ops[static_cast<std::size_t>(i)].outputs) first[static_cast<std::size_t>(t)] = i;
        for (auto t : g.ops[static_cast<std::size_t>(i)].inputs)
            if (t >= 0) last[static_cast<std::size_t>(t)] = i;
    }
    for (auto t : g.outputs) last[static_cast<std::size_t>(t)] = end;
    std::size_t planned = 0, activations = 0;
    for (const auto& s : p.storage) planned += s.size() * sizeof(float);
    for (std::size_t a = 0; a < n; ++a) {
        if (g.tensors[a].constant) {
            EXPECT_EQ(p.data[a], g.tensors[a].bytes()) << g.tensors[a].name;
            continue;
        }
        if (first[a] < 0) continue;  // the graph input: the caller's pointer
        activations += bytes_of(g, p.shapes, a);
        ASSERT_NE(p.data[a], nullptr) << g.tensors[a].name;
        const auto* a0 = static_cast<const char*>(p.data[a]);
        const auto* a1 = a0 + bytes_of(g, p.shapes, a);
        for (std::size_t b = a + 1; b < n; ++b) {
            if (g.tensors[b].constant || first[b] < 0) continue;
            const bool both_alive = first[a] <= std::max(last[b], first[b]) && first[b] <= std::max(last[a], first[a]);
            if (!both_alive) continue;
            const auto* b0 = static_cast<const char*>(p.data[b]);
            const auto* b1 = b0 + bytes_of(g, p.shapes, b);
            EXPECT_TRUE(a1 <= b0 || b1 <= a0) << g.tensors[a].name << " and " << g.tensors[b].name << " are alive together but overlap";
        }
    }
    for (auto t : g.inputs) EXPECT_EQ(p.data[static_cast<std::size_t>(t)], nullptr);
    // A chain this long reuses buffers: well under the sum of all activations.
    EXPECT_LT(planned, activations * 2 / 3) << planned << " bytes planned for " << activations << " bytes of activations";
}

TEST(BufferPlan, TensorsAliveTogetherNeverShareBytesAndBuffersAreReused) {
    GraphMaker m(1000);
    const Graph g = residual_net(m);
    for (int batch : {1, 3}) expect_no_live_overlap(g, batch);
}

TEST(BufferPlan, Int8GraphWithEveryActivationExposedNeverSharesLiveBytes) {
    GraphMaker m(1001);
    Graph g = residual_net(m);
    const auto input = m.random(17 * 15 * 3, -1.f, 1.f);
    quantize_int8(g, testing::minmax_ranges(g, {input}, 1));
    expect_no_live_overlap(g, 2);
}

// Sessions run on planned (shared) buffers; run_reference_all keeps every tensor apart. Same
// kernels, same order: the outputs must be the same bits, on every batch size in turn.
TEST(BufferPlan, SessionsOnSharedBuffersComputeWhatSeparateBuffersCompute) {
    GraphMaker m(1002);
    Graph f32 = residual_net(m);
    std::map<std::string, TensorRange> ranges;
    const auto calib = m.random(17 * 15 * 3, -1.f, 1.f);
    const auto cv = run_reference_all(f32, {calib.data()}, 1);
    for (std::size_t i = 0; i < f32.tensors.size(); ++i) {
        if (f32.tensors[i].constant) continue;
        const auto [lo, hi] = std::minmax_element(cv[i].begin(), cv[i].end());
        ranges[f32.tensors[i].name] = {*lo, *hi};
    }
    Graph i8 = f32;
    quantize_int8(i8, ranges);
    for (const Graph* g : {&f32, &i8}) {
        auto engine = Engine::from_graph(*g);
        for (Backend backend : {Backend::Reference, Backend::NativeInt8}) {
            Session s(engine, {backend, 2});
            for (int batch : {2, 1, 3}) {
                const auto input = m.random(static_cast<std::size_t>(17 * 15 * 3 * batch), -1.2f, 1.2f);
                const auto expected = run_reference_all(engine->graph(), {input.data()}, batch);
                const auto out = s.run(input, batch);
                for (std::size_t k = 0; k < g->outputs.size(); ++k) {
                    const auto& e = expected[static_cast<std::size_t>(g->outputs[k])];
                    EXPECT_EQ(std::memcmp(e.data(), out[k], e.size() * sizeof(float)), 0)
                        << backend_name(backend) << ", " << (g == &f32 ? "f32" : "int8") << ", batch " << batch << ", output " << k;
                }
            }
        }
    }
}

}  // namespace
}  // namespace firesight::engine
