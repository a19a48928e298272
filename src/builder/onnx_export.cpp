// Engine IR -> ONNX. The engine is NHWC; ONNX convolutions are NCHW, so weights are transposed
// and 4-D values are declared NCHW. Float graphs go out as opset 10; int8 graphs as opset 13 in
// QDQ form (QuantizeLinear/DequantizeLinear around float ops, with the engine's own scales and
// zero points), which ONNX Runtime and TensorRT turn back into int8 kernels.
#include <onnx/onnx_pb.h>

#include <map>
#include <set>
#include <unordered_map>

#include "firesight/builder/quantize.h"
#include "firesight/builder/onnx_export.h"
#include "firesight/common/error.h"
#include "firesight/common/fileio.h"

namespace firesight::engine {
namespace {

constexpr int kFloatOpset = 10;
// Per-channel DequantizeLinear (its `axis`) needs opset 13.
constexpr int kInt8Opset = 13;

bool is_int8_graph(const Graph& g) {
    for (const auto& t : g.tensors)
        if (t.dtype != DType::F32) return true;
    return false;
}

// An engine filter (NHWC layouts) in ONNX's order: conv O H W I -> O I H W, depthwise 1 H W C ->
// C 1 H W; anything else as it is.
template <class T>
std::vector<T> to_onnx_layout(const T* p, const std::vector<std::int32_t>& s, OpKind kind, std::int64_t count,
                              std::vector<std::int64_t>& dims) {
    std::vector<T> v(static_cast<std::size_t>(count));
    if (kind == OpKind::Conv2D) {
        const std::int64_t O = s[0], H = s[1], W = s[2], I = s[3];
        for (std::int64_t o = 0; o < O; ++o)
            for (std::int64_t i = 0; i < I; ++i)
                for (std::int64_t y = 0; y < H; ++y)
                    for (std::int64_t x = 0; x < W; ++x) v[static_cast<std::size_t>(((o * I + i) * H + y) * W + x)] = p[((o * H + y) * W + x) * I + i];
        dims = {O, I, H, W};
    } else if (kind == OpKind::DepthwiseConv2D) {
        const std::int64_t H = s[1], W = s[2], C = s[3];
        for (std::int64_t c = 0; c < C; ++c)
            for (std::int64_t y = 0; y < H; ++y)
                for (std::int64_t x = 0; x < W; ++x) v[static_cast<std::size_t>((c * H + y) * W + x)] = p[(y * W + x) * C + c];
        dims = {C, 1, H, W};
    } else {
        v.assign(p, p + count);
        dims.assign(s.begin(), s.end());
    }
    return v;
}

class OnnxWriter {
public:
    OnnxWriter(const Graph& g, int opset_version, bool uint8_activations)
        : g_(g), opset_(opset_version), uint8_activations_(uint8_activations) {
        model_.set_ir_version(opset_version >= 13 ? 7 : 5);  // the IR version that goes with the opset
        model_.set_producer_name("firesight");
        model_.set_producer_version("0.1.0");
        auto* opset = model_.add_opset_import();
        opset->set_domain("");
        opset->set_version(opset_version);
        graph_ = model_.mutable_graph();
        graph_->set_name("firesight_engine");
    }

    std::string run() {
        for (std::size_t i = 0; i < g_.inputs.size(); ++i) declare(graph_->add_input(), g_.inputs[i]);
        for (std::size_t i = 0; i < g_.ops.size(); ++i) node(i);
        for (auto o : g_.outputs) {
            // An output that became another tensor's alias (identity removal) is renamed back by
            // nothing else, so export needs the producer to write it under its own name.
            if (name_of(o) != g_.tensors[static_cast<std::size_t>(o)].name)
                throw Error("onnx export: graph output '" + g_.tensors[static_cast<std::size_t>(o)].name + "' is an alias; optimize the graph first");
            declare(graph_->add_output(), o);
        }
        std::string bytes;
        if (!model_.SerializeToString(&bytes)) throw Error("onnx export: serialization failed");
        return bytes;
    }

private:
    static std::vector<std::int64_t> to_nchw(const std::vector<std::int32_t>& s) {
        if (s.size() == 4) return {s[0], s[3], s[1], s[2]};
        return {s.begin(), s.end()};
    }

