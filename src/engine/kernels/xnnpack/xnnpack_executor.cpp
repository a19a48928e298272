// The XNNPACK backend (f32 and int8): the IR graph becomes one XNNPACK subgraph (XNNPACK fuses and picks
// its own micro-kernels), run on a pthreadpool with the requested number of threads. With fusion on
// (the xnnpack-fused backend), the f32 inverted-residual blocks find_fused_blocks() picks run as
// FusedBlocks (fused_block.h) and the ops between them as one subgraph per run of ops.
#include <xnnpack.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <mutex>
#include <optional>

#include "../../executor.h"
#include "../../ops/op_def.h"
#include "firesight/common/error.h"
#include "fused_block.h"

namespace firesight::engine {
namespace {

void check(xnn_status s, const std::string& what) {
    if (s != xnn_status_success) throw Error("xnnpack backend: " + what + " failed (status " + std::to_string(static_cast<int>(s)) + ")");
}

void init_xnnpack() {
    static std::once_flag once;
    static xnn_status status = xnn_status_success;
    std::call_once(once, [] { status = xnn_initialize(nullptr); });
    check(status, "xnn_initialize (is the CPU supported?)");
}

}  // namespace

// The ops this backend takes: the XNNPACK (2022-02) subgraph nodes build() defines below. f32 and
// int8 alike for the layers, pooling, reshapes and conversions; f32 only for the rest (the
// validator already refuses their int8 forms).
bool xnnpack_supports(const Graph& g, const Op& op, std::string& why) {
    switch (op.kind) {
        case OpKind::Conv2D: case OpKind::DepthwiseConv2D: case OpKind::Add: case OpKind::GlobalAveragePool:
        case OpKind::Relu: case OpKind::Relu6: case OpKind::Reshape: case OpKind::Identity: case OpKind::Quantize:
        case OpKind::Dequantize: case OpKind::HardSwish:
            break;
        case OpKind::FullyConnected: {
            const auto& w = g.tensors[static_cast<std::size_t>(op.inputs[1])];
            if (w.dtype == DType::I8 && w.quant.scale.size() != 1) {
                why = "this XNNPACK has no per-channel int8 fully connected layer";
                return false;
            }
            break;
        }
        case OpKind::Softmax:
            if (op.beta != 1.0f) {
                why = "softmax with beta != 1 is not supported";
                return false;
            }
            break;
        default:
            why = "not supported (optimize the graph or use the reference backend)";
            return false;
    }
    if (op.activation != Activation::None &&
        !(op.kind == OpKind::Conv2D || op.kind == OpKind::DepthwiseConv2D || op.kind == OpKind::Add ||
          op.kind == OpKind::FullyConnected || op.kind == OpKind::GlobalAveragePool)) {
        why = std::string("a fused ") + activation_name(op.activation) + " on " + op_kind_name(op.kind) + " is not supported";
        return false;
    }
    return true;
}

namespace {

class XnnpackExecutor : public Executor {
    // A run of ops [first, last) compiled as one XNNPACK subgraph, its external values `ext` (the
    // `inputs` it reads, then the values it writes that a later stage or the caller reads); or one
    // fused block (ext = {its input, its output}).
    struct Stage {
        int first = 0, last = 0;
        std::vector<std::int32_t> ext;
        std::size_t inputs = 0;
        xnn_runtime_t runtime = nullptr;
        std::optional<FusedBlockOps> fused;
        std::unique_ptr<FusedBlock> block;
    };

public:
    XnnpackExecutor(const Graph& g, int threads, bool sparse, std::size_t fuse_min_bytes)
        : g_(g), sparse_(sparse), fuse_min_bytes_(fuse_min_bytes), threads_(threads) {
        init_xnnpack();
        if (g.inputs.size() != 1) throw Error("xnnpack backend: graphs with " + std::to_string(g.inputs.size()) + " inputs are not supported");
        for (std::size_t i = 0; i < g.ops.size(); ++i) {
            std::string why;
            if (!xnnpack_supports(g, g.ops[i], why))
                throw Error("xnnpack backend: op " + std::to_string(i) + " (" + op_kind_name(g.ops[i].kind) + "): " + why);
        }
        for (auto o : g.outputs)
            if (g.tensors[static_cast<std::size_t>(o)].constant) throw Error("xnnpack backend: constant graph outputs are not supported");
        if (threads > 1) {
            pool_ = pthreadpool_create(static_cast<std::size_t>(threads));
            if (!pool_) throw Error("xnnpack backend: cannot create a thread pool of " + std::to_string(threads));
        }
    }
    ~XnnpackExecutor() override {
        clear();
        if (pool_) pthreadpool_destroy(pool_);
    }

