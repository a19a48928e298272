// fused_block_bench: does running a MobileNetV2 inverted-residual block (1x1 expand + ReLU6,
// 3x3 depthwise + ReLU6, 1x1 project, + residual) strip by strip, so the expanded tensor stays in
// cache, beat XNNPACK's layer-by-layer execution over whole tensors? (issue 14, section 3)
// Usage:
//   fused_block_bench [RUNS] [THREADS] [STRIP_ROWS...]      (defaults: 200 runs, 1 thread, 1 2 4 8)
// First each of six blocks alone, then the 16 expanding blocks of MobileNetV2 in a row.
// Both ways use the same XNNPACK f32 operators (xnn_create_convolution2d_nhwc_f32):
//  - "layers": expand, depthwise, project (and an add for the residual) each over the whole tensor,
//    parallel inside each operator on a pthreadpool of THREADS (what the xnnpack backend's subgraph does);
//  - "fused R": R output rows at a time; the expand writes the rows the depthwise needs into a strip
//    buffer (zero rows stand for the top/bottom padding, so the depthwise has padding only left/right
//    and always sees the same buffer: XNNPACK builds its indirection buffer once), the project writes
//    the strip's output rows, the residual is added there. The rows two strips share are moved, not
//    recomputed. With 2 threads each thread takes half of the strips with its own operators and buffers
//    (no threadpool inside the operators), one join of the same pthreadpool per block.
// Runs are interleaved (layers, then each R, in every iteration); medians in microseconds; "diff" is
// the largest |fused - layers| over the block's output.
#include <pthreadpool.h>
#include <xnnpack.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

