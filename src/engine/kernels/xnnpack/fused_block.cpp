// See fused_block.h. Each worker owns its three operators and two strip buffers: ebuf_ holds the
// expanded rows one strip of output rows needs (zero rows where the depthwise would pad above or
// below the image), dbuf_ the strip's depthwise output. The depthwise always reads all of ebuf_ and
// writes all of dbuf_, so it is set up once and XNNPACK builds its indirection buffer once; the 1x1
// convolutions are GEMMs over contiguous rows and are set up per strip, which is cheap.
#include "fused_block.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

#include "../../ops/op_def.h"
#include "firesight/common/error.h"

namespace firesight::engine {

namespace {

// Output rows per strip. 1, 2 and 4 were within noise of each other on MobileNetV2's blocks
// (docs/fused-blocks.md); 2 keeps the strip of a 56x56x144 block at 4 x 32 KiB.
constexpr int kStripRows = 2;

// XNNPACK may read (never write) up to XNN_EXTRA_BYTES past the end of an operator's input.
constexpr std::size_t kReadSlack = XNN_EXTRA_BYTES / sizeof(float);

void check(xnn_status s, const char* what) {
    if (s != xnn_status_success) throw Error(std::string("xnnpack fused block: ") + what + " failed (status " + std::to_string(int(s)) + ")");
}

const Tensor& tensor(const Graph& g, std::int32_t i) { return g.tensors[static_cast<std::size_t>(i)]; }

const float* bias_of(const Graph& g, const Op& op) {
    return op.inputs.size() > 2 && op.inputs[2] >= 0 ? static_cast<const float*>(tensor(g, op.inputs[2]).bytes()) : nullptr;
}

bool f32_weights(const Graph& g, const Op& op) {
    if (op.inputs.size() < 2 || tensor(g, op.inputs[0]).dtype != DType::F32) return false;
    const auto& w = tensor(g, op.inputs[1]);
    const bool bias_ok = op.inputs.size() < 3 || op.inputs[2] < 0 || tensor(g, op.inputs[2]).constant;
    return w.constant && w.dtype == DType::F32 && w.shape.size() == 4 && bias_ok;
}

bool unpadded(const Op& op) { return op.pad_top == 0 && op.pad_bottom == 0 && op.pad_left == 0 && op.pad_right == 0; }

bool is_pointwise(const Graph& g, const Op& op) {
    if (op.kind != OpKind::Conv2D || !f32_weights(g, op)) return false;
    const auto& w = tensor(g, op.inputs[1]).shape;
    return w[1] == 1 && w[2] == 1 && op.stride_h == 1 && op.stride_w == 1 && op.dilation_h == 1 && op.dilation_w == 1 &&
           op.groups == 1 && unpadded(op);
}

bool is_depthwise3x3(const Graph& g, const Op& op) {
    if (op.kind != OpKind::DepthwiseConv2D || !f32_weights(g, op)) return false;
    const auto& w = tensor(g, op.inputs[1]).shape;
    return w[0] == 1 && w[1] == 3 && w[2] == 3 && op.depth_multiplier == 1 && op.dilation_h == 1 && op.dilation_w == 1 &&
           op.stride_h == op.stride_w && (op.stride_h == 1 || op.stride_h == 2);
}

}  // namespace

std::pair<float, float> activation_bounds(Activation a) {
    const float inf = std::numeric_limits<float>::infinity();
    switch (a) {
        case Activation::None: return {-inf, inf};
        case Activation::Relu: return {0.f, inf};
        case Activation::Relu6: return {0.f, 6.f};
    }
    return {-inf, inf};
}

std::vector<FusedBlockOps> find_fused_blocks(const Graph& g, const std::vector<std::vector<std::int32_t>>& shapes,
                                             std::size_t min_expanded_bytes) {
    std::vector<int> readers(g.tensors.size(), 0);
    for (const auto& op : g.ops)
        for (auto t : op.inputs)
            if (t >= 0) ++readers[static_cast<std::size_t>(t)];
    for (auto t : g.outputs) readers[static_cast<std::size_t>(t)] += 2;  // an output is never internal
    // The value `op` writes is read once, by `next`, as its first input.
    auto feeds = [&](const Op& op, const Op& next) {
        return next.inputs[0] == op.outputs[0] && readers[static_cast<std::size_t>(op.outputs[0])] == 1;
    };
    std::vector<FusedBlockOps> found;
    for (std::size_t i = 0; i + 2 < g.ops.size(); ++i) {
        const Op &e = g.ops[i], &d = g.ops[i + 1], &p = g.ops[i + 2];
        if (!is_pointwise(g, e) || !is_depthwise3x3(g, d) || !is_pointwise(g, p) || !feeds(e, d) || !feeds(d, p)) continue;
        const auto& expanded = shapes[static_cast<std::size_t>(e.outputs[0])];
        if (static_cast<std::size_t>(ops::product(expanded, 1)) * sizeof(float) < min_expanded_bytes) continue;  // per image
        FusedBlockOps b{int(i), int(i + 1), int(i + 2), -1, e.inputs[0], p.outputs[0]};
        if (i + 3 < g.ops.size()) {
            const Op& a = g.ops[i + 3];
            const auto y = p.outputs[0];
            const bool residual = a.kind == OpKind::Add && readers[static_cast<std::size_t>(y)] == 1 &&
                                  ((a.inputs[0] == y && a.inputs[1] == b.in_tensor) || (a.inputs[1] == y && a.inputs[0] == b.in_tensor)) &&
                                  shapes[static_cast<std::size_t>(y)] == shapes[static_cast<std::size_t>(b.in_tensor)];
            if (residual) {
                b.add = int(i + 3);
                b.out_tensor = a.outputs[0];
            }
        }
        found.push_back(b);
        i = static_cast<std::size_t>(b.last());
    }
    return found;
}

class FusedBlock::Worker {
public:
    Worker(const Shape& s, const Graph& g, const FusedBlockOps& ops)
        : s_(s), hb_((kStripRows - 1) * s.stride + 3), row_e_(std::size_t(s.w) * s.e),
          ebuf_(std::size_t(hb_) * row_e_ + kReadSlack), dbuf_(std::size_t(kStripRows) * s.wo * s.e + kReadSlack) {
        const Op &e = g.ops[std::size_t(ops.expand)], &d = g.ops[std::size_t(ops.depthwise)], &p = g.ops[std::size_t(ops.project)];
        auto [elo, ehi] = activation_bounds(e.activation);
        check(xnn_create_convolution2d_nhwc_f32(0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, s.cin, s.e, s.cin, s.e, weights(g, e), bias_of(g, e),
                                                elo, ehi, 0, &expand_),
              "create expand");
        // Top and bottom padding are the zero rows of ebuf_; left and right stay the operator's.
        auto [dlo, dhi] = activation_bounds(d.activation);
        check(xnn_create_convolution2d_nhwc_f32(0, d.pad_right, 0, d.pad_left, 3, 3, s.stride, s.stride, 1, 1, s.e, 1, 1, s.e, s.e,
                                                weights(g, d), bias_of(g, d), dlo, dhi, XNN_FLAG_DEPTHWISE_CONVOLUTION, &dw_),
              "create depthwise");
        auto [plo, phi] = activation_bounds(p.activation);
        check(xnn_create_convolution2d_nhwc_f32(0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, s.e, s.cout, s.e, s.cout, weights(g, p), bias_of(g, p),
                                                plo, phi, 0, &project_),
              "create project");
        check(xnn_setup_convolution2d_nhwc_f32(dw_, 1, std::size_t(hb_), std::size_t(s.w), ebuf_.data(), dbuf_.data(), nullptr),
              "setup depthwise");
    }
    ~Worker() {
        for (auto op : {expand_, dw_, project_})
            if (op) xnn_delete_operator(op);
    }
    Worker(const Worker&) = delete;
    Worker& operator=(const Worker&) = delete;