    void plan(int batch) override {
        clear();
        const auto shapes = infer_shapes(g_, batch);
        const auto blocks = fuse_min_bytes_ == kNoFusion ? std::vector<FusedBlockOps>{} : find_fused_blocks(g_, shapes, fuse_min_bytes_);
        split_stages(blocks);
        for (auto& st : stages_) {
            if (st.fused) continue;
            xnn_subgraph_t sg = nullptr;
            check(xnn_create_subgraph(static_cast<std::uint32_t>(st.ext.size()), 0, &sg), "xnn_create_subgraph");
            try {
                build(sg, shapes, st);
            } catch (...) {
                xnn_delete_subgraph(sg);
                throw;
            }
            // The sparse hint only asks: XNNPACK (0.0~git20220216, xnn_subgraph_rewrite_for_nchw in
            // src/subgraph.c) switches a cluster of nodes to NCHW with sparse 1x1 kernels when
            //  - the CPU has its CHW kernels enabled: any ARM, but on x86 only CPUs WITHOUT AVX (its
            //    sparse kernels are SSE-only and lose to the dense AVX ones): on an AVX PC the hint
            //    changes nothing, on a Jetson / Raspberry Pi it can;
            //  - the graph is f32;
            //  - the cluster starts at a 3x3 stride-2 conv with exactly 3 input channels, groups 1,
            //    dilation 1 and padding 1 on all four sides (NHWC -> NCHW), and ends at a global
            //    average pool (NCHW -> NHWC); the graph input may feed only that first conv;
            //  - every node in between is NCHW-capable: 1x1 convs with stride 1, no padding, groups 1;
            //    depthwise 3x3 (padding 1) or 5x5 (padding 2) with stride 1 or 2, multiplier 1,
            //    symmetric padding; add/multiply of 4-D tensors; clamp and other 4-D elementwise ops;
            //    and no value in the cluster is read by a node outside it or is a graph output;
            //  - over all 1x1 convs of the cluster, zeros * 3 > weights * 2 (more than 2/3 exact zeros;
            //    a fully connected layer does not count and ends nothing: it comes after the pool).
            // TF SAME padding of a stride-2 conv on an even size is asymmetric (0 top/left, 1
            // bottom/right), so MobileNetV2 at 224x224 (imported from TFLite, or converted from the
            // libtorch model, which keeps SAME padding) never qualifies. At an input size of 32k + 1
            // (e.g. 225) every stride-2 SAME pad is 1 on each side and, pruned enough, it does.
            // With fused blocks the graph is cut into several subgraphs and none holds such a cluster.
            const std::uint32_t flags = sparse_ ? XNN_FLAG_HINT_SPARSE_INFERENCE : 0;
            const auto status = xnn_create_runtime_v2(sg, pool_, flags, &st.runtime);
            xnn_delete_subgraph(sg);
            check(status, "xnn_create_runtime_v2");
        }
        for (auto& st : stages_)
            if (st.fused) st.block = std::make_unique<FusedBlock>(g_, shapes, *st.fused, std::max(threads_, 1));
        place_values(shapes);
        last_input_ = nullptr;
    }

