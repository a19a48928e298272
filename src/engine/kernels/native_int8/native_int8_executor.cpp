// The native-int8 backend: runs an int8 graph op by op like the reference executor, but with the
// AVX512-VNNI kernels for the int8 convolutions, fully connected layers, additions and the input
// quantization when the CPU has them. Debian's XNNPACK (2022-02) has no VNNI kernels, which leaves
// its int8 MobileNetV2 barely faster than fp32; these kernels produce the reference's bytes.
#include <algorithm>
#include <memory>

#include "buffer_plan.h"
#include "executor.h"
#include "firesight/common/error.h"
#include "kernels/reference/kernels.h"
#include "vnni_kernels.h"
#include "worker_pool.h"

namespace firesight::engine {

namespace {

enum class FastKind { Reference, Gemm1x1, GemmIm2col, FullyConnected, Depthwise, Add, Quantize };

struct OpPlan {
    FastKind kind = FastKind::Reference;
    native::PackedGemm gemm;
    native::PackedDepthwise dw;
    // A depthwise convolution whose only reader is a 1x1 convolution with K % 4 == 0 writes its
    // output as u8 (x + 128), and that convolution reads it as its GEMM rows without a copy.
    bool u8_out = false, u8_in = false;
};

std::int64_t count(const std::vector<std::int32_t>& s) {
    std::int64_t n = 1;
    for (auto d : s) n *= d;
    return n;
}

// Below this many multiply-adds a layer runs on one thread: waking the others and splitting the
// work would cost more than it saves (MobileNetV2's 7x7 depthwise layers, its adds).
constexpr std::int64_t kMinParallelMacs = std::int64_t{1} << 19;
// Chunks per thread: more than one, so that a thread the OS delays (2 cores shared with other
// work) leaves its chunks to the others instead of holding everyone up.
constexpr int kChunksPerThread = 3;
// Rows of a chunk of a split GEMM: a multiple of every row tile (6, 8, 12 rows) gemm_u8s8 uses.
constexpr std::int64_t kGemmRowUnit = 24;
// Output channels of a chunk of a GEMM split by channels: the 4 blocks of 16 its widest tile covers.
constexpr int kGemmBlockUnit = 4;

class NativeInt8Executor : public Executor {
public:
    NativeInt8Executor(const Graph& g, int threads) : g_(g) {
        if (g.inputs.size() != 1) throw Error("native-int8 backend: graphs with " + std::to_string(g.inputs.size()) + " inputs are not supported");
        if (threads < 1) throw Error("native-int8 backend: threads must be at least 1, not " + std::to_string(threads));
        plans_.resize(g.ops.size());
#ifdef FIRESIGHT_HAVE_VNNI_KERNELS
        if (!native::cpu_has_vnni()) return;  // every op on the reference kernels, on one thread
        for (std::size_t i = 0; i < g.ops.size(); ++i) plans_[i] = plan_op(g.ops[i]);
        fuse_u8_handoffs();
        if (threads > 1) pool_ = std::make_unique<native::WorkerPool>(threads);
#endif
    }

    void plan(int batch) override {
        auto planned = detail::plan_buffers(g_, batch);
        shapes_ = std::move(planned.shapes);
        buffers_ = std::move(planned.storage);  // moving keeps every buffer where data_ points
        data_ = std::move(planned.data);
        // Scratch for the largest u8 row matrix and padded depthwise input of any layer.
        std::size_t rows = 0, padded = 0;
        for (std::size_t i = 0; i < g_.ops.size(); ++i) {
            const Op& op = g_.ops[i];
            const auto& p = plans_[i];
            const auto& xs = shapes_[static_cast<std::size_t>(op.inputs[0])];
            const auto& ys = shapes_[static_cast<std::size_t>(op.outputs[0])];
            if (p.kind == FastKind::GemmIm2col || p.kind == FastKind::Gemm1x1 || p.kind == FastKind::FullyConnected) {
                const std::int64_t M = p.kind == FastKind::FullyConnected ? xs[0] : count(ys) / ys.back();
                rows = std::max(rows, static_cast<std::size_t>(M * p.gemm.Kp));
            } else if (p.kind == FastKind::Depthwise) {
                padded = std::max(padded, static_cast<std::size_t>(xs[0]) * static_cast<std::size_t>(xs[1] + op.pad_top + op.pad_bottom) *
                                              static_cast<std::size_t>(xs[2] + op.pad_left + op.pad_right) * static_cast<std::size_t>(xs[3]));
            }
        }
        rows_.assign(rows, 0);
        padded_.assign(padded, 0);
    }