    static int strips_per_image(const Shape& s) { return (s.ho + kStripRows - 1) / kStripRows; }

    // Strips [k0, k1), numbered across the batch.
    void run(const float* in, float* out, int k0, int k1) {
        const int per_image = strips_per_image(s_);
        int image = -1, have_lo = 0, have_hi = 0;  // the image rows [have_lo, have_hi) of ebuf_
        for (int k = k0; k < k1; ++k) {
            const int n = k / per_image, o0 = (k % per_image) * kStripRows;
            const float* x = in + std::size_t(n) * s_.h * s_.w * s_.cin;
            const int r0 = o0 * s_.stride - s_.pad_top;  // the image row of ebuf_'s first row
            int from = r0;
            if (n == image && have_hi > r0) {  // rows the previous strip expanded: moved, not recomputed
                std::memmove(ebuf_.data(), ebuf_.data() + std::size_t(r0 - have_lo) * row_e_,
                             std::size_t(have_hi - r0) * row_e_ * sizeof(float));
                from = have_hi;
            }
            fill_rows(x, r0, from, r0 + hb_);
            image = n;
            have_lo = r0;
            have_hi = r0 + hb_;
            check(xnn_run_operator(dw_, nullptr), "run depthwise");
            finish_strip(x, out + std::size_t(n) * s_.ho * s_.wo * s_.cout, o0);
        }
    }

private:
    static const float* weights(const Graph& g, const Op& op) { return static_cast<const float*>(tensor(g, op.inputs[1]).bytes()); }

