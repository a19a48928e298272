// The native-int8 backend (AVX512-VNNI kernels) against the int8 reference kernels: every int8
// activation of every test graph must be the same byte, on saturating ranges, edge zero points,
// extreme weights, batch 2, and the whole imported MobileNetV2.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>

#include "firesight/builder/passes.h"
#include "firesight/engine/session.h"
#include "firesight/engine/ir.h"
#include "firesight/builder/quantize.h"
#include "firesight/builder/tflite_graph.h"
#include "firesight/engine/format.h"
#include "firesight/engine/reference.h"
#include "graph_helpers.h"
#include "test_util.h"

namespace firesight::engine {
namespace {

using testing::GraphMaker;

#define REQUIRE_VNNI()                                                                                                   \
    do {                                                                                                                 \
        if (!native_int8_fast())                                                                                         \
            GTEST_SKIP() << "this CPU has no AVX512-VNNI: the native-int8 backend runs the reference kernels here, so " \
                            "there is nothing to compare";                                                               \
    } while (0)

std::size_t elements(const std::vector<std::int32_t>& s, int batch) {
    std::size_t n = static_cast<std::size_t>(batch);
    for (std::size_t k = 1; k < s.size(); ++k) n *= static_cast<std::size_t>(s[k]);
    return n;
}

// Min-max ranges of every f32 activation, optionally overridden per tensor name.
std::map<std::string, TensorRange> ranges_of(const Graph& g, const std::vector<float>& input, int batch,
                                             const std::map<std::string, TensorRange>& overrides = {}) {
    auto r = minmax_ranges(g, {input}, batch);
    for (const auto& [name, range] : overrides) r[name] = range;
    return r;
}

// Adds a Dequantize output for every int8 activation, so the comparison below sees each layer's
// bytes (the dequantization is the same f32 arithmetic on both sides, one-to-one on int8).
void expose_int8_activations(Graph& g) {
    const std::size_t n = g.tensors.size();
    for (std::size_t i = 0; i < n; ++i) {
        if (g.tensors[i].constant || g.tensors[i].dtype != DType::I8) continue;
        Tensor t;
        t.name = g.tensors[i].name + ".exposed";
        t.shape = g.tensors[i].shape;
        Op op;
        op.kind = OpKind::Dequantize;
        op.inputs = {static_cast<std::int32_t>(i)};
        op.outputs = {g.add_tensor(std::move(t))};
        g.ops.push_back(op);
        g.outputs.push_back(op.outputs[0]);
    }
}

// Runs the int8 graph on the reference and native-int8 backends; every output byte must match.
// Exposing the activations gives each of them a second reader, which turns off the backend's u8
// handoff from a depthwise to a 1x1 convolution, so graphs with such pairs are also run unexposed.
void expect_same_bytes(Graph g, const std::vector<float>& input, int batch, const std::string& what, bool expose = true) {
    if (expose) expose_int8_activations(g);
    auto engine = Engine::from_graph(std::move(g));
    Session ref(engine, {Backend::Reference, 1});
    Session fast(engine, {Backend::NativeInt8, 1});
    const auto a = ref.run(input, batch);
    const auto b = fast.run(input, batch);
    const auto& gr = engine->graph();
    for (std::size_t k = 0; k < gr.outputs.size(); ++k) {
        const auto& t = gr.tensors[static_cast<std::size_t>(gr.outputs[k])];
        const std::size_t n = elements(t.shape, batch);
        std::size_t differ = 0, first = n;
        for (std::size_t i = 0; i < n; ++i)
            if (std::memcmp(&a[k][i], &b[k][i], sizeof(float)) != 0) {
                if (first == n) first = i;
                ++differ;
            }
        EXPECT_EQ(differ, 0u) << what << ": tensor " << t.name << ": " << differ << " of " << n << " values differ, first at " << first
                              << " (reference " << (first < n ? a[k][first] : 0.f) << ", native " << (first < n ? b[k][first] : 0.f)
                              << ")";
    }
}

// Quantizes a float graph with ranges from `input` (plus overrides) and compares the backends.
void check(Graph g, int batch, unsigned seed, const std::string& what, const std::map<std::string, TensorRange>& overrides = {},
           float in_lo = -1.f, float in_hi = 1.f) {
    GraphMaker m(seed);
    const auto input = m.random(elements(g.tensors[static_cast<std::size_t>(g.inputs[0])].shape, batch), in_lo, in_hi);
    quantize_int8(g, ranges_of(g, input, batch, overrides));
    expect_same_bytes(g, input, batch, what + " (outputs only)", false);
    expect_same_bytes(std::move(g), input, batch, what);
}

// Each int8 op alone over a sweep of shapes (odd channel counts, tails of every tile width,
// strides, padding, dilation, groups, batch > 1, 1 and 2 threads) is in test_ops.cpp; these are
// the cases a single-op sweep does not reach: saturation, extreme weights, whole networks, the u8
// handoff between layers, thread counts.

TEST(NativeInt8, SaturationAndEdgeZeroPointsMatchReferenceBytes) {
    REQUIRE_VNNI();
    // Input range [0, 1] puts the zero point at -128 and [-1, 0] at 127; inputs beyond the range
    // saturate to -128 / 127, and output ranges far narrower than the values saturate the
    // requantization at both ends.
    for (const TensorRange in : {TensorRange{0.f, 1.f}, TensorRange{-1.f, 0.f}, TensorRange{-0.01f, 0.01f}}) {
        for (int k : {1, 3}) {
            GraphMaker m(400 + k);
            const auto x = m.input({1, 7, 9, 21});
            const auto c = m.conv(x, 18, k, 1, k == 1 ? std::array<int, 4>{0, 0, 0, 0} : std::array<int, 4>{1, 1, 1, 1});
            const auto d = m.depthwise(c, 3, 2, {1, 1, 1, 1});
            m.g.outputs = {d};
            const std::map<std::string, TensorRange> overrides = {{"input", in},
                                                                  {m.g.tensors[static_cast<std::size_t>(c)].name, {0.f, 0.05f}},
                                                                  {m.g.tensors[static_cast<std::size_t>(d)].name, {-0.02f, 0.f}}};
            check(m.g, 2, 410 + k, "saturating k" + std::to_string(k), overrides, -2.f, 2.f);
        }
    }
}

TEST(NativeInt8, ExtremeWeightsMatchReferenceBytes) {
    REQUIRE_VNNI();
    // Weights at -128 and 127 (the quantizer itself stops at -127), with inputs at both ends:
    // the u8 shift and the folded bias must stay exact at the largest products.
    GraphMaker m(500);
    const auto x = m.input({1, 6, 5, 67});
    const auto c = m.conv(x, 35, 1, 1, {0, 0, 0, 0});
    const auto d = m.depthwise(c, 3, 1, {1, 1, 1, 1});
    m.g.outputs = {m.fc(m.pool(d), 9)};
    const auto input = m.random(elements(m.g.tensors[static_cast<std::size_t>(x)].shape, 2), -3.f, 3.f);
    Graph g = m.g;
    quantize_int8(g, ranges_of(m.g, input, 2, {{"input", {-1.f, 1.f}}}));
    int changed = 0;
    for (auto& t : g.tensors) {
        if (!t.constant || t.dtype != DType::I8) continue;
        ASSERT_EQ(t.external, nullptr);
        for (std::size_t i = 0; i < t.owned_i8.size(); ++i) {
            if (i % 3 == 0) t.owned_i8[i] = -128;
            if (i % 3 == 1) t.owned_i8[i] = 127;
        }
        ++changed;
    }
    ASSERT_EQ(changed, 3);
    expect_same_bytes(std::move(g), input, 2, "extreme weights");
}

TEST(NativeInt8, MobileNetShapedGraphMatchesReferenceBytes) {
    REQUIRE_VNNI();
    GraphMaker m(600);
    const auto x = m.input({1, 33, 31, 3});
    auto t = m.conv(x, 32, 3, 2, {1, 1, 1, 1}, Activation::Relu6);
    auto d = m.depthwise(t, 3, 1, {1, 1, 1, 1}, Activation::Relu6);
    auto p = m.conv(d, 16, 1, 1, {0, 0, 0, 0});
    auto e = m.conv(p, 96, 1, 1, {0, 0, 0, 0}, Activation::Relu6);
    d = m.depthwise(e, 3, 2, {0, 0, 1, 1}, Activation::Relu6);
    auto p1 = m.conv(d, 24, 1, 1, {0, 0, 0, 0});
    e = m.conv(p1, 144, 1, 1, {0, 0, 0, 0}, Activation::Relu6);
    d = m.depthwise(e, 3, 1, {1, 1, 1, 1}, Activation::Relu6);
    auto p2 = m.conv(d, 24, 1, 1, {0, 0, 0, 0});
    auto a = m.add(p1, p2);
    auto f = m.conv(a, 160, 1, 1, {0, 0, 0, 0}, Activation::Relu6);
    auto logits = m.fc(m.pool(f), 10);
    auto probs = m.softmax(logits);
    m.g.outputs = {probs, logits};
    check(m.g, 2, 601, "mobilenet-shaped net");
}

TEST(NativeInt8, ImportedMobileNetV2MatchesReferenceBytes) {
    REQUIRE_VNNI();
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_quant());
    Graph g = graph_from_tflite_file(test::mobilenet_quant());
    optimize(g);
    check(std::move(g), 1, 700, "MobileNetV2");
}

TEST(NativeInt8, FiresightRunSelectsTheBackendForAnInt8Engine) {
    // Runs everywhere: without VNNI the backend falls back to the reference kernels, which must
    // give the same answer too.
    test::TempDir dir;
    GraphMaker m(800);
    const auto x = m.input({1, 9, 9, 3});
    const auto c = m.conv(x, 20, 3, 2, {0, 0, 1, 1}, Activation::Relu6);
    const auto l = m.fc(m.pool(m.conv(c, 36, 1, 1, {0, 0, 0, 0}, Activation::Relu6)), 3);
    m.g.outputs = {m.softmax(l), l};
    m.g.metadata.class_names = {"fire", "neutral", "smoke"};
    m.g.metadata.size = m.g.metadata.resize_shorter = 9;
    const auto input = m.random(9 * 9 * 3, -1.f, 1.f);
    Graph g = m.g;
    quantize_int8(g, ranges_of(m.g, input, 1));
    save_engine(g, dir / "m.fse");
    {
        std::ofstream out(dir / "x.raw", std::ios::binary);
        out.write(reinterpret_cast<const char*>(input.data()), static_cast<std::streamsize>(input.size() * sizeof(float)));
    }
    Session s(Engine::from_graph(g), {Backend::Reference, 1});
    const auto p = s.probabilities(input)[0];
    const auto top = static_cast<std::size_t>(std::max_element(p.begin(), p.end()) - p.begin());
    const auto cli = test::program_command(test::binary_dir() / "apps" / "firesight-run" / "firesight-run");
    const auto r = test::run_command(cli + " --raw --top 1 --backend native-int8 --model " + test::shell_quote((dir / "m.fse").string()) +
                                     " " + test::shell_quote((dir / "x.raw").string()));
    ASSERT_EQ(r.exit_code, 0) << r.out;
    char pct[32];
    std::snprintf(pct, sizeof pct, "%.1f%%", 100.0 * p[top]);
    EXPECT_NE(r.out.find("x.raw  " + g.metadata.class_names[top] + " " + pct), std::string::npos) << r.out;
}

TEST(NativeInt8, BackendNameRoundTrips) {
    EXPECT_EQ(parse_backend("native-int8"), Backend::NativeInt8);
    EXPECT_STREQ(backend_name(Backend::NativeInt8), "native-int8");
    EXPECT_TRUE(backend_available(Backend::NativeInt8));
}

// ---- threads: splitting a layer across threads must not change a byte ----------------------

// Runs the quantized graph on the reference and on native-int8 with 1, 2 and 3 threads (twice
// each, so the second run reuses the pool); every output byte of every run must be the reference's.
void expect_same_bytes_on_all_thread_counts(const Graph& g, const std::vector<float>& input, int batch, const std::string& what) {
    auto engine = Engine::from_graph(g);
    Session ref(engine, {Backend::Reference, 1});
    const auto& gr = engine->graph();
    std::vector<std::vector<float>> expected;
    const auto r = ref.run(input, batch);
    for (std::size_t k = 0; k < gr.outputs.size(); ++k)
        expected.emplace_back(r[k], r[k] + elements(gr.tensors[static_cast<std::size_t>(gr.outputs[k])].shape, batch));
    for (int threads : {1, 2, 3}) {
        Session fast(engine, {Backend::NativeInt8, threads});
        for (int run = 0; run < 2; ++run) {
            const auto out = fast.run(input, batch);
            for (std::size_t k = 0; k < gr.outputs.size(); ++k) {
                const auto& e = expected[k];
                std::size_t differ = 0;
                for (std::size_t i = 0; i < e.size(); ++i) differ += std::memcmp(&e[i], &out[k][i], sizeof(float)) != 0;
                EXPECT_EQ(differ, 0u) << what << ", " << threads << " threads, run " << run << ": tensor "
                                      << gr.tensors[static_cast<std::size_t>(gr.outputs[k])].name << ": " << differ << " of " << e.size()
                                      << " values differ";
            }
        }
    }
}

void check_threads(Graph g, int batch, unsigned seed, const std::string& what) {
    GraphMaker m(seed);
    const auto input = m.random(elements(g.tensors[static_cast<std::size_t>(g.inputs[0])].shape, batch), -1.f, 1.f);
    quantize_int8(g, ranges_of(g, input, batch));
    // Unexposed, so the depthwise -> 1x1 u8 handoff runs split too; then with every activation
    // exposed, so a wrong row or channel range shows in the layer that has it.
    expect_same_bytes_on_all_thread_counts(g, input, batch, what + " (outputs only)");
    expose_int8_activations(g);
    expect_same_bytes_on_all_thread_counts(g, input, batch, what);
}

// The layers are large enough (over 2^19 multiply-adds) to be split: by rows where there are many
// (row counts that leave a partial chunk), by output channels where there are few (channel counts
// that leave a partial block of 16), depthwise by rows at stride 1 and 2.
TEST(NativeInt8Threads, SplitLayersGiveTheSameBytesOnAnyThreadCount) {
    REQUIRE_VNNI();
    {
        GraphMaker m(900);
        const auto x = m.input({1, 45, 43, 5});
        auto t = m.conv(x, 40, 3, 1, {1, 1, 1, 1}, Activation::Relu6);                 // im2col, 1935 rows, K=45
        auto d = m.depthwise(t, 3, 1, {1, 1, 1, 1}, Activation::Relu6);                // depthwise s1 -> 1x1 (u8 handoff)
        auto p = m.conv(d, 36, 1, 1, {0, 0, 0, 0});                                    // 1x1 by rows
        auto e = m.conv(p, 100, 1, 1, {0, 0, 0, 0}, Activation::Relu6);                // 1x1 by rows, 7 blocks (last partial)
        d = m.depthwise(e, 3, 2, {0, 0, 1, 1}, Activation::Relu6);                     // depthwise s2 (23x22)
        auto q = m.conv(d, 24, 3, 2, {1, 1, 1, 1});                                    // im2col, 132 rows: by channels (2 blocks) or rows
        auto f = m.conv(q, 520, 1, 1, {0, 0, 0, 0}, Activation::Relu6);               // 1x1, few rows, 33 blocks: by channels
        auto logits = m.fc(m.pool(f), 1001);                                           // fully connected by channels, 63 blocks
        m.g.outputs = {m.softmax(logits), logits};
        check_threads(m.g, 1, 901, "mixed net, batch 1");
        check_threads(m.g, 2, 902, "mixed net, batch 2");
    }
    {
        // 7x7 layers with many channels, as at the end of MobileNetV2: split by channels only.
        GraphMaker m(910);
        const auto x = m.input({1, 7, 7, 160});
        auto e = m.conv(x, 960, 1, 1, {0, 0, 0, 0}, Activation::Relu6);
        auto d = m.depthwise(e, 3, 1, {1, 1, 1, 1}, Activation::Relu6);
        m.g.outputs = {m.conv(d, 317, 1, 1, {0, 0, 0, 0})};
        check_threads(m.g, 1, 911, "7x7 net");
    }
}

TEST(NativeInt8Threads, ImportedMobileNetV2GivesTheSameBytesOnAnyThreadCount) {
    REQUIRE_VNNI();
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_quant());
    Graph g = graph_from_tflite_file(test::mobilenet_quant());
    optimize(g);
    check_threads(std::move(g), 1, 920, "MobileNetV2");
}

}  // namespace
}  // namespace firesight::engine