    void run(const float* input, std::vector<const float*>& outputs) override {
        data_[static_cast<std::size_t>(g_.inputs[0])] = const_cast<float*>(input);
        for (std::size_t i = 0; i < g_.ops.size(); ++i) run_op(g_.ops[i], plans_[i]);
        outputs.clear();
        for (auto o : g_.outputs) outputs.push_back(static_cast<const float*>(data_[static_cast<std::size_t>(o)]));
    }

private:
    const Tensor& tensor(std::int32_t i) const { return g_.tensors[static_cast<std::size_t>(i)]; }

    bool split_worthwhile(std::int64_t macs) const { return pool_ && macs >= kMinParallelMacs; }

    // body(begin, end) over [0, n) in chunks of whole units, on every thread of the pool.
    template <class Body>
    void parallel_ranges(std::int64_t n, std::int64_t unit, const Body& body) {
        const std::int64_t parts = static_cast<std::int64_t>(pool_->threads()) * kChunksPerThread;
        const std::int64_t step = std::max<std::int64_t>(1, ((n + parts - 1) / parts + unit - 1) / unit) * unit;
        auto chunk = [&](int i) {
            const std::int64_t begin = static_cast<std::int64_t>(i) * step;
            body(begin, std::min(n, begin + step));
        };
        pool_->run(static_cast<int>((n + step - 1) / step), chunk);
    }

#ifdef FIRESIGHT_HAVE_VNNI_KERNELS
    void fuse_u8_handoffs() {
        std::vector<int> readers(g_.tensors.size(), 0), reader_op(g_.tensors.size(), -1);
        for (std::size_t i = 0; i < g_.ops.size(); ++i)
            for (auto t : g_.ops[i].inputs)
                if (t >= 0) {
                    ++readers[static_cast<std::size_t>(t)];
                    reader_op[static_cast<std::size_t>(t)] = static_cast<int>(i);
                }
        for (auto t : g_.outputs) readers[static_cast<std::size_t>(t)] += 2;  // never hand a graph output over
        for (std::size_t i = 0; i < g_.ops.size(); ++i) {
            if (plans_[i].kind != FastKind::Depthwise) continue;
            const auto t = static_cast<std::size_t>(g_.ops[i].outputs[0]);
            if (readers[t] != 1) continue;
            auto& next = plans_[static_cast<std::size_t>(reader_op[t])];
            if (next.kind != FastKind::Gemm1x1 || next.gemm.K % 4 != 0 || g_.ops[static_cast<std::size_t>(reader_op[t])].inputs[0] != static_cast<std::int32_t>(t))
                continue;
            plans_[i].u8_out = true;
            next.u8_in = true;
        }
    }