    void run(const float* input, std::vector<const float*>& outputs) override {
        if (input != last_input_) {
            // Setting up is only needed when a pointer changes, so a steady loop over one
            // buffer pays nothing for it.
            for (auto& st : stages_) {
                if (st.block) continue;
                std::vector<xnn_external_value> ext;
                for (std::size_t k = 0; k < st.ext.size(); ++k) ext.push_back({static_cast<std::uint32_t>(k), value_ptr(st.ext[k], input)});
                check(xnn_setup_runtime(st.runtime, ext.size(), ext.data()), "xnn_setup_runtime");
            }
            last_input_ = input;
        }
        for (auto& st : stages_) {
            if (st.block)
                st.block->run(value_ptr(st.ext[0], input), value_ptr(st.ext[1], input), pool_);
            else
                check(xnn_invoke_runtime(st.runtime), "xnn_invoke_runtime");
        }
        outputs.clear();
        for (const auto& b : out_buf_) outputs.push_back(b.data());
    }

private:
    // Defines ops [seg.first, seg.last) in `sg`, seg.ext as its external values.
    void build(xnn_subgraph_t sg, const std::vector<std::vector<std::int32_t>>& shapes, const Stage& seg) {
        std::vector<std::uint32_t> id(g_.tensors.size(), XNN_INVALID_VALUE_ID);
        auto dims_of = [](const std::vector<std::int32_t>& s) {
            std::vector<std::size_t> d;
            for (auto v : s) d.push_back(static_cast<std::size_t>(v));
            return d;
        };
        // int8 graphs use the same node definitions as f32 ones; only the values differ: i8
        // activations are qint8 (one scale and zero point), conv/depthwise filters and their
        // biases are channelwise qcint8/qcint32 (XNNPACK then picks its qc8 operators), fully
        // connected filters and biases are per-tensor qint8/qint32 (its only qs8 fully connected).
        struct Channelwise {
            std::size_t dim = 0;
            std::int32_t channels = 0;
        };
        std::map<std::int32_t, Channelwise> channelwise;
        for (const auto& op : g_.ops) {
            if ((op.kind != OpKind::Conv2D && op.kind != OpKind::DepthwiseConv2D) ||
                g_.tensors[static_cast<std::size_t>(op.inputs[0])].dtype != DType::I8)
                continue;
            const auto& w = g_.tensors[static_cast<std::size_t>(op.inputs[1])].shape;
            const std::size_t dim = op.kind == OpKind::Conv2D ? 0 : 3;
            channelwise[op.inputs[1]] = {dim, w[dim]};
            if (op.inputs.size() > 2 && op.inputs[2] >= 0) channelwise[op.inputs[2]] = {0, w[dim]};
        }
        auto define_as = [&](const std::vector<std::int32_t>& shape, DType dtype, const Quantization& q, const Channelwise* cw,
                             const void* data, std::uint32_t ext, std::uint32_t flags) {
            const auto d = dims_of(shape);
            std::uint32_t v = XNN_INVALID_VALUE_ID;
            if (dtype == DType::F32) {
                check(xnn_define_tensor_value(sg, xnn_datatype_fp32, d.size(), d.data(), data, ext, flags, &v), "xnn_define_tensor_value");
            } else if (cw) {
                // XNNPACK keeps the pointer to the scales until the runtime is created.
                scales_.emplace_back(static_cast<std::size_t>(cw->channels), q.scale[0]);
                if (q.scale.size() > 1) scales_.back() = q.scale;
                check(xnn_define_channelwise_quantized_tensor_value(sg, dtype == DType::I8 ? xnn_datatype_qcint8 : xnn_datatype_qcint32,
                                                                    scales_.back().data(), d.size(), cw->dim, d.data(), data, ext,
                                                                    flags, &v),
                      "xnn_define_channelwise_quantized_tensor_value");
            } else {
                if (q.scale.size() != 1) throw Error("xnnpack backend: this XNNPACK has no per-channel int8 fully connected layer");
                check(xnn_define_quantized_tensor_value(sg, dtype == DType::I8 ? xnn_datatype_qint8 : xnn_datatype_qint32,
                                                        q.zero_point[0], q.scale[0], d.size(), d.data(), data, ext, flags, &v),
                      "xnn_define_quantized_tensor_value");
            }
            return v;
        };
        auto define_tensor = [&](std::size_t i, const std::vector<std::int32_t>& shape, std::uint32_t ext, std::uint32_t flags) {
            const auto& t = g_.tensors[i];
            const auto it = channelwise.find(static_cast<std::int32_t>(i));
            return define_as(shape, t.dtype, t.quant, it == channelwise.end() ? nullptr : &it->second,
                             t.constant ? t.bytes() : nullptr, ext, flags);
        };
        static const Quantization kFloat;
        auto define = [&](const std::vector<std::int32_t>& shape, const void* data, std::uint32_t ext, std::uint32_t flags) {
            return define_as(shape, DType::F32, kFloat, nullptr, data, ext, flags);
        };
        // A graph output also read by a later op is fine: XNNPACK lets external outputs feed nodes.
        for (std::size_t k = 0; k < seg.ext.size(); ++k) {
            const auto t = static_cast<std::size_t>(seg.ext[k]);
            if (id[t] != XNN_INVALID_VALUE_ID) throw Error("xnnpack backend: a tensor is both input and output, or listed twice");
            const bool out = k >= seg.inputs;
            id[t] = define_tensor(t, shapes[t], static_cast<std::uint32_t>(k), out ? XNN_VALUE_FLAG_EXTERNAL_OUTPUT : XNN_VALUE_FLAG_EXTERNAL_INPUT);
        }
        auto value = [&](std::int32_t t) {
            const auto i = static_cast<std::size_t>(t);
            if (id[i] == XNN_INVALID_VALUE_ID) id[i] = define_tensor(i, shapes[i], XNN_INVALID_VALUE_ID, 0);
            return id[i];
        };
        auto bias_for = [&](const Op& op, std::int32_t channels) {
            if (op.inputs.size() > 2 && op.inputs[2] >= 0) return value(op.inputs[2]);
            zeros_.emplace_back(static_cast<std::size_t>(channels), 0.f);
            const auto& w = g_.tensors[static_cast<std::size_t>(op.inputs[1])];
            if (w.dtype != DType::I8) return define({channels}, zeros_.back().data(), XNN_INVALID_VALUE_ID, 0);
            // An int8 layer without bias gets an int32 zero bias with the scales it would have.
            const float xs = g_.tensors[static_cast<std::size_t>(op.inputs[0])].quant.scale[0];
            Quantization q;
            for (float ws : w.quant.scale) q.scale.push_back(xs * ws);
            q.zero_point.assign(q.scale.size(), 0);
            const Channelwise cw{0, channels};
            const auto it = channelwise.find(op.inputs[1]);
            return define_as({channels}, DType::I32, q, it == channelwise.end() ? nullptr : &cw, zeros_.back().data(),
                             XNN_INVALID_VALUE_ID, 0);
        };
        for (int i = seg.first; i < seg.last; ++i) {
            const Op& op = g_.ops[static_cast<std::size_t>(i)];
            const auto [lo, hi] = activation_bounds(op.activation);
            const auto x = value(op.inputs[0]);
            const auto y = value(op.outputs[0]);
            const auto& ys = shapes[static_cast<std::size_t>(op.outputs[0])];
            const std::string name = op_kind_name(op.kind);
            switch (op.kind) {
                case OpKind::Conv2D: {
                    const auto& w = g_.tensors[static_cast<std::size_t>(op.inputs[1])].shape;
                    const auto b = bias_for(op, w[0]);
                    if (is_linear_on_pooled_map(op, shapes)) {
                        // A classifier written as a 1x1 convolution on the pooled 1x1 map (the .tflite
                        // MobileNetV2's head) is a fully connected layer (OHWI = [O, K] here). Defined
                        // as a convolution, XNNPACK 0.0~git20220216's sparse rewrite leaves its input in
                        // NCHW and aborts on an assertion in create_convolution_operator (seen under
                        // qemu-aarch64 on a pruned MobileNetV2 at 225; tests/engine/test_sparse_xnnpack.cpp).
                        const auto& wt = g_.tensors[static_cast<std::size_t>(op.inputs[1])];
                        const auto filter = define({w[0], w[3]}, wt.bytes(), XNN_INVALID_VALUE_ID, 0);  // [O, K] view
                        check(xnn_define_fully_connected(sg, lo, hi, x, filter, b, y, 0), name + " (as fully connected)");
                        break;
                    }
                    check(xnn_define_convolution_2d(sg, op.pad_top, op.pad_right, op.pad_bottom, op.pad_left, w[1], w[2], op.stride_h,
                                                    op.stride_w, op.dilation_h, op.dilation_w, op.groups, w[3], w[0] / op.groups, lo,
                                                    hi, x, value(op.inputs[1]), b, y, 0),
                          name);
                    break;
                }
                case OpKind::DepthwiseConv2D: {
                    const auto& w = g_.tensors[static_cast<std::size_t>(op.inputs[1])].shape;
                    const auto b = bias_for(op, w[3]);
                    const auto& xs = shapes[static_cast<std::size_t>(op.inputs[0])];
                    check(xnn_define_depthwise_convolution_2d(sg, op.pad_top, op.pad_right, op.pad_bottom, op.pad_left, w[1], w[2],
                                                              op.stride_h, op.stride_w, op.dilation_h, op.dilation_w,
                                                              op.depth_multiplier, xs[3], lo, hi, x, value(op.inputs[1]), b, y, 0),
                          name);
                    break;
                }
                case OpKind::Add:
                    check(xnn_define_add2(sg, lo, hi, x, value(op.inputs[1]), y, 0), name);
                    break;
                case OpKind::GlobalAveragePool:
                    if (op.keep_dims) {
                        check(xnn_define_global_average_pooling_2d(sg, lo, hi, x, y, 0), name);
                    } else {
                        const auto& xs = shapes[static_cast<std::size_t>(op.inputs[0])];
                        const auto& yt = g_.tensors[static_cast<std::size_t>(op.outputs[0])];
                        const auto pooled = define_as({xs[0], 1, 1, xs[3]}, yt.dtype, yt.quant, nullptr, nullptr, XNN_INVALID_VALUE_ID, 0);
                        check(xnn_define_global_average_pooling_2d(sg, lo, hi, x, pooled, 0), name);
                        const auto d = dims_of(ys);
                        check(xnn_define_static_reshape(sg, d.size(), d.data(), pooled, y, 0), name + " reshape");
                    }
                    break;
                case OpKind::FullyConnected: {
                    const auto& w = g_.tensors[static_cast<std::size_t>(op.inputs[1])].shape;
                    const auto b = bias_for(op, w[0]);
                    check(xnn_define_fully_connected(sg, lo, hi, x, value(op.inputs[1]), b, y, XNN_FLAG_TENSORFLOW_RESHAPE_2D), name);
                    break;
                }
                case OpKind::Relu:
                    check(xnn_define_clamp(sg, 0.f, std::numeric_limits<float>::infinity(), x, y, 0), name);
                    break;
                case OpKind::Relu6:
                    check(xnn_define_clamp(sg, 0.f, 6.f, x, y, 0), name);
                    break;
                case OpKind::Softmax:
                    check(xnn_define_softmax(sg, x, y, 0), name);
                    break;
                case OpKind::HardSwish:
                    check(xnn_define_hardswish(sg, x, y, 0), name);
                    break;
                case OpKind::Quantize:
                case OpKind::Dequantize:
                    check(xnn_define_convert(sg, x, y, 0), name);
                    break;
                case OpKind::Reshape:
                case OpKind::Identity: {
                    const auto d = dims_of(ys);
                    check(xnn_define_static_reshape(sg, d.size(), d.data(), x, y, 0), name);
                    break;
                }
                default:  // xnnpack_supports() refused it before anything was built
                    throw Error("xnnpack backend: op " + name + " has no XNNPACK node");
            }
        }
    }

