// sparse_1x1_bench: would a pruned engine's 1x1 convolutions run faster on XNNPACK's sparse NCHW
// (SpMM) operator than on its dense NHWC one? Times both on every 1x1 Conv2D of an f32 engine, alone.
// Usage:
//   sparse_1x1_bench ENGINE.fse [RUNS] [THREADS]        (defaults: 50 runs, 1 thread)
// For each layer: its input shape in the graph (batch 1), the share of exactly-zero weights, the
// median over RUNS interleaved runs (after warm-up) of xnn_create_convolution2d_nhwc_f32 ("dense")
// and xnn_create_convolution2d_nchw_f32 ("sparse") on the layer's own weights, bias and clamp, and
// the largest difference between their outputs. Then totals over all 1x1 layers; then the same
// totals with every layer's weights magnitude-pruned to 75..95% zeros, to show where SpMM starts to
// pay on this CPU; and peak RSS.
// Only the convolutions are timed: a network run sparse would also need NCHW depthwise layers
// (or transposes), which this does not measure.
#include <pthreadpool.h>
#include <sys/resource.h>
#include <xnnpack.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "firesight/engine/session.h"
#include "firesight/engine/ir.h"
#include "firesight/common/error.h"
#include "firesight/common/progress.h"

namespace {

using namespace firesight;
using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

void check(xnn_status s, const std::string& what) {
    if (s != xnn_status_success) throw Error(what + " failed (xnn_status " + std::to_string(static_cast<int>(s)) + ")");
}

int positive_int(const char* text, const char* field) {
    char* end = nullptr;
    const long v = std::strtol(text, &end, 10);
    if (!end || *end != '\0' || v < 1 || v > 1000000)
        throw Error(std::string(field) + " must be a positive integer, got '" + text + "'");
    return static_cast<int>(v);
}

struct Layer {
    std::string name, shape;
    double sparsity = 0;
    double dense_us = 0, sparse_us = 0;
    float max_diff = 0;
};

class Operators {
public:
    ~Operators() {
        if (dense) xnn_delete_operator(dense);
        if (sparse) xnn_delete_operator(sparse);
    }
    xnn_operator_t dense = nullptr, sparse = nullptr;
};

// `weights`: the layer's own when null, else a replacement of the same shape.
Layer time_layer(const engine::Graph& g, const engine::Op& op, const std::vector<std::int32_t>& xs, int runs,
                 pthreadpool_t pool, unsigned seed, const float* weights = nullptr) {
    const auto& wt = g.tensors[static_cast<std::size_t>(op.inputs[1])];
    const float* w = weights ? weights : wt.data();
    const float* bias = nullptr;
    if (op.inputs.size() > 2 && op.inputs[2] >= 0) bias = g.tensors[static_cast<std::size_t>(op.inputs[2])].data();
    if (!w) throw Error("weights '" + wt.name + "' are not f32 constants");
    const std::size_t H = static_cast<std::size_t>(xs[1]), W = static_cast<std::size_t>(xs[2]);
    const std::size_t C = static_cast<std::size_t>(xs[3]), O = static_cast<std::size_t>(wt.shape[0]);
    const float lo = op.activation == engine::Activation::None ? -std::numeric_limits<float>::infinity() : 0.f;
    const float hi = op.activation == engine::Activation::Relu6 ? 6.f : std::numeric_limits<float>::infinity();

    Layer L;
    L.name = g.tensors[static_cast<std::size_t>(op.outputs[0])].name;
    L.shape = std::to_string(H) + "x" + std::to_string(W) + "x" + std::to_string(C) + "->" + std::to_string(O);
    std::size_t zeros = 0;
    for (std::size_t i = 0; i < O * C; ++i) zeros += w[i] == 0.f;
    L.sparsity = static_cast<double>(zeros) / static_cast<double>(O * C);

    Operators ops;
    check(xnn_create_convolution2d_nhwc_f32(0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, C, O, C, O, w, bias, lo, hi, 0, &ops.dense),
          "xnn_create_convolution2d_nhwc_f32 for " + L.name);
    const auto st = xnn_create_convolution2d_nchw_f32(0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, C, O, C, O, w, bias, lo, hi, 0, &ops.sparse);
    if (st == xnn_status_unsupported_hardware)
        throw Error("this CPU has no XNNPACK SpMM kernel (xnn_create_convolution2d_nchw_f32: unsupported hardware)");
    check(st, "xnn_create_convolution2d_nchw_f32 for " + L.name);

    // Post-ReLU6-like activations; neither kernel's speed depends on the values.
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> u(0.f, 6.f);
    std::vector<float> x_nhwc(H * W * C), x_nchw(H * W * C), y_nhwc(H * W * O), y_nchw(H * W * O);
    for (auto& v : x_nhwc) v = u(rng);
    for (std::size_t p = 0; p < H * W; ++p)
        for (std::size_t c = 0; c < C; ++c) x_nchw[c * H * W + p] = x_nhwc[p * C + c];
    check(xnn_setup_convolution2d_nhwc_f32(ops.dense, 1, H, W, x_nhwc.data(), y_nhwc.data(), pool), "setup (dense) " + L.name);
    check(xnn_setup_convolution2d_nchw_f32(ops.sparse, 1, H, W, x_nchw.data(), y_nchw.data(), pool), "setup (sparse) " + L.name);

    auto timed = [&](xnn_operator_t o) {
        const auto t0 = Clock::now();
        check(xnn_run_operator(o, pool), "xnn_run_operator " + L.name);
        return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    };
    for (int i = 0; i < 5; ++i) {
        timed(ops.dense);
        timed(ops.sparse);
    }
    for (std::size_t p = 0; p < H * W; ++p)
        for (std::size_t o = 0; o < O; ++o)
            L.max_diff = std::max(L.max_diff, std::fabs(y_nhwc[p * O + o] - y_nchw[o * H * W + p]));

    // Alternating which goes first, so neither always runs on the other's warm cache.
    std::vector<double> dense_us, sparse_us;
    for (int r = 0; r < runs; ++r) {
        if (r % 2 == 0) {
            dense_us.push_back(timed(ops.dense));
            sparse_us.push_back(timed(ops.sparse));
        } else {
            sparse_us.push_back(timed(ops.sparse));
            dense_us.push_back(timed(ops.dense));
        }
    }
    L.dense_us = median(dense_us);
    L.sparse_us = median(sparse_us);
    return L;
}

// The layer's weights with the smallest-magnitude share `sparsity` set to zero (those already zero
// count towards it), as magnitude pruning to that level would leave them.
std::vector<float> magnitude_pruned(const engine::Tensor& wt, double sparsity) {
    const float* w = wt.data();
    std::vector<float> out(w, w + wt.element_count());
    std::vector<std::size_t> order(out.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    const auto zeros = static_cast<std::size_t>(sparsity * static_cast<double>(out.size()) + 0.5);
    std::nth_element(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(zeros), order.end(),
                     [&](std::size_t a, std::size_t b) { return std::fabs(out[a]) < std::fabs(out[b]); });
    for (std::size_t i = 0; i < zeros; ++i) out[order[i]] = 0.f;
    return out;
}

void run(const std::string& path, int runs, int threads) {
    const auto engine = engine::Engine::load(path);
    const auto& g = engine->graph();
    for (const auto& t : g.tensors)
        if (t.dtype != engine::DType::F32)
            throw Error(path + " is an int8 engine (tensor '" + t.name + "' is " +
                        engine::dtype_name(t.dtype) + "); XNNPACK's sparse operator is f32 only: give the f32 engine");
    check(xnn_initialize(nullptr), "xnn_initialize");
    // One thread runs on the caller, as the engine's XNNPACK executor does.
    std::unique_ptr<pthreadpool, decltype(&pthreadpool_destroy)> pool_owner(
        threads > 1 ? pthreadpool_create(static_cast<std::size_t>(threads)) : nullptr, &pthreadpool_destroy);
    pthreadpool_t pool = pool_owner.get();
    if (threads > 1 && !pool) throw Error("cannot create a thread pool of " + std::to_string(threads));

    const auto shapes = engine::infer_shapes(g, 1);
    std::vector<const engine::Op*> eligible;
    int other_1x1 = 0;
    for (const auto& op : g.ops) {
        if (op.kind != engine::OpKind::Conv2D) continue;
        const auto& ws = g.tensors[static_cast<std::size_t>(op.inputs[1])].shape;
        if (ws[1] != 1 || ws[2] != 1) continue;
        // XNNPACK has SpMM only for stride 1, no padding, one group.
        if (op.groups != 1 || op.stride_h != 1 || op.stride_w != 1 || op.pad_top || op.pad_left || op.pad_bottom ||
            op.pad_right)
            ++other_1x1;
        else
            eligible.push_back(&op);
    }
    if (eligible.empty()) throw Error(path + " has no 1x1 stride-1 unpadded Conv2D");

    std::vector<Layer> layers;
    {
        ProgressBar bar("1x1 layers", eligible.size());
        for (const auto* op : eligible) {
            layers.push_back(time_layer(g, *op, shapes[static_cast<std::size_t>(op->inputs[0])], runs, pool,
                                        static_cast<unsigned>(layers.size() + 1)));
            bar.update(layers.size());
        }
        bar.finish();
    }

    std::printf("%s: %zu 1x1 convolutions, median of %d interleaved runs, %d thread%s, batch 1\n", path.c_str(),
                layers.size(), runs, threads, threads == 1 ? "" : "s");
    if (other_1x1) std::printf("(%d strided or padded 1x1 convolutions left out: XNNPACK has no SpMM kernel for them)\n", other_1x1);
    std::printf("%-40s %-18s %8s %10s %10s %8s %10s\n", "layer", "HxWxC->O", "zeros", "dense us", "sparse us", "speedup",
                "max |diff|");
    double dense_total = 0, sparse_total = 0, zero_weights = 0, all_weights = 0;
    for (const auto& L : layers) {
        std::string name = L.name.size() > 40 ? "..." + L.name.substr(L.name.size() - 37) : L.name;
        std::printf("%-40s %-18s %7.1f%% %10.1f %10.1f %7.2fx %10.2g\n", name.c_str(), L.shape.c_str(), 100.0 * L.sparsity,
                    L.dense_us, L.sparse_us, L.dense_us / L.sparse_us, static_cast<double>(L.max_diff));
        dense_total += L.dense_us;
        sparse_total += L.sparse_us;
    }
    for (const auto* op : eligible) {
        const auto& wt = g.tensors[static_cast<std::size_t>(op->inputs[1])];
        const float* w = wt.data();
        for (std::int64_t i = 0; i < wt.element_count(); ++i) zero_weights += w[i] == 0.f;
        all_weights += static_cast<double>(wt.element_count());
    }
    std::printf("%-40s %-18s %7.1f%% %10.1f %10.1f %7.2fx\n", "total (sum of medians)", "", 100.0 * zero_weights / all_weights,
                dense_total, sparse_total, dense_total / sparse_total);

    // Where SpMM would start to pay: the same layers with their weights magnitude-pruned further.
    const std::vector<double> levels = {0.75, 0.8, 0.85, 0.9, 0.95};
    std::vector<std::pair<double, double>> sweep;  // total dense us, total sparse us per level
    {
        ProgressBar bar("what-if sparsities", levels.size() * eligible.size());
        std::size_t done = 0;
        for (double level : levels) {
            double d = 0, sp = 0;
            for (const auto* op : eligible) {
                const auto w = magnitude_pruned(g.tensors[static_cast<std::size_t>(op->inputs[1])], level);
                const auto L = time_layer(g, *op, shapes[static_cast<std::size_t>(op->inputs[0])], runs, pool,
                                          static_cast<unsigned>(++done), w.data());
                d += L.dense_us;
                sp += L.sparse_us;
                bar.update(done);
            }
            sweep.emplace_back(d, sp);
        }
        bar.finish();
    }
    std::printf("\nwhat if every 1x1 layer were magnitude-pruned to (totals, sum of medians):\n");
    std::printf("%8s %10s %10s %8s\n", "zeros", "dense us", "sparse us", "speedup");
    for (std::size_t i = 0; i < levels.size(); ++i)
        std::printf("%7.0f%% %10.1f %10.1f %7.2fx\n", 100.0 * levels[i], sweep[i].first, sweep[i].second,
                    sweep[i].first / sweep[i].second);

    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    std::printf("\npeak RSS %.1f MB\n", static_cast<double>(ru.ru_maxrss) / 1024.0);
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 2 || argc > 4) {
        std::fprintf(stderr, "usage: sparse_1x1_bench ENGINE.fse [RUNS=50] [THREADS=1]\n");
        return 2;
    }
    try {
        const int runs = argc > 2 ? positive_int(argv[2], "RUNS") : 50;
        const int threads = argc > 3 ? positive_int(argv[3], "THREADS") : 1;
        run(argv[1], runs, threads);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "sparse_1x1_bench: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