void check(xnn_status s, const char* what) {
    if (s != xnn_status_success) throw std::runtime_error(std::string(what) + " failed");
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// One block of MobileNetV2 and its padding (TF SAME: a stride-2 layer on an even size pads
// 0 top/left and 1 bottom/right).
struct Block {
    const char* name;
    int h, w, cin, e, cout, stride;
    int pt() const { return stride == 1 ? 1 : 0; }
    int pl() const { return pt(); }
    int ho() const { return (h + stride - 1) / stride; }
    int wo() const { return (w + stride - 1) / stride; }
    bool residual() const { return stride == 1 && cin == cout; }
};

struct Weights {
    std::vector<float> we, be, wd, bd, wp, bp;
    explicit Weights(const Block& b) {
        std::mt19937 rng(11);
        std::uniform_real_distribution<float> u(-1.f, 1.f);
        auto fill = [&](std::size_t n, float r) {
            std::vector<float> v(n);
            for (auto& x : v) x = u(rng) * r;
            return v;
        };
        we = fill(static_cast<std::size_t>(b.e * b.cin), 1.f / std::sqrt(float(b.cin)));
        be = fill(static_cast<std::size_t>(b.e), 0.5f);
        wd = fill(static_cast<std::size_t>(9 * b.e), 0.4f);
        bd = fill(static_cast<std::size_t>(b.e), 0.5f);
        wp = fill(static_cast<std::size_t>(b.cout * b.e), 1.f / std::sqrt(float(b.e)));
        bp = fill(static_cast<std::size_t>(b.cout), 0.1f);
    }
};

xnn_operator_t conv1x1(int cin, int cout, const float* w, const float* bias, float lo, float hi) {
    xnn_operator_t op = nullptr;
    check(xnn_create_convolution2d_nhwc_f32(0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, cin, cout, cin, cout, w, bias, lo, hi, 0, &op),
          "create 1x1");
    return op;
}

xnn_operator_t depthwise(const Block& b, int pad_top, int pad_bottom, const Weights& wt) {
    const int pad_right = (b.wo() - 1) * b.stride + 3 - b.w - b.pl();
    xnn_operator_t op = nullptr;
    check(xnn_create_convolution2d_nhwc_f32(pad_top, pad_right, pad_bottom, b.pl(), 3, 3, b.stride, b.stride, 1, 1, b.e, 1, 1, b.e,
                                            b.e, wt.wd.data(), wt.bd.data(), 0.f, 6.f, XNN_FLAG_DEPTHWISE_CONVOLUTION, &op),
          "create depthwise");
    return op;
}

// Layer by layer over whole tensors, every operator parallel on the pool.
struct Layers {
    std::vector<xnn_operator_t> ops;
    std::vector<float> e, d;
    Layers(const Block& b, const Weights& wt, const float* in, float* out, pthreadpool_t pool)
        : e(static_cast<std::size_t>(b.h * b.w * b.e)), d(static_cast<std::size_t>(b.ho() * b.wo() * b.e)) {
        const float inf = std::numeric_limits<float>::infinity();
        ops.push_back(conv1x1(b.cin, b.e, wt.we.data(), wt.be.data(), 0.f, 6.f));
        check(xnn_setup_convolution2d_nhwc_f32(ops[0], 1, b.h, b.w, in, e.data(), pool), "setup expand");
        const int pb = (b.ho() - 1) * b.stride + 3 - b.h - b.pt();
        ops.push_back(depthwise(b, b.pt(), pb, wt));
        check(xnn_setup_convolution2d_nhwc_f32(ops[1], 1, b.h, b.w, e.data(), d.data(), pool), "setup depthwise");
        ops.push_back(conv1x1(b.e, b.cout, wt.wp.data(), wt.bp.data(), -inf, inf));
        check(xnn_setup_convolution2d_nhwc_f32(ops[2], 1, b.ho(), b.wo(), d.data(), out, pool), "setup project");
        if (b.residual()) {
            xnn_operator_t add = nullptr;
            check(xnn_create_add_nd_f32(-inf, inf, 0, &add), "create add");
            const std::size_t shape[] = {1, std::size_t(b.h), std::size_t(b.w), std::size_t(b.cout)};
            check(xnn_setup_add_nd_f32(add, 4, shape, 4, shape, out, in, out, pool), "setup add");
            ops.push_back(add);
        }
    }
    ~Layers() {
        for (auto op : ops) xnn_delete_operator(op);
    }
    void run(pthreadpool_t pool) {
        for (auto op : ops) check(xnn_run_operator(op, pool), "run");
    }
};

// One thread's share of the strips: its own operators and strip buffers.
class StripWorker {
public:
    StripWorker(const Block& b, const Weights& wt, int rows)
        : b_(b), rows_(rows), hb_((rows - 1) * b.stride + 3), row_e_(std::size_t(b.w) * b.e),
          ebuf_(std::size_t(hb_) * row_e_), dbuf_(std::size_t(rows) * b.wo() * b.e) {
        const float inf = std::numeric_limits<float>::infinity();
        expand_ = conv1x1(b.cin, b.e, wt.we.data(), wt.be.data(), 0.f, 6.f);
        dw_ = depthwise(b, 0, 0, wt);
        project_ = conv1x1(b.e, b.cout, wt.wp.data(), wt.bp.data(), -inf, inf);
        // The depthwise always reads the whole strip buffer and writes rows_ rows: set up once.
        check(xnn_setup_convolution2d_nhwc_f32(dw_, 1, hb_, b.w, ebuf_.data(), dbuf_.data(), nullptr), "setup depthwise");
    }
    ~StripWorker() {
        for (auto op : {expand_, dw_, project_}) xnn_delete_operator(op);
    }
    StripWorker(const StripWorker&) = delete;
    StripWorker& operator=(const StripWorker&) = delete;

    int strips() const { return (b_.ho() + rows_ - 1) / rows_; }

    // Output strips [s0, s1) of the block.
    void run(const float* in, float* out, int s0, int s1) {
        int have_lo = 0, have_hi = 0;  // expanded rows already in ebuf_ (image row numbers)
        for (int k = s0; k < s1; ++k) {
            const int o0 = k * rows_, n = std::min(rows_, b_.ho() - o0);
            const int r0 = o0 * b_.stride - b_.pt();  // image row of ebuf_ row 0
            int from = r0;
            if (k > s0 && have_hi > r0) {  // rows shared with the previous strip: move them up
                std::memmove(ebuf_.data(), ebuf_.data() + std::size_t(r0 - have_lo) * row_e_,
                             std::size_t(have_hi - r0) * row_e_ * sizeof(float));
                from = have_hi;
            }
            fill_rows(in, r0, from, r0 + hb_);
            have_lo = r0;
            have_hi = r0 + hb_;
            check(xnn_run_operator(dw_, nullptr), "run depthwise");
            float* y = out + std::size_t(o0) * b_.wo() * b_.cout;
            check(xnn_setup_convolution2d_nhwc_f32(project_, 1, n, b_.wo(), dbuf_.data(), y, nullptr), "setup project");
            check(xnn_run_operator(project_, nullptr), "run project");
            if (b_.residual()) add_rows(y, in + std::size_t(o0) * b_.w * b_.cin, std::size_t(n) * b_.w * b_.cout);
        }
    }

private:
    // Image rows [from, to) into ebuf_ (row r at r - r0): expanded inside the image, zero outside.
    void fill_rows(const float* in, int r0, int from, int to) {
        const int lo = std::max(from, 0), hi = std::min(to, b_.h);
        for (int r = from; r < std::min(to, lo); ++r) zero_row(r - r0);
        if (hi > lo) {
            check(xnn_setup_convolution2d_nhwc_f32(expand_, 1, hi - lo, b_.w, in + std::size_t(lo) * b_.w * b_.cin,
                                                   ebuf_.data() + std::size_t(lo - r0) * row_e_, nullptr),
                  "setup expand");
            check(xnn_run_operator(expand_, nullptr), "run expand");
        }
        for (int r = std::max(from, hi); r < to; ++r) zero_row(r - r0);
    }
    void zero_row(int j) { std::fill_n(ebuf_.data() + std::size_t(j) * row_e_, row_e_, 0.f); }
    static void add_rows(float* y, const float* x, std::size_t n) {
        for (std::size_t i = 0; i < n; ++i) y[i] += x[i];
    }

    Block b_;
    int rows_, hb_;
    std::size_t row_e_;
    std::vector<float> ebuf_, dbuf_;
    xnn_operator_t expand_ = nullptr, dw_ = nullptr, project_ = nullptr;
};

// The block fused, its strips split between 1 or 2 threads.
struct Fused {
    std::vector<std::unique_ptr<StripWorker>> workers;
    Fused(const Block& b, const Weights& wt, int rows, int threads) {
        for (int t = 0; t < threads; ++t) workers.push_back(std::make_unique<StripWorker>(b, wt, rows));
    }
    // With 2 threads the pool runs one item per worker (a worker's strips, with its buffers): the
    // only synchronisation is the pool's join at the end of the block.
    void run(const float* in, float* out, pthreadpool_t pool) {
        in_ = in;
        out_ = out;
        if (workers.size() == 1) return task(this, 0);
        pthreadpool_parallelize_1d(pool, reinterpret_cast<pthreadpool_task_1d_t>(&Fused::task), this, workers.size(), 0);
    }

private:
    static void task(Fused* f, std::size_t i) {
        const int n = f->workers[0]->strips(), per = (n + int(f->workers.size()) - 1) / int(f->workers.size());
        const int s0 = int(i) * per;
        f->workers[i]->run(f->in_, f->out_, s0, std::min(n, s0 + per));
    }
    const float* in_ = nullptr;
    float* out_ = nullptr;
};

double micros_since(Clock::time_point t0) { return std::chrono::duration<double, std::micro>(Clock::now() - t0).count(); }

std::vector<float> random_input(const Block& b) {
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    std::vector<float> in(std::size_t(b.h) * b.w * b.cin);
    for (auto& x : in) x = u(rng);
    return in;
}

// Each block alone: layers, then fused with each strip height, interleaved.
void time_blocks(const std::vector<Block>& blocks, const std::vector<int>& rows, int runs, int threads, pthreadpool_t pool) {
    std::printf("one block at a time, threads %d, %d interleaved runs, median us\n%-24s %8s", threads, runs, "block", "layers");
    for (int r : rows) std::printf("  fused %-2d  diff    ", r);
    std::printf("\n");
    for (const auto& b : blocks) {
        const Weights wt(b);
        const auto in = random_input(b);
        const std::size_t n_out = std::size_t(b.ho()) * b.wo() * b.cout;
        std::vector<float> ref(n_out), out(n_out);
        Layers layers(b, wt, in.data(), ref.data(), pool);
        std::vector<std::unique_ptr<Fused>> fused;
        for (int r : rows) fused.push_back(std::make_unique<Fused>(b, wt, r, threads));
        std::vector<std::vector<double>> t(1 + rows.size());
        std::vector<float> diff(rows.size(), 0.f);
        for (int i = -20; i < runs; ++i) {
            auto t0 = Clock::now();
            layers.run(pool);
            if (i >= 0) t[0].push_back(micros_since(t0));
            for (std::size_t k = 0; k < fused.size(); ++k) {
                t0 = Clock::now();
                fused[k]->run(in.data(), out.data(), pool);
                if (i >= 0) t[1 + k].push_back(micros_since(t0));
                if (i == -1)
                    for (std::size_t j = 0; j < n_out; ++j) diff[k] = std::max(diff[k], std::fabs(out[j] - ref[j]));
            }
        }
        std::printf("%-24s %8.1f", b.name, median(t[0]));
        for (std::size_t k = 0; k < rows.size(); ++k) std::printf("  %8.1f  %-8.1g", median(t[1 + k]), double(diff[k]));
        std::printf("\n");
    }
}

// The 16 expanding blocks of MobileNetV2 1.0 at 224 (stem, block 1 and head left out), one after
// the other: all layer by layer; all fused; fused only where the expanded tensor is at least
// 1 MiB (it would not stay in L2 anyway), the rest layer by layer.
void time_chain(const std::vector<int>& rows, int runs, int threads, pthreadpool_t pool) {
    std::vector<Block> chain = {{"", 112, 112, 16, 96, 24, 2}, {"", 56, 56, 24, 144, 24, 1}, {"", 56, 56, 24, 144, 32, 2}};
    auto repeat = [&](Block b, int n) { for (int i = 0; i < n; ++i) chain.push_back(b); };
    repeat({"", 28, 28, 32, 192, 32, 1}, 2);
    chain.push_back({"", 28, 28, 32, 192, 64, 2});
    repeat({"", 14, 14, 64, 384, 64, 1}, 3);
    chain.push_back({"", 14, 14, 64, 384, 96, 1});
    repeat({"", 14, 14, 96, 576, 96, 1}, 2);
    chain.push_back({"", 14, 14, 96, 576, 160, 2});
    repeat({"", 7, 7, 160, 960, 160, 1}, 2);
    chain.push_back({"", 7, 7, 160, 960, 320, 1});
    std::vector<std::unique_ptr<Weights>> wts;
    std::vector<std::vector<float>> act{random_input(chain[0])};
    std::vector<std::unique_ptr<Layers>> layers;
    for (const auto& b : chain) {
        wts.push_back(std::make_unique<Weights>(b));
        act.emplace_back(std::size_t(b.ho()) * b.wo() * b.cout);
        layers.push_back(std::make_unique<Layers>(b, *wts.back(), act[act.size() - 2].data(), act.back().data(), pool));
    }
    std::printf("\nthe 16 expanding blocks of MobileNetV2 in a row, threads %d, %d interleaved runs, median us\n", threads, runs);
    for (int r : rows) {
        std::vector<std::unique_ptr<Fused>> fused;
        for (std::size_t k = 0; k < chain.size(); ++k) fused.push_back(std::make_unique<Fused>(chain[k], *wts[k], r, threads));
        auto big = [&](std::size_t k) { return std::size_t(chain[k].h) * chain[k].w * chain[k].e * sizeof(float) >= (1u << 20); };
        std::vector<double> t[3];
        for (int i = -10; i < runs; ++i)
            for (int v = 0; v < 3; ++v) {
                const auto t0 = Clock::now();
                for (std::size_t k = 0; k < chain.size(); ++k) {
                    if (v == 0 || (v == 2 && !big(k))) layers[k]->run(pool);
                    else fused[k]->run(act[k].data(), act[k + 1].data(), pool);
                }
                if (i >= 0) t[v].push_back(micros_since(t0));
            }
        // The chain's output both ways (the same XNNPACK kernels: they should agree exactly).
        for (std::size_t k = 0; k < chain.size(); ++k) layers[k]->run(pool);
        const std::vector<float> ref = act.back();
        for (std::size_t k = 0; k < chain.size(); ++k) fused[k]->run(act[k].data(), act[k + 1].data(), pool);
        float diff = 0.f, top = 0.f;
        for (std::size_t j = 0; j < ref.size(); ++j) {
            diff = std::max(diff, std::fabs(ref[j] - act.back()[j]));
            top = std::max(top, std::fabs(ref[j]));
        }
        std::printf("strips of %d rows: layers %.1f, all fused %.1f, fused where expanded >= 1 MiB %.1f (max |output| %.3g, diff %.3g)\n",
                    r, median(t[0]), median(t[1]), median(t[2]), double(top), double(diff));
    }
}

}  // namespace