    void clear() {
        for (auto& st : stages_)
            if (st.runtime) xnn_delete_runtime(st.runtime);
        stages_.clear();
        zeros_.clear();
        scales_.clear();
        owned_.clear();
    }

    // Without fused blocks: one stage, the whole graph (graph input, then outputs). With them: each
    // block a stage, and each run of ops between two blocks a subgraph of its own.
    void split_stages(const std::vector<FusedBlockOps>& blocks) {
        if (blocks.empty()) {
            Stage st;
            st.last = static_cast<int>(g_.ops.size());
            st.ext = {g_.inputs[0]};
            st.ext.insert(st.ext.end(), g_.outputs.begin(), g_.outputs.end());
            st.inputs = 1;
            stages_.push_back(std::move(st));
            return;
        }
        std::size_t k = 0;
        for (int i = 0; i < static_cast<int>(g_.ops.size());) {
            Stage st;
            st.first = i;
            if (k < blocks.size() && blocks[k].expand == i) {
                st.last = blocks[k].last() + 1;
                st.ext = {blocks[k].in_tensor, blocks[k].out_tensor};
                st.inputs = 1;
                st.fused = blocks[k++];
            } else {
                st.last = k < blocks.size() ? blocks[k].expand : static_cast<int>(g_.ops.size());
                external_values(st);
            }
            i = st.last;
            stages_.push_back(std::move(st));
        }
    }

