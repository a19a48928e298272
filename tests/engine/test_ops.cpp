// Every op of the op table on every backend that takes it, over a sweep of shapes (odd channel
// counts, 1x1 spatial, strides, padding, dilation, groups, batch > 1), in float and, where the op
// has an int8 form, quantized (quantize_int8 puts Quantize/Dequantize around it), in the spirit of
// ggml's test-backend-ops and XNNPACK's generated shape tests.
//
// The oracle runs each op with its reference kernel (run_reference_op) on buffers that each sit
// between guard bytes, checked after every op: a kernel that writes outside its output fails the
// case naming the op and the tensor. Each backend then runs the graph through a Session, on an
// input that itself sits between guard bytes (checked, with the input's own bytes, after every
// run), twice (the second run reuses the planned buffers), and must give:
//  - reference and native-int8: the oracle's bytes (native-int8 runs the reference kernels for
//    what its VNNI kernels do not cover, and its VNNI kernels promise the reference's bytes);
//  - xnnpack, float graphs: within 1e-5 of the oracle, relative to 1 + |value|;
//  - xnnpack, graphs with int8 tensors: the oracle's bytes (the int8 reference kernels compute what XNNPACK's
//    qs8/qc8 operators compute). Every int8 activation is exposed as an output (dequantized, one
//    to one), so every int8 byte is compared, not only the last layer's.
// A backend that does not take a case must say so (backend_supports) and its Session must refuse
// the graph naming the op.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "firesight/common/error.h"
#include "firesight/engine/session.h"
#include "graph_helpers.h"