    // Image rows [from, to) into ebuf_ (image row r at ebuf_ row r - r0): expanded inside the
    // image, zero above and below it.
    void fill_rows(const float* x, int r0, int from, int to) {
        const int lo = std::max(from, 0), hi = std::min(to, s_.h);
        for (int r = from; r < std::min(to, lo); ++r) zero_row(r - r0);
        if (hi > lo) {
            check(xnn_setup_convolution2d_nhwc_f32(expand_, 1, std::size_t(hi - lo), std::size_t(s_.w), x + std::size_t(lo) * s_.w * s_.cin,
                                                   ebuf_.data() + std::size_t(lo - r0) * row_e_, nullptr),
                  "setup expand");
            check(xnn_run_operator(expand_, nullptr), "run expand");
        }
        for (int r = std::max(from, hi); r < to; ++r) zero_row(r - r0);
    }
    void zero_row(int j) { std::fill_n(ebuf_.data() + std::size_t(j) * row_e_, row_e_, 0.f); }

    // The strip's output rows from o0: project dbuf_'s valid rows, then add the block's input.
    void finish_strip(const float* x, float* out, int o0) {
        const int rows = std::min(kStripRows, s_.ho - o0);
        float* y = out + std::size_t(o0) * s_.wo * s_.cout;
        check(xnn_setup_convolution2d_nhwc_f32(project_, 1, std::size_t(rows), std::size_t(s_.wo), dbuf_.data(), y, nullptr),
              "setup project");
        check(xnn_run_operator(project_, nullptr), "run project");
        if (!s_.residual) return;
        const float* r = x + std::size_t(o0) * s_.wo * s_.cout;  // same shape as the output
        const std::size_t n = std::size_t(rows) * s_.wo * s_.cout;
        for (std::size_t i = 0; i < n; ++i) y[i] = std::min(std::max(y[i] + r[i], s_.add_lo), s_.add_hi);
    }

    Shape s_;
    int hb_;
    std::size_t row_e_;
    std::vector<float> ebuf_, dbuf_;
    xnn_operator_t expand_ = nullptr, dw_ = nullptr, project_ = nullptr;
};

FusedBlock::FusedBlock(const Graph& g, const std::vector<std::vector<std::int32_t>>& shapes, const FusedBlockOps& ops, int workers) {
    const auto& xs = shapes[std::size_t(ops.in_tensor)];
    const auto& es = shapes[std::size_t(g.ops[std::size_t(ops.expand)].outputs[0])];
    const auto& ys = shapes[std::size_t(ops.out_tensor)];
    const Op& d = g.ops[std::size_t(ops.depthwise)];
    const auto [alo, ahi] = activation_bounds(ops.add >= 0 ? g.ops[std::size_t(ops.add)].activation : Activation::None);
    s_ = {xs[0], xs[1], xs[2], xs[3], es[3], ys[3], ys[1], ys[2], d.stride_h, d.pad_top, ops.add >= 0, alo, ahi};
    for (int i = 0; i < std::max(workers, 1); ++i) workers_.push_back(std::make_unique<Worker>(s_, g, ops));
}

FusedBlock::~FusedBlock() = default;

void FusedBlock::run(const float* in, float* out, pthreadpool_t pool) {
    in_ = in;
    out_ = out;
    if (workers_.size() == 1 || !pool) return workers_[0]->run(in, out, 0, s_.batch * Worker::strips_per_image(s_));
    // One item per worker, each a contiguous run of strips: the pool's join is the only
    // synchronisation in the block (layer by layer, XNNPACK joins after every operator).
    pthreadpool_parallelize_1d(pool, &FusedBlock::task, this, workers_.size(), 0);
}

void FusedBlock::task(void* self, std::size_t i) {
    auto* b = static_cast<FusedBlock*>(self);
    const int total = b->s_.batch * Worker::strips_per_image(b->s_), n = int(b->workers_.size());
    const int per = (total + n - 1) / n, k0 = std::min(total, int(i) * per);
    b->workers_[i]->run(b->in_, b->out_, k0, std::min(total, k0 + per));
}

}  // namespace firesight::engine