    void declare(onnx::ValueInfoProto* v, std::int32_t t) {
        const auto& ten = g_.tensors[static_cast<std::size_t>(t)];
        v->set_name(name_of(t));
        auto* tt = v->mutable_type()->mutable_tensor_type();
        tt->set_elem_type(ten.dtype != DType::I8 ? onnx::TensorProto::FLOAT : uint8_activations_ ? onnx::TensorProto::UINT8 : onnx::TensorProto::INT8);
        for (auto d : to_nchw(ten.shape)) tt->mutable_shape()->add_dim()->set_dim_value(d);
    }

    std::string name_of(std::int32_t t) {
        const auto it = alias_.find(t);
        if (it != alias_.end()) return name_of(it->second);
        const auto& ten = g_.tensors[static_cast<std::size_t>(t)];
        // ONNX needs unique names; engine names may repeat or be empty.
        auto& n = names_[t];
        if (n.empty()) {
            n = ten.name.empty() ? "t" + std::to_string(t) : ten.name;
            if (!used_.insert(n).second) n += "_" + std::to_string(t);
        }
        return n;
    }

    std::string initializer(const std::string& name, const std::vector<std::int64_t>& dims, const std::vector<float>& values) {
        auto* t = graph_->add_initializer();
        t->set_name(name);
        t->set_data_type(onnx::TensorProto::FLOAT);
        for (auto d : dims) t->add_dims(d);
        t->set_raw_data(std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(float)));
        return name;
    }

    template <class T>
    std::string raw_initializer(const std::string& name, onnx::TensorProto::DataType type, const std::vector<std::int64_t>& dims,
                                const std::vector<T>& values) {
        auto* t = graph_->add_initializer();
        t->set_name(name);
        t->set_data_type(type);
        for (auto d : dims) t->add_dims(d);
        t->set_raw_data(std::string(reinterpret_cast<const char*>(values.data()), values.size() * sizeof(T)));
        return name;
    }

    // Engine constant -> ONNX value, with filters transposed to OIHW. Float constants become an
    // initializer; int8 filters and int32 biases an integer initializer and the DequantizeLinear
    // that gives their real values (per channel along ONNX axis 0 when the engine has a scale per
    // channel: a conv's axis 0 and a depthwise conv's axis 3 both land there).
    std::string weight(std::int32_t t, OpKind kind) {
        const auto& ten = g_.tensors[static_cast<std::size_t>(t)];
        std::vector<std::int64_t> dims;
        const std::string base = name_of(t);
        if (ten.dtype == DType::F32)
            return initializer(base + "_w", dims, to_onnx_layout(ten.data(), ten.shape, kind, ten.element_count(), dims));
        std::string q;
        if (ten.dtype == DType::I8) {
            const auto v = to_onnx_layout(ten.data_i8(), ten.shape, kind, ten.element_count(), dims);
            q = raw_initializer(base + "_q", onnx::TensorProto::INT8, dims, v);
        } else {
            const auto v = to_onnx_layout(ten.data_i32(), ten.shape, kind, ten.element_count(), dims);
            q = raw_initializer(base + "_q", onnx::TensorProto::INT32, dims, v);
        }
        const auto& qp = ten.quant;
        if (qp.scale.empty()) throw Error("onnx export: constant '" + ten.name + "' is " + dtype_name(ten.dtype) + " without quantization");
        const bool per_channel = qp.scale.size() > 1;
        std::vector<std::int64_t> pdims;
        if (per_channel) pdims = {static_cast<std::int64_t>(qp.scale.size())};
        const std::string scale = initializer(base + "_scale", pdims, qp.scale);
        // One zero point per scale (the engine may store a repeated one once).
        std::vector<std::int32_t> zp(qp.scale.size());
        for (std::size_t c = 0; c < zp.size(); ++c) zp[c] = qp.zero_point.empty() ? 0 : qp.zero_point[std::min(c, qp.zero_point.size() - 1)];
        std::string zero;
        if (ten.dtype == DType::I8) {
            zero = raw_initializer(base + "_zero_point", onnx::TensorProto::INT8, pdims, std::vector<std::int8_t>(zp.begin(), zp.end()));
        } else {
            zero = raw_initializer(base + "_zero_point", onnx::TensorProto::INT32, pdims, zp);
        }
        auto* n = add_node("DequantizeLinear", {q, scale, zero}, base + "_w");
        if (per_channel) int_attr(n, "axis", 0);
        return base + "_w";
    }