    OpPlan plan_op(const Op& op) const {
        OpPlan p;
        if (op.inputs.empty() || op.outputs.empty()) return p;
        const Tensor& x = tensor(op.inputs[0]);
        const Tensor& y = tensor(op.outputs[0]);
        if (op.kind == OpKind::Quantize && y.dtype == DType::I8 && x.dtype == DType::F32) {
            p.kind = FastKind::Quantize;
            return p;
        }
        if (x.dtype != DType::I8 || y.dtype != DType::I8) return p;
        if (op.kind == OpKind::Add) {
            p.kind = FastKind::Add;
            return p;
        }
        const bool weighted = op.kind == OpKind::Conv2D || op.kind == OpKind::DepthwiseConv2D || op.kind == OpKind::FullyConnected;
        if (!weighted || op.inputs.size() < 2) return p;
        const Tensor& w = tensor(op.inputs[1]);
        if (!w.constant || w.dtype != DType::I8) return p;
        const std::int32_t* bias = nullptr;
        if (op.inputs.size() > 2 && op.inputs[2] >= 0) {
            const Tensor& b = tensor(op.inputs[2]);
            if (!b.constant || b.dtype != DType::I32) return p;
            bias = b.data_i32();
        }
        const auto& ws = w.shape;
        if (op.kind == OpKind::Conv2D && op.groups == 1 && ws.size() == 4) {
            const int O = ws[0], KH = ws[1], KW = ws[2], C = ws[3];
            p.gemm = native::pack_gemm(w.data_i8(), O, KH * KW * C, w.quant.scale, bias, x.quant, y.quant, op.activation);
            const bool direct = KH == 1 && KW == 1 && op.stride_h == 1 && op.stride_w == 1 && op.pad_top == 0 &&
                                op.pad_left == 0 && op.pad_bottom == 0 && op.pad_right == 0;
            p.kind = direct ? FastKind::Gemm1x1 : FastKind::GemmIm2col;
        } else if (op.kind == OpKind::DepthwiseConv2D && op.depth_multiplier == 1 && ws.size() == 4) {
            p.dw = native::pack_depthwise(w.data_i8(), ws[1], ws[2], ws[3], w.quant.scale, bias, x.quant, y.quant, op.activation);
            p.kind = FastKind::Depthwise;
        } else if (op.kind == OpKind::FullyConnected && ws.size() == 2) {
            p.gemm = native::pack_gemm(w.data_i8(), ws[0], ws[1], w.quant.scale, bias, x.quant, y.quant, op.activation);
            p.kind = FastKind::FullyConnected;
        }
        return p;
    }

#endif