    // A subgraph's external values: what its ops read that they do not write, then what they write
    // that is a graph output or read by an op outside them.
    void external_values(Stage& st) const {
        std::vector<char> written(g_.tensors.size(), 0), read_outside(g_.tensors.size(), 0);
        for (int i = 0; i < static_cast<int>(g_.ops.size()); ++i) {
            const Op& op = g_.ops[static_cast<std::size_t>(i)];
            const bool inside = i >= st.first && i < st.last;
            for (auto t : inside ? op.outputs : op.inputs)
                if (t >= 0) (inside ? written : read_outside)[static_cast<std::size_t>(t)] = 1;
        }
        for (auto t : g_.outputs) read_outside[static_cast<std::size_t>(t)] = 1;
        auto add = [&](std::int32_t t) {
            if (std::find(st.ext.begin(), st.ext.end(), t) == st.ext.end()) st.ext.push_back(t);
        };
        for (int i = st.first; i < st.last; ++i)
            for (auto t : g_.ops[static_cast<std::size_t>(i)].inputs)
                if (t >= 0 && !g_.tensors[static_cast<std::size_t>(t)].constant && !written[static_cast<std::size_t>(t)]) add(t);
        st.inputs = st.ext.size();
        for (int i = st.first; i < st.last; ++i)
            for (auto t : g_.ops[static_cast<std::size_t>(i)].outputs)
                if (read_outside[static_cast<std::size_t>(t)]) add(t);
    }