    // ---- int8 activations (QDQ) ----
    bool is_q8(std::int32_t t) const {
        const auto& ten = g_.tensors[static_cast<std::size_t>(t)];
        return !ten.constant && ten.dtype == DType::I8;
    }
    // The scale and zero point initializers of int8 activation `t` (written once).
    std::pair<std::string, std::string> qparams(std::int32_t t) {
        const auto it = qparams_.find(t);
        if (it != qparams_.end()) return it->second;
        const auto& q = g_.tensors[static_cast<std::size_t>(t)].quant;
        const std::string base = name_of(t);
        const auto scale = initializer(base + "_scale", {}, {q.scale[0]});
        const int zp = q.zero_point.empty() ? 0 : q.zero_point[0];
        // uint8: the same real values, q + 128 with zero point + 128.
        const auto zero = uint8_activations_
                              ? raw_initializer(base + "_zero_point", onnx::TensorProto::UINT8, {}, std::vector<std::uint8_t>{static_cast<std::uint8_t>(zp + 128)})
                              : raw_initializer(base + "_zero_point", onnx::TensorProto::INT8, {}, std::vector<std::int8_t>{static_cast<std::int8_t>(zp)});
        return qparams_[t] = {scale, zero};
    }
    // A DequantizeLinear of the int8 value `value`, which has the quantization of tensor `t`. Each
    // consumer gets its own, the layout ONNX Runtime's QDQ fusion expects.
    std::string dequantize_as(const std::string& value, std::int32_t t) {
        const auto [scale, zero] = qparams(t);
        const std::string out = value + "_dq" + std::to_string(dq_count_++);
        add_node("DequantizeLinear", {value, scale, zero}, out);
        return out;
    }
    // The real (float) value of activation `t`: its name, or a DequantizeLinear of it.
    std::string real_in(std::int32_t t) { return is_q8(t) ? dequantize_as(name_of(t), t) : name_of(t); }
    // Where a float op writes activation `t`: its name, or a float value quantize_out() turns into it.
    std::string real_out(std::int32_t t) { return is_q8(t) ? name_of(t) + "_real" : name_of(t); }
    void quantize_out(std::int32_t t) { quantize_as(real_out(t), t, name_of(t)); }
    void quantize_as(const std::string& real, std::int32_t t, const std::string& out) {
        if (!is_q8(t)) return;
        const auto [scale, zero] = qparams(t);
        add_node("QuantizeLinear", {real, scale, zero}, out);
    }

    onnx::NodeProto* add_node(const std::string& type, std::vector<std::string> in, const std::string& out) {
        auto* n = graph_->add_node();
        n->set_op_type(type);
        n->set_name(out + "_" + type);
        for (auto& i : in) n->add_input(i);
        n->add_output(out);
        return n;
    }
    static void ints(onnx::NodeProto* n, const char* name, std::vector<std::int64_t> v) {
        auto* a = n->add_attribute();
        a->set_name(name);
        a->set_type(onnx::AttributeProto::INTS);
        for (auto x : v) a->add_ints(x);
    }
    static void int_attr(onnx::NodeProto* n, const char* name, std::int64_t v) {
        auto* a = n->add_attribute();
        a->set_name(name);
        a->set_type(onnx::AttributeProto::INT);
        a->set_i(v);
    }
    static void float_attr(onnx::NodeProto* n, const char* name, float v) {
        auto* a = n->add_attribute();
        a->set_name(name);
        a->set_type(onnx::AttributeProto::FLOAT);
        a->set_f(v);
    }

    // Emits `type` producing `out`, followed by the fused activation when there is one.
    onnx::NodeProto* with_activation(const Op& op, const std::string& type, std::vector<std::string> in, const std::string& out) {
        if (op.activation == Activation::None) return add_node(type, std::move(in), out);
        const std::string pre = out + "_preact";
        auto* n = add_node(type, std::move(in), pre);
        activation(op.activation, pre, out);
        return n;
    }
    void activation(Activation a, const std::string& in, const std::string& out) {
        if (a == Activation::Relu) {
            add_node("Relu", {in}, out);
        } else {
            if (opset_ >= 11) {  // min and max became inputs in opset 11
                if (clip_min_.empty()) {
                    clip_min_ = initializer("relu6_min", {}, {0.f});
                    clip_max_ = initializer("relu6_max", {}, {6.f});
                }
                add_node("Clip", {in, clip_min_, clip_max_}, out);
                return;
            }
            auto* c = add_node("Clip", {in}, out);
            float_attr(c, "min", 0.f);
            float_attr(c, "max", 6.f);
        }
    }