    void run_op(const Op& op, const OpPlan& p) {
        if (p.kind == FastKind::Reference) {
            ref::run_op(g_, op, shapes_, data_);
            return;
        }
#ifdef FIRESIGHT_HAVE_VNNI_KERNELS
        const auto xi = static_cast<std::size_t>(op.inputs[0]), yi = static_cast<std::size_t>(op.outputs[0]);
        const auto& xs = shapes_[xi];
        const auto& ys = shapes_[yi];
        auto* y = static_cast<std::int8_t*>(data_[yi]);
        const auto* x = static_cast<const std::int8_t*>(data_[xi]);
        switch (p.kind) {
            case FastKind::Quantize: {
                const auto& q = tensor(op.outputs[0]).quant;
                native::quantize(static_cast<const float*>(data_[xi]), y, count(ys), q.scale[0], q.zero_point[0]);
                break;
            }
            case FastKind::Add: {
                const auto bi = static_cast<std::size_t>(op.inputs[1]);
                native::add_q8(op, x, tensor(op.inputs[0]).quant, static_cast<const std::int8_t*>(data_[bi]), tensor(op.inputs[1]).quant, y,
                               tensor(op.outputs[0]).quant, count(ys));
                break;
            }
            case FastKind::Gemm1x1:
            case FastKind::GemmIm2col:
            case FastKind::FullyConnected: run_gemm(op, p, x, xs, y, ys); break;
            case FastKind::Depthwise: {
                const std::int64_t out_rows = static_cast<std::int64_t>(ys[0]) * ys[1];
                if (!split_worthwhile(out_rows * ys[2] * ys[3] * p.dw.KH * p.dw.KW)) {
                    native::depthwise_q8(op, p.dw, x, xs, y, ys, padded_.data(), p.u8_out);
                    break;
                }
                // Every output row reads several padded rows, so all of them are written first.
                parallel_ranges(native::depthwise_padded_rows(op, xs), 1, [&](std::int64_t b, std::int64_t e) {
                    native::depthwise_pad(op, p.dw, x, xs, padded_.data(), b, e);
                });
                parallel_ranges(out_rows, 1, [&](std::int64_t b, std::int64_t e) {
                    native::depthwise_rows(op, p.dw, xs, y, ys, padded_.data(), p.u8_out, b, e);
                });
                break;
            }
            case FastKind::Reference: break;
        }
#endif
    }

#ifdef FIRESIGHT_HAVE_VNNI_KERNELS
    // A 1x1 / im2col convolution or a fully connected layer: its u8 rows (converted from x unless
    // a depthwise handed them over), then the packed GEMM. Split across threads by rows, each
    // thread converting the rows it multiplies, or, with too few rows for every thread, by output
    // channels once all rows are converted.
    void run_gemm(const Op& op, const OpPlan& p, const std::int8_t* x, const ref::Shape& xs, std::int8_t* y, const ref::Shape& ys) {
        const bool fc = p.kind == FastKind::FullyConnected;
        const std::int64_t M = fc ? xs[0] : count(ys) / ys.back();
        const std::int64_t y_stride = fc ? p.gemm.O : ys.back();
        const std::int64_t a_stride = p.u8_in ? p.gemm.K : p.gemm.Kp;
        const std::uint8_t* a = p.u8_in ? reinterpret_cast<const std::uint8_t*>(x) : rows_.data();
        auto convert = [&](std::int64_t begin, std::int64_t end) {
            if (p.u8_in) return;
            if (p.kind == FastKind::GemmIm2col) {
                const auto& ws = tensor(op.inputs[1]).shape;
                native::im2col_u8(op, x, xs, tensor(op.inputs[0]).quant.zero_point[0], ws[1], ws[2], ys, rows_.data(), p.gemm.Kp, begin, end);
            } else {
                native::to_u8_rows(x + begin * p.gemm.K, end - begin, p.gemm.K, p.gemm.K, rows_.data() + begin * p.gemm.Kp, p.gemm.Kp);
            }
        };
        auto multiply = [&](std::int64_t begin, std::int64_t end) {
            native::gemm_u8s8(p.gemm, a + begin * a_stride, end - begin, a_stride, y + begin * y_stride, y_stride);
        };
        const int blocks = native::gemm_blocks(p.gemm);
        const int threads = pool_ ? pool_->threads() : 1;
        if (!split_worthwhile(M * p.gemm.Kp * p.gemm.O)) {
            convert(0, M);
            multiply(0, M);
        } else if (M >= 2 * kGemmRowUnit * threads) {
            parallel_ranges(M, kGemmRowUnit, [&](std::int64_t b, std::int64_t e) {
                convert(b, e);
                multiply(b, e);
            });
        } else if (blocks > kGemmBlockUnit) {
            convert(0, M);
            parallel_ranges(blocks, kGemmBlockUnit, [&](std::int64_t b, std::int64_t e) {
                native::gemm_u8s8_blocks(p.gemm, a, M, a_stride, y, y_stride, static_cast<int>(b), static_cast<int>(e));
            });
        } else {
            convert(0, M);
            multiply(0, M);
        }
    }
#endif

    const Graph& g_;
    std::vector<OpPlan> plans_;
    std::vector<std::vector<std::int32_t>> shapes_;
    std::vector<std::vector<float>> buffers_;
    std::vector<void*> data_;
    std::vector<std::uint8_t> rows_;
    std::vector<std::int8_t> padded_;
    std::unique_ptr<native::WorkerPool> pool_;  // only with more than one thread
};

}  // namespace

std::unique_ptr<Executor> make_native_int8_executor(const Graph& g, int threads) {
    return std::make_unique<NativeInt8Executor>(g, threads);
}

}  // namespace firesight::engine