int main(int argc, char** argv) {
    const int runs = argc > 1 ? std::atoi(argv[1]) : 200;
    const int threads = argc > 2 ? std::atoi(argv[2]) : 1;
    std::vector<int> rows;
    for (int i = 3; i < argc; ++i) rows.push_back(std::atoi(argv[i]));
    if (rows.empty()) rows = {1, 2, 4, 8};
    if (runs < 1 || threads < 1 || threads > 2) {
        std::fprintf(stderr, "usage: fused_block_bench [RUNS] [THREADS 1|2] [STRIP_ROWS...]\n");
        return 2;
    }
    check(xnn_initialize(nullptr), "xnn_initialize");
    pthreadpool_t pool = threads > 1 ? pthreadpool_create(std::size_t(threads)) : nullptr;
    const std::vector<Block> blocks = {
        {"112x112 16->96->24 s2", 112, 112, 16, 96, 24, 2}, {"56x56 24->144->24 s1", 56, 56, 24, 144, 24, 1},
        {"56x56 24->144->32 s2", 56, 56, 24, 144, 32, 2},   {"28x28 32->192->32 s1", 28, 28, 32, 192, 32, 1},
        {"14x14 64->384->64 s1", 14, 14, 64, 384, 64, 1},   {"7x7 160->960->160 s1", 7, 7, 160, 960, 160, 1},
    };
    time_blocks(blocks, rows, runs, threads, pool);
    time_chain(rows, runs, threads, pool);
    if (pool) pthreadpool_destroy(pool);
    return 0;
}