    void node(std::size_t index) {
        const Op& op = g_.ops[index];
        const std::string what = "onnx export: op " + std::to_string(index) + " (" + op_kind_name(op.kind) + ")";
        const auto out = op.outputs[0];
        // Float ops read real values and write real_out(out); an int8 output is then quantized with
        // the engine's scale and zero point, so every int8 tensor of the engine is one in ONNX.
        auto in = [&](std::size_t k) { return real_in(op.inputs[k]); };
        switch (op.kind) {
            case OpKind::Conv2D:
            case OpKind::DepthwiseConv2D: {
                const auto& w = g_.tensors[static_cast<std::size_t>(op.inputs[1])].shape;
                std::vector<std::string> inputs = {in(0), weight(op.inputs[1], op.kind)};
                if (op.inputs.size() > 2 && op.inputs[2] >= 0) inputs.push_back(weight(op.inputs[2], OpKind::Add));
                auto* n = with_activation(op, "Conv", inputs, real_out(out));
                ints(n, "kernel_shape", {w[1], w[2]});
                ints(n, "strides", {op.stride_h, op.stride_w});
                ints(n, "dilations", {op.dilation_h, op.dilation_w});
                ints(n, "pads", {op.pad_top, op.pad_left, op.pad_bottom, op.pad_right});
                const auto in_ch = g_.tensors[static_cast<std::size_t>(op.inputs[0])].shape[3];
                int_attr(n, "group", op.kind == OpKind::Conv2D ? op.groups : in_ch);
                quantize_out(out);
                break;
            }
            case OpKind::Add:
                with_activation(op, "Add", {in(0), in(1)}, real_out(out));
                quantize_out(out);
                break;
            case OpKind::GlobalAveragePool:
                if (op.keep_dims) {
                    with_activation(op, "GlobalAveragePool", {in(0)}, real_out(out));
                    quantize_out(out);
                } else if (is_q8(out)) {
                    // Quantized before the flattening, so the pool sits between a DequantizeLinear
                    // and a QuantizeLinear as ONNX Runtime's QDQ fusion wants it.
                    const std::string pooled = name_of(out) + "_pooled";
                    with_activation(op, "GlobalAveragePool", {in(0)}, pooled + "_real");
                    quantize_as(pooled + "_real", out, pooled);
                    int_attr(add_node("Flatten", {pooled}, name_of(out)), "axis", 1);
                } else {
                    const std::string pooled = name_of(out) + "_pooled";
                    add_node("GlobalAveragePool", {in(0)}, pooled);
                    auto* f = with_activation(op, "Flatten", {pooled}, name_of(out));
                    int_attr(f, "axis", 1);
                }
                break;
            case OpKind::FullyConnected: {
                const auto& xs = g_.tensors[static_cast<std::size_t>(op.inputs[0])].shape;
                std::string x = name_of(op.inputs[0]);
                if (xs.size() != 2) {
                    if (xs.size() == 4 && (xs[1] != 1 || xs[2] != 1))
                        throw Error(what + ": flattening a spatial NHWC tensor has no NCHW equivalent");
                    const std::string flat = name_of(out) + "_flat";
                    int_attr(add_node("Flatten", {x}, flat), "axis", 1);
                    x = flat;
                }
                if (is_q8(op.inputs[0])) x = dequantize_as(x, op.inputs[0]);
                std::vector<std::string> inputs = {x, weight(op.inputs[1], OpKind::FullyConnected)};
                const auto O = g_.tensors[static_cast<std::size_t>(op.inputs[1])].shape[0];
                if (op.inputs.size() > 2 && op.inputs[2] >= 0) inputs.push_back(weight(op.inputs[2], OpKind::Add));
                else inputs.push_back(initializer(name_of(out) + "_zero_bias", {O}, std::vector<float>(static_cast<std::size_t>(O), 0.f)));
                auto* n = with_activation(op, "Gemm", inputs, real_out(out));
                int_attr(n, "transB", 1);
                quantize_out(out);
                break;
            }
            case OpKind::Relu:
                add_node("Relu", {in(0)}, real_out(out));
                quantize_out(out);
                break;
            case OpKind::Relu6:
                activation(Activation::Relu6, in(0), real_out(out));
                quantize_out(out);
                break;
            case OpKind::HardSwish: {
                // Opset 10 has no HardSwish (opset 14 does): x * HardSigmoid(x) with alpha 1/6 and
                // beta 1/2 is the same function.
                const std::string gate = name_of(out) + "_gate";
                auto* h = add_node("HardSigmoid", {in(0)}, gate);
                float_attr(h, "alpha", 1.f / 6.f);
                float_attr(h, "beta", 0.5f);
                add_node("Mul", {in(0), gate}, name_of(out));
                break;
            }
            case OpKind::Softmax: {
                const auto& s = g_.tensors[static_cast<std::size_t>(out)].shape;
                if (s.size() != 2) throw Error(what + ": only softmax over [N, C] is exported");
                if (op.beta != 1.0f) throw Error(what + ": softmax beta != 1 has no ONNX equivalent");
                int_attr(add_node("Softmax", {in(0)}, real_out(out)), "axis", 1);
                quantize_out(out);
                break;
            }
            case OpKind::Identity:
                alias_[out] = op.inputs[0];
                break;
            case OpKind::Reshape: {
                const auto& xs = g_.tensors[static_cast<std::size_t>(op.inputs[0])].shape;
                const auto& ys = g_.tensors[static_cast<std::size_t>(out)].shape;
                // NHWC and NCHW orders agree only when no spatial extent is above 1.
                auto spatial_free = [](const std::vector<std::int32_t>& s) { return s.size() < 4 || (s[1] == 1 && s[2] == 1); };
                if (!spatial_free(xs) || !spatial_free(ys)) throw Error(what + ": reshapes that reorder NHWC data are not exported");
                auto shape = to_nchw(ys);
                shape[0] = -1;
                // Reshape takes its shape as an int64 input tensor since opset 5.
                auto* t = graph_->add_initializer();
                t->set_name(name_of(out) + "_shape");
                t->set_data_type(onnx::TensorProto::INT64);
                t->add_dims(static_cast<std::int64_t>(shape.size()));
                for (auto d : shape) t->add_int64_data(d);
                // Moves int8 values as they are (same quantization in and out).
                add_node("Reshape", {name_of(op.inputs[0]), t->name()}, name_of(out));
                break;
            }
            case OpKind::Quantize: {
                const auto [scale, zero] = qparams(out);
                add_node("QuantizeLinear", {name_of(op.inputs[0]), scale, zero}, name_of(out));
                break;
            }
            case OpKind::Dequantize: {
                const auto [scale, zero] = qparams(op.inputs[0]);
                add_node("DequantizeLinear", {name_of(op.inputs[0]), scale, zero}, name_of(out));
                break;
            }
            case OpKind::BatchNorm: {
                auto* n = with_activation(op, "BatchNormalization",
                                          {in(0), weight(op.inputs[1], OpKind::Add), weight(op.inputs[2], OpKind::Add),
                                           weight(op.inputs[3], OpKind::Add), weight(op.inputs[4], OpKind::Add)},
                                          real_out(out));
                float_attr(n, "epsilon", op.epsilon);
                quantize_out(out);
                break;
            }
            default:
                throw Error(what + ": not exported to ONNX");
        }
    }