    // Buffers for the values passed between stages; the graph's outputs live in out_buf_.
    void place_values(const std::vector<std::vector<std::int32_t>>& shapes) {
        auto elements = [&](std::int32_t t) { return static_cast<std::size_t>(ops::product(shapes[static_cast<std::size_t>(t)])); };
        ptr_.assign(g_.tensors.size(), nullptr);
        out_buf_.resize(g_.outputs.size());
        for (std::size_t k = 0; k < g_.outputs.size(); ++k) {
            out_buf_[k].assign(elements(g_.outputs[k]), 0.f);
            ptr_[static_cast<std::size_t>(g_.outputs[k])] = out_buf_[k].data();
        }
        for (const auto& st : stages_)
            for (auto t : st.ext)
                if (t != g_.inputs[0] && !ptr_[static_cast<std::size_t>(t)]) {
                    owned_.emplace_back(elements(t) + XNN_EXTRA_BYTES / sizeof(float), 0.f);  // XNNPACK reads past inputs
                    ptr_[static_cast<std::size_t>(t)] = owned_.back().data();
                }
    }

    float* value_ptr(std::int32_t t, const float* input) const {
        return t == g_.inputs[0] ? const_cast<float*>(input) : ptr_[static_cast<std::size_t>(t)];
    }

    const Graph& g_;
    bool sparse_ = true;
    std::size_t fuse_min_bytes_ = kNoFusion;
    int threads_ = 1;
    std::vector<Stage> stages_;
    std::vector<float*> ptr_;                 // per tensor: where a value passed between stages lives
    std::vector<std::vector<float>> owned_;  // those of them that are not graph outputs

    // An f32 1x1 convolution, stride 1, unpadded, ungrouped, on a 1x1 map: a fully connected layer.
    bool is_linear_on_pooled_map(const Op& op, const std::vector<std::vector<std::int32_t>>& shapes) const {
        const auto& w = g_.tensors[static_cast<std::size_t>(op.inputs[1])];
        const auto& xs = shapes[static_cast<std::size_t>(op.inputs[0])];
        return w.dtype == DType::F32 && w.shape[1] == 1 && w.shape[2] == 1 && xs.size() == 4 && xs[1] == 1 && xs[2] == 1 &&
               op.stride_h == 1 && op.stride_w == 1 && op.groups == 1 && op.pad_top == 0 && op.pad_bottom == 0 &&
               op.pad_left == 0 && op.pad_right == 0;
    }
    pthreadpool_t pool_ = nullptr;
    std::vector<std::vector<float>> out_buf_;
    std::vector<std::vector<float>> zeros_;  // float zeros also serve as int32 zeros (same size)
    std::vector<std::vector<float>> scales_;
    const float* last_input_ = nullptr;
};

}  // namespace

std::unique_ptr<Executor> make_xnnpack_executor(const Graph& g, int threads, bool sparse, std::size_t fuse_min_bytes) {
    return std::make_unique<XnnpackExecutor>(g, threads, sparse, fuse_min_bytes);
}

}  // namespace firesight::engine