namespace firesight::engine {

// Names the backend in GoogleTest's messages (found by argument-dependent lookup, so outside the
// unnamed namespace).
void PrintTo(Backend b, std::ostream* os) { *os << backend_name(b); }

namespace {

using testing::GraphMaker;
using Shape = std::vector<std::int32_t>;

struct OpCase {
    std::string name;
    Graph graph;  // float; input 0 declared with batch 1
    int batch = 1;
    bool int8 = false;  // quantized with min-max ranges from the test input before running
    float lo = -2.f, hi = 2.f;  // the random input's range
    std::vector<float> input;   // when set, the input instead of a random one
};

std::string dims(const Shape& s) {
    std::string r;
    for (std::size_t i = 1; i < s.size(); ++i) r += (i > 1 ? "x" : "") + std::to_string(s[i]);
    return r;
}

// Adds the case in float, and quantized when `int8`.
void add_case(std::vector<OpCase>& cases, const std::string& name, const GraphMaker& m, int batch, bool int8,
              float lo = -2.f, float hi = 2.f) {
    cases.push_back({name + " batch " + std::to_string(batch), m.g, batch, false, lo, hi, {}});
    if (int8) cases.push_back({name + " batch " + std::to_string(batch) + " int8", m.g, batch, true, lo, hi, {}});
}

const char* act_name(Activation a) { return a == Activation::None ? "" : a == Activation::Relu ? " relu" : " relu6"; }

std::vector<OpCase> conv_cases() {
    struct C {
        int batch, h, w, c, out, k, stride, dilation, groups;
        std::array<int, 4> pad;
        Activation act;
        bool bias;
    };
    const C sweep[] = {
        {1, 8, 8, 16, 24, 1, 1, 1, 1, {0, 0, 0, 0}, Activation::None, true},    // pointwise, multiples of 8
        {2, 5, 7, 13, 5, 1, 1, 1, 1, {0, 0, 0, 0}, Activation::Relu6, true},    // K and O not multiples of 4 / 16
        {1, 7, 7, 24, 144, 1, 1, 1, 1, {0, 0, 0, 0}, Activation::Relu6, true},  // expand: 9 blocks of 16
        {2, 3, 5, 96, 70, 1, 1, 1, 1, {0, 0, 0, 0}, Activation::None, true},    // 4+1 blocks, tail of 6
        {1, 9, 3, 40, 33, 1, 1, 1, 1, {0, 0, 0, 0}, Activation::Relu, true},
        {3, 1, 1, 320, 17, 1, 1, 1, 1, {0, 0, 0, 0}, Activation::Relu6, true},  // 1x1 spatial
        {2, 9, 9, 3, 32, 3, 2, 1, 1, {1, 1, 1, 1}, Activation::Relu6, true},    // first layer (K = 27)
        {2, 7, 9, 3, 5, 3, 2, 1, 1, {1, 1, 1, 1}, Activation::Relu6, false},    // odd sizes, no bias
        {3, 6, 5, 13, 11, 3, 1, 1, 1, {0, 1, 1, 0}, Activation::Relu, true},    // asymmetric padding
        {1, 11, 11, 8, 7, 3, 2, 1, 1, {0, 0, 1, 1}, Activation::Relu6, true},   // TF SAME stride 2
        {1, 9, 8, 6, 10, 3, 1, 2, 1, {2, 2, 2, 2}, Activation::None, true},     // dilated
        {2, 6, 6, 8, 12, 1, 2, 1, 1, {0, 0, 0, 0}, Activation::None, true},     // strided 1x1
        {1, 6, 6, 8, 12, 3, 1, 1, 2, {1, 1, 1, 1}, Activation::Relu6, true},    // grouped
        {1, 1, 1, 5, 3, 3, 1, 1, 1, {1, 1, 1, 1}, Activation::None, true},      // 1x1 input, all padding
    };
    std::vector<OpCase> cases;
    unsigned seed = 100;
    for (const auto& c : sweep) {
        GraphMaker m(seed++);
        const auto x = m.input({1, c.h, c.w, c.c});
        m.g.outputs = {m.conv(x, c.out, c.k, c.stride, c.pad, c.act, c.groups, c.bias, c.dilation)};
        add_case(cases,
                 "conv " + dims(m.shape(x)) + " -> " + std::to_string(c.out) + " k" + std::to_string(c.k) + " s" + std::to_string(c.stride) +
                     " d" + std::to_string(c.dilation) + " g" + std::to_string(c.groups) + act_name(c.act),
                 m, c.batch, true);
    }
    return cases;
}

std::vector<OpCase> depthwise_cases() {
    struct C {
        int batch, h, w, c, k, stride, multiplier;
        std::array<int, 4> pad;
        Activation act;
    };
    const C sweep[] = {
        {1, 9, 9, 32, 3, 1, 1, {1, 1, 1, 1}, Activation::Relu6},
        {2, 8, 7, 13, 3, 2, 1, {0, 0, 1, 1}, Activation::Relu6},
        {1, 6, 6, 5, 3, 2, 1, {1, 1, 1, 1}, Activation::None},
        {2, 5, 8, 40, 3, 1, 1, {1, 1, 1, 1}, Activation::Relu},
        {1, 7, 5, 144, 5, 1, 1, {2, 2, 2, 2}, Activation::Relu6},
        {2, 11, 13, 24, 3, 2, 1, {0, 0, 1, 1}, Activation::Relu6},  // stride 2: 4-pixel groups and a tail
        {1, 4, 17, 48, 3, 1, 1, {1, 1, 1, 1}, Activation::None},    // stride 1: 4 groups and a tail
        {3, 1, 1, 7, 3, 1, 1, {1, 1, 1, 1}, Activation::Relu6},     // 1x1 spatial
        {1, 5, 5, 6, 3, 1, 2, {1, 1, 1, 1}, Activation::Relu6},     // multiplier 2
    };
    std::vector<OpCase> cases;
    unsigned seed = 200;
    for (const auto& c : sweep) {
        GraphMaker m(seed++);
        const auto x = m.input({1, c.h, c.w, c.c});
        m.g.outputs = {m.depthwise(x, c.k, c.stride, c.pad, c.act, c.multiplier)};
        add_case(cases,
                 "depthwise " + dims(m.shape(x)) + " k" + std::to_string(c.k) + " s" + std::to_string(c.stride) + " m" +
                     std::to_string(c.multiplier) + act_name(c.act),
                 m, c.batch, true);
    }
    return cases;
}

std::vector<OpCase> fully_connected_cases() {
    struct C {
        int batch;
        Shape in;
        int out;
        Activation act;
    };
    const C sweep[] = {{1, {1, 37}, 3, Activation::None},
                       {2, {1, 1280}, 19, Activation::Relu},
                       {3, {1, 19}, 70, Activation::Relu6},
                       {2, {1, 1, 1, 24}, 10, Activation::None},  // a pooled NHWC map, flattened
                       {1, {1, 2, 3, 5}, 7, Activation::Relu6}};  // a spatial map, flattened
    std::vector<OpCase> cases;
    unsigned seed = 300;
    for (const auto& c : sweep) {
        GraphMaker m(seed++);
        const auto x = m.input(c.in);
        m.g.outputs = {m.fc(x, c.out, c.act)};
        add_case(cases, "fully connected " + dims(c.in) + " -> " + std::to_string(c.out) + act_name(c.act), m, c.batch, true);
    }
    return cases;
}

std::vector<OpCase> add_cases() {
    // x + relu(x): two tensors with different ranges, so the int8 form has two different scales.
    struct C {
        int batch;
        Shape in;
        Activation act;
    };
    const C sweep[] = {{1, {1, 5, 7, 13}, Activation::None},
                       {2, {1, 4, 4, 32}, Activation::Relu6},
                       {3, {1, 1, 1, 3}, Activation::Relu},
                       {2, {1, 19}, Activation::None}};
    std::vector<OpCase> cases;
    unsigned seed = 400;
    for (const auto& c : sweep) {
        GraphMaker m(seed++);
        const auto x = m.input(c.in);
        m.g.outputs = {m.add(x, m.unary(OpKind::Relu, x), c.act)};
        add_case(cases, "add " + dims(c.in) + act_name(c.act), m, c.batch, true);
    }
    return cases;
}

std::vector<OpCase> pool_cases() {
    struct C {
        int batch;
        Shape in;
        bool keep_dims;
        Activation act;
    };
    const C sweep[] = {{1, {1, 7, 7, 32}, false, Activation::None},
                       {2, {1, 5, 3, 13}, true, Activation::None},
                       {2, {1, 9, 11, 40}, false, Activation::Relu6},
                       {3, {1, 1, 1, 5}, true, Activation::Relu}};
    std::vector<OpCase> cases;
    unsigned seed = 500;
    for (const auto& c : sweep) {
        GraphMaker m(seed++);
        const auto x = m.input(c.in);
        const auto y = m.pool(x, c.keep_dims);
        m.g.ops.back().activation = c.act;
        m.g.outputs = {y};
        add_case(cases, std::string("global average pool ") + dims(c.in) + (c.keep_dims ? " keep dims" : "") + act_name(c.act), m,
                 c.batch, true);
    }
    return cases;
}

// A one-input elementwise op over shapes of rank 2 to 4, on a range that reaches past its kinks
// (Relu6 and HardSwish change form at -3, 0, 3 and 6).
std::vector<OpCase> unary_cases(OpKind kind, const std::string& name) {
    const std::pair<Shape, int> sweep[] = {{{1, 17}, 1}, {{1, 3, 11}, 2}, {{1, 4, 4, 13}, 2}, {{1, 1, 1, 3}, 3}};
    std::vector<OpCase> cases;
    unsigned seed = 600;
    for (const auto& [shape, batch] : sweep) {
        GraphMaker m(seed++);
        m.g.outputs = {m.unary(kind, m.input(shape))};
        add_case(cases, name + " " + dims(shape), m, batch, false, -8.f, 8.f);
    }
    return cases;
}

std::vector<OpCase> softmax_cases() {
    auto cases = unary_cases(OpKind::Softmax, "softmax");
    GraphMaker m(650);
    m.g.outputs = {m.softmax(m.input({1, 10}))};
    m.g.ops.back().beta = 0.5f;  // XNNPACK takes beta 1 only
    add_case(cases, "softmax beta 0.5 10", m, 2, false, -8.f, 8.f);
    return cases;
}

std::vector<OpCase> reshape_cases() {
    std::vector<OpCase> cases;
    const std::pair<Shape, Shape> sweep[] = {{{1, 4, 4, 2}, {1, 32}}, {{1, 1, 1, 9}, {1, 9}}, {{1, 6}, {1, 2, 3}}, {{1, 12}, {1, 1, 1, 12}}};
    unsigned seed = 700;
    for (const auto& [from, to] : sweep) {
        GraphMaker m(seed++);
        m.g.outputs = {m.reshape(m.input(from), to)};
        add_case(cases, "reshape " + dims(from) + " -> " + dims(to), m, 3, false);
    }
    // An int8 reshape: the quantizer keeps a reshape of int8 data in int8.
    GraphMaker m(710);
    m.g.outputs = {m.reshape(m.pool(m.input({1, 3, 3, 11}), true), {1, 11})};
    add_case(cases, "pool 3x3x11 then reshape -> 11", m, 2, true);
    return cases;
}

// f32 -> Quantize -> Dequantize -> f32 with a given scale and zero point, on values on and next to
// the rounding ties, inside and outside the representable range.
std::vector<OpCase> quantize_cases() {
    std::vector<OpCase> cases;
    for (const auto& [scale, zero] : std::vector<std::pair<float, int>>{{0.0235f, -3}, {0.1f, 17}, {1.f / 255.f, -128}, {0.05f, 127}}) {
        for (int batch : {1, 3}) {
            GraphMaker m(3);
            const auto x = m.input({1, 257});
            Tensor q;
            q.name = "q";
            q.shape = {1, 257};
            q.dtype = DType::I8;
            q.quant.scale = {scale};
            q.quant.zero_point = {zero};
            const auto qi = m.g.add_tensor(q);
            const auto y = m.act({1, 257}, "y");
            Op quant;
            quant.kind = OpKind::Quantize;
            quant.inputs = {x};
            quant.outputs = {qi};
            Op dequant;
            dequant.kind = OpKind::Dequantize;
            dequant.inputs = {qi};
            dequant.outputs = {y};
            m.g.ops = {quant, dequant};
            m.g.outputs = {y};
            OpCase c{"quantize/dequantize scale " + std::to_string(scale) + " zero " + std::to_string(zero) + " batch " + std::to_string(batch),
                     m.g, batch, false, 0.f, 0.f, {}};
            for (int b = 0; b < batch; ++b)
                for (int k = -130; k < 127; ++k) c.input.push_back((static_cast<float>(k) + 0.5f + 0.25f * static_cast<float>(b)) * scale);
            c.input[0] = -1e6f;
            c.input[1] = 1e6f;
            cases.push_back(std::move(c));
        }
    }
    return cases;
}

std::vector<OpCase> batch_norm_cases() {
    std::vector<OpCase> cases;
    const std::pair<Shape, int> sweep[] = {{{1, 4, 4, 13}, 2}, {{1, 7}, 3}, {{1, 1, 1, 5}, 1}};
    unsigned seed = 800;
    for (const auto& [shape, batch] : sweep) {
        GraphMaker m(seed++);
        m.g.outputs = {m.batch_norm(m.input(shape))};
        add_case(cases, "batch norm " + dims(shape), m, batch, false);
    }
    return cases;
}

// The cases of each kind. No default: a new kind without cases does not compile (-Wswitch), and
// EveryOpKindHasCases fails for it.
std::vector<OpCase> cases_for(OpKind kind) {
    switch (kind) {
        case OpKind::Conv2D: return conv_cases();
        case OpKind::DepthwiseConv2D: return depthwise_cases();
        case OpKind::Add: return add_cases();
        case OpKind::GlobalAveragePool: return pool_cases();
        case OpKind::FullyConnected: return fully_connected_cases();
        case OpKind::Relu: return unary_cases(kind, "relu");
        case OpKind::Relu6: return unary_cases(kind, "relu6");
        case OpKind::Softmax: return softmax_cases();
        case OpKind::Reshape: return reshape_cases();
        case OpKind::Quantize:
        case OpKind::Dequantize: return quantize_cases();
        case OpKind::BatchNorm: return batch_norm_cases();
        case OpKind::Identity: return unary_cases(kind, "identity");
        case OpKind::HardSwish: return unary_cases(kind, "hard swish");
    }
    return {};
}

// ---- guarded buffers ---------------------------------------------------------------------------

constexpr std::size_t kGuardBytes = 64;
constexpr std::uint8_t kCanary = 0xA5;

// `size` bytes between two runs of kGuardBytes canary bytes (the data starts canary-filled too,
// so an element a kernel forgets to write shows up in the comparison).
class Guarded {
public:
    explicit Guarded(std::size_t size) : bytes_(size + 2 * kGuardBytes, kCanary), size_(size) {}
    void* data() { return bytes_.data() + kGuardBytes; }
    const void* data() const { return bytes_.data() + kGuardBytes; }
    std::size_t size() const { return size_; }
    // "" when both guards are intact, else which one was written and where.
    std::string damage() const {
        for (std::size_t i = 0; i < kGuardBytes; ++i) {
            if (bytes_[i] != kCanary) return "byte " + std::to_string(static_cast<long>(i) - static_cast<long>(kGuardBytes)) + " (before the start)";
            if (bytes_[kGuardBytes + size_ + i] != kCanary) return "byte " + std::to_string(size_ + i) + " (past the end of " + std::to_string(size_) + ")";
        }
        return "";
    }

private:
    std::vector<std::uint8_t> bytes_;
    std::size_t size_;
};

std::int64_t count(const Shape& s) {
    std::int64_t n = 1;
    for (auto d : s) n *= d;
    return n;
}

// The oracle: every op with its reference kernel, every tensor in a guarded buffer. Returns the
// graph outputs' values.
std::vector<std::vector<float>> run_oracle(const Graph& g, const std::vector<float>& input, int batch, const std::string& what) {
    const auto shapes = infer_shapes(g, batch);
    std::vector<Guarded> buffers;
    buffers.reserve(g.tensors.size());
    std::vector<void*> data;
    for (std::size_t i = 0; i < g.tensors.size(); ++i) {
        const auto& t = g.tensors[i];
        buffers.emplace_back(static_cast<std::size_t>(count(shapes[i])) * dtype_size(t.dtype));
        if (t.constant) std::memcpy(buffers.back().data(), t.bytes(), buffers.back().size());
        data.push_back(buffers.back().data());
    }
    auto& in = buffers[static_cast<std::size_t>(g.inputs[0])];
    EXPECT_EQ(in.size(), input.size() * sizeof(float)) << what;
    std::memcpy(in.data(), input.data(), std::min(in.size(), input.size() * sizeof(float)));
    for (std::size_t oi = 0; oi < g.ops.size(); ++oi) {
        run_reference_op(g, g.ops[oi], shapes, data);
        for (std::size_t i = 0; i < buffers.size(); ++i) {
            const auto d = buffers[i].damage();
            EXPECT_EQ(d, "") << what << ": the reference kernel of op " << oi << " (" << op_kind_name(g.ops[oi].kind)
                             << ") wrote outside tensor '" << g.tensors[i].name << "'";
        }
    }
    std::vector<std::vector<float>> outs;
    for (auto o : g.outputs) {
        const auto& b = buffers[static_cast<std::size_t>(o)];
        const auto* p = static_cast<const float*>(b.data());
        outs.emplace_back(p, p + b.size() / sizeof(float));
    }
    return outs;
}

// Adds a Dequantize output for every int8 activation, so every int8 byte is compared (the
// dequantization is one to one on int8, and the same f32 arithmetic on every backend).
void expose_int8_activations(Graph& g) {
    const std::size_t n = g.tensors.size();
    for (std::size_t i = 0; i < n; ++i) {
        if (g.tensors[i].constant || g.tensors[i].dtype != DType::I8) continue;
        if (std::find(g.outputs.begin(), g.outputs.end(), static_cast<std::int32_t>(i)) != g.outputs.end()) continue;
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

// The graph a case runs: its float graph, or that graph quantized with min-max ranges from the
// case's own input, with every int8 activation exposed.
Graph graph_of(const OpCase& c, const std::vector<float>& input, OpKind kind) {
    Graph g = c.graph;
    if (!c.int8) return g;
    quantize_int8(g, testing::minmax_ranges(g, {input}, c.batch));
    // The op under test must have become int8, or the case tests nothing int8.
    const bool int8_op = std::any_of(g.ops.begin(), g.ops.end(), [&](const Op& op) {
        return op.kind == kind && g.tensors[static_cast<std::size_t>(op.inputs[0])].dtype == DType::I8;
    });
    EXPECT_TRUE(int8_op) << c.name << ": quantize_int8 left the " << op_kind_name(kind) << " in float";
    expose_int8_activations(g);
    return g;
}

std::vector<float> input_of(const OpCase& c, unsigned seed) {
    if (!c.input.empty()) return c.input;
    const auto& s = c.graph.tensors[static_cast<std::size_t>(c.graph.inputs[0])].shape;
    GraphMaker m(seed);
    return m.random(static_cast<std::size_t>(count(s) * c.batch), c.lo, c.hi);
}

// ---- the test ----------------------------------------------------------------------------------

class OpOnBackend : public ::testing::TestWithParam<std::tuple<int, Backend>> {};

TEST_P(OpOnBackend, MatchesTheReferenceKernelsOverTheShapeSweep) {
    const auto kind = static_cast<OpKind>(std::get<0>(GetParam()));
    const Backend backend = std::get<1>(GetParam());
    if (!backend_available(backend)) GTEST_SKIP() << backend_name(backend) << " is not built here";
    const auto cases = cases_for(kind);
    ASSERT_FALSE(cases.empty());
    int ran = 0;
    std::string refused;
    unsigned seed = 1;
    for (const auto& c : cases) {
        SCOPED_TRACE(c.name);
        const auto input = input_of(c, seed++);
        const Graph g = graph_of(c, input, kind);
        const auto expect = run_oracle(g, input, c.batch, c.name);
        auto engine = Engine::from_graph(g);

        std::string why;
        const Op* not_taken = nullptr;
        for (const auto& op : g.ops)
            if (!backend_supports(backend, g, op, &why)) {
                not_taken = &op;
                break;
            }
        if (not_taken) {
            // The reference takes every op in the table, and native-int8 falls back to it.
            EXPECT_EQ(backend, Backend::Xnnpack) << backend_name(backend) << " refuses " << op_kind_name(not_taken->kind) << ": " << why;
            refused = std::string(op_kind_name(not_taken->kind)) + ": " + why;
            std::string error;
            try {
                Session s(engine, {backend, 1});
            } catch (const Error& e) {
                error = e.what();
            }
            EXPECT_NE(error.find(std::string("(") + op_kind_name(not_taken->kind) + ")"), std::string::npos)
                << "the session must refuse the graph naming the op, got: " << error;
            continue;
        }
        ++ran;
        // Any int8 tensor (a quantized case, the Quantize/Dequantize cases): bytes are promised.
        const bool exact = backend != Backend::Xnnpack ||
                           std::any_of(g.tensors.begin(), g.tensors.end(), [](const Tensor& t) { return t.dtype == DType::I8; });

        for (int threads : backend == Backend::Reference ? std::vector<int>{1} : std::vector<int>{1, 2}) {
            Session s(engine, {backend, threads});
            Guarded in(input.size() * sizeof(float));
            std::memcpy(in.data(), input.data(), in.size());
            const std::span<const float> x(static_cast<const float*>(in.data()), input.size());
            for (int rep = 0; rep < 2; ++rep) {
                const auto& out = s.run(x, c.batch);
                EXPECT_EQ(in.damage(), "") << "the run wrote around its input (threads " << threads << ", run " << rep << ")";
                EXPECT_EQ(std::memcmp(in.data(), input.data(), in.size()), 0) << "the run changed its input";
                ASSERT_EQ(out.size(), expect.size());
                for (std::size_t k = 0; k < out.size(); ++k) {
                    const auto& e = expect[k];
                    const std::string which = "output " + std::to_string(k) + " '" +
                                              g.tensors[static_cast<std::size_t>(g.outputs[k])].name + "', threads " +
                                              std::to_string(threads) + ", run " + std::to_string(rep);
                    ASSERT_EQ(static_cast<std::size_t>(s.output_size(static_cast<int>(k)) * c.batch), e.size()) << which;
                    if (exact) {
                        std::size_t differ = 0, first = e.size();
                        for (std::size_t i = 0; i < e.size(); ++i)
                            if (std::memcmp(&e[i], &out[k][i], sizeof(float)) != 0 && ++differ == 1) first = i;
                        EXPECT_EQ(differ, 0u) << which << ": " << differ << " of " << e.size() << " values differ from the reference, first at "
                                              << first << " (reference " << (first < e.size() ? e[first] : 0.f) << ", "
                                              << backend_name(backend) << " " << (first < e.size() ? out[k][first] : 0.f) << ")";
                    } else {
                        float worst = 0.f;
                        std::size_t at = 0;
                        for (std::size_t i = 0; i < e.size(); ++i) {
                            float d = std::abs(e[i] - out[k][i]) / (1.f + std::abs(e[i]));
                            if (std::isnan(d)) d = std::numeric_limits<float>::infinity();
                            if (d > worst) {
                                worst = d;
                                at = i;
                            }
                        }
                        EXPECT_LT(worst, 1e-5f) << which << ": worst relative difference at " << at << " (reference " << e[at]
                                                << ", xnnpack " << out[k][at] << ")";
                    }
                }
            }
        }
    }
    if (ran == 0) GTEST_SKIP() << backend_name(backend) << " takes no case of " << op_kind_name(kind) << " (" << refused << ")";
}

std::vector<int> all_kinds() {
    std::vector<int> k;
    for (int i = 1; i <= kOpKindCount; ++i) k.push_back(i);
    return k;
}

INSTANTIATE_TEST_SUITE_P(EveryOp, OpOnBackend,
                         ::testing::Combine(::testing::ValuesIn(all_kinds()),
                                            ::testing::Values(Backend::Reference, Backend::Xnnpack, Backend::NativeInt8)),
                         [](const ::testing::TestParamInfo<OpOnBackend::ParamType>& info) {
                             std::string b = backend_name(std::get<1>(info.param));
                             b.erase(std::remove(b.begin(), b.end(), '-'), b.end());
                             return std::string(op_kind_name(static_cast<OpKind>(std::get<0>(info.param)))) + "_" + b;
                         });

// The table and the sweep cover the same kinds: every kind has a name and cases, and a number
// past the last kind is no kind.
TEST(OpTable, EveryOpKindHasANameAndCases) {
    for (int i = 1; i <= kOpKindCount; ++i) {
        const auto kind = static_cast<OpKind>(i);
        EXPECT_STRNE(op_kind_name(kind), "unknown") << "kind " << i;
        EXPECT_FALSE(cases_for(kind).empty()) << op_kind_name(kind);
    }
    EXPECT_STREQ(op_kind_name(static_cast<OpKind>(kOpKindCount + 1)), "unknown");
    EXPECT_STREQ(op_kind_name(static_cast<OpKind>(0)), "unknown");
}

// XNNPACK declares what it takes, and the session refuses the rest before building anything,
// naming the op: a BatchNorm (the optimiser folds it away), a fused activation on a Relu.
TEST(OpTable, SessionRefusesAGraphItsBackendDoesNotTakeNamingTheOp) {
    if (!backend_available(Backend::Xnnpack)) GTEST_SKIP() << "built without xnnpack";
    GraphMaker m(9);
    const auto x = m.input({1, 3, 3, 4});
    const auto r = m.unary(OpKind::Relu, x);
    m.g.outputs = {m.batch_norm(r)};
    std::string why;
    EXPECT_TRUE(backend_supports(Backend::Xnnpack, m.g, m.g.ops[0], &why));
    EXPECT_FALSE(backend_supports(Backend::Xnnpack, m.g, m.g.ops[1], &why));
    EXPECT_FALSE(why.empty());
    for (bool fused : {false, true}) {
        Graph g = m.g;
        if (fused) {
            g.ops.pop_back();
            g.ops[0].activation = Activation::Relu6;
            g.outputs = {r};
        }
        std::string error;
        try {
            Session s(Engine::from_graph(g), {Backend::Xnnpack, 1});
        } catch (const Error& e) {
            error = e.what();
        }
        const std::string want = fused ? "session: the xnnpack backend cannot run op 0 (Relu): a fused relu6 on Relu is not supported"
                                       : "session: the xnnpack backend cannot run op 1 (BatchNorm): ";
        EXPECT_NE(error.find(want), std::string::npos) << error;
        EXPECT_NO_THROW((Session(Engine::from_graph(g), SessionOptions{Backend::Reference, 1})));
    }
}

}  // namespace
}  // namespace firesight::engine