    const Graph& g_;
    const int opset_;
    const bool uint8_activations_;
    onnx::ModelProto model_;
    onnx::GraphProto* graph_ = nullptr;
    std::unordered_map<std::int32_t, std::int32_t> alias_;
    std::unordered_map<std::int32_t, std::string> names_;
    std::set<std::string> used_;
    std::map<std::int32_t, std::pair<std::string, std::string>> qparams_;
    int dq_count_ = 0;
    std::string clip_min_, clip_max_;
};

}  // namespace

int onnx_opset(const Graph& g) { return is_int8_graph(g) ? kInt8Opset : kFloatOpset; }

std::string export_onnx(const Graph& g, const OnnxExportOptions& opt) {
    validate(g);  // it also checks every int8 op's quantization (one scale per activation, i32 biases)
    for (const auto& t : g.tensors)
        if (!t.constant && t.dtype != DType::F32 && t.dtype != DType::I8)
            throw Error("onnx export: tensor '" + t.name + "' is " + dtype_name(t.dtype) + "; activations must be f32 or i8");
    return OnnxWriter(g, onnx_opset(g), opt.uint8_activations).run();
}

void save_onnx(const Graph& g, const std::filesystem::path& path, const OnnxExportOptions& opt) {
    write_file_atomic(path, export_onnx(g, opt));
}

}  // namespace firesight::engine
