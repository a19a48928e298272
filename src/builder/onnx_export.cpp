// Engine IR -> ONNX (opset 10). The engine is NHWC; ONNX convolutions are NCHW, so weights are
// transposed and 4-D values are declared NCHW.
#include <onnx/onnx_pb.h>

#include <set>
#include <unordered_map>

#include "firesight/builder/quantize.h"
#include "firesight/builder/onnx_export.h"
#include "firesight/common/error.h"
#include "firesight/common/fileio.h"

namespace firesight::engine {
namespace {

constexpr int kOpset = 10;

class OnnxWriter {
public:
    explicit OnnxWriter(const Graph& g) : g_(g) {
        model_.set_ir_version(5);  // the IR version that goes with opset 10
        model_.set_producer_name("firesight");
        model_.set_producer_version("0.1.0");
        auto* opset = model_.add_opset_import();
        opset->set_domain("");
        opset->set_version(kOpset);
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
        tt->set_elem_type(onnx::TensorProto::FLOAT);
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

    // Engine constant -> ONNX initializer, with filters transposed to OIHW.
    std::string weight(std::int32_t t, OpKind kind) {
        const auto& ten = g_.tensors[static_cast<std::size_t>(t)];
        const float* p = ten.data();
        const auto& s = ten.shape;
        std::vector<float> v(static_cast<std::size_t>(ten.element_count()));
        std::vector<std::int64_t> dims;
        if (kind == OpKind::Conv2D) {  // O H W I -> O I H W
            const std::int64_t O = s[0], H = s[1], W = s[2], I = s[3];
            for (std::int64_t o = 0; o < O; ++o)
                for (std::int64_t i = 0; i < I; ++i)
                    for (std::int64_t y = 0; y < H; ++y)
                        for (std::int64_t x = 0; x < W; ++x) v[static_cast<std::size_t>(((o * I + i) * H + y) * W + x)] = p[((o * H + y) * W + x) * I + i];
            dims = {O, I, H, W};
        } else if (kind == OpKind::DepthwiseConv2D) {  // 1 H W C -> C 1 H W
            const std::int64_t H = s[1], W = s[2], C = s[3];
            for (std::int64_t c = 0; c < C; ++c)
                for (std::int64_t y = 0; y < H; ++y)
                    for (std::int64_t x = 0; x < W; ++x) v[static_cast<std::size_t>((c * H + y) * W + x)] = p[(y * W + x) * C + c];
            dims = {C, 1, H, W};
        } else {
            v.assign(p, p + ten.element_count());
            dims.assign(s.begin(), s.end());
        }
        return initializer(name_of(t) + "_w", dims, v);
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
            auto* c = add_node("Clip", {in}, out);
            float_attr(c, "min", 0.f);
            float_attr(c, "max", 6.f);
        }
    }

    void node(std::size_t index) {
        const Op& op = g_.ops[index];
        const std::string what = "onnx export: op " + std::to_string(index) + " (" + op_kind_name(op.kind) + ")";
        const auto out = op.outputs[0];
        auto in = [&](std::size_t k) { return name_of(op.inputs[k]); };
        switch (op.kind) {
            case OpKind::Conv2D:
            case OpKind::DepthwiseConv2D: {
                const auto& w = g_.tensors[static_cast<std::size_t>(op.inputs[1])].shape;
                std::vector<std::string> inputs = {in(0), weight(op.inputs[1], op.kind)};
                if (op.inputs.size() > 2 && op.inputs[2] >= 0) inputs.push_back(weight(op.inputs[2], OpKind::Add));
                auto* n = with_activation(op, "Conv", inputs, name_of(out));
                ints(n, "kernel_shape", {w[1], w[2]});
                ints(n, "strides", {op.stride_h, op.stride_w});
                ints(n, "dilations", {op.dilation_h, op.dilation_w});
                ints(n, "pads", {op.pad_top, op.pad_left, op.pad_bottom, op.pad_right});
                const auto in_ch = g_.tensors[static_cast<std::size_t>(op.inputs[0])].shape[3];
                int_attr(n, "group", op.kind == OpKind::Conv2D ? op.groups : in_ch);
                break;
            }
            case OpKind::Add:
                with_activation(op, "Add", {in(0), in(1)}, name_of(out));
                break;
            case OpKind::GlobalAveragePool:
                if (op.keep_dims) {
                    with_activation(op, "GlobalAveragePool", {in(0)}, name_of(out));
                } else {
                    const std::string pooled = name_of(out) + "_pooled";
                    add_node("GlobalAveragePool", {in(0)}, pooled);
                    auto* f = with_activation(op, "Flatten", {pooled}, name_of(out));
                    int_attr(f, "axis", 1);
                }
                break;
            case OpKind::FullyConnected: {
                const auto& xs = g_.tensors[static_cast<std::size_t>(op.inputs[0])].shape;
                std::string x = in(0);
                if (xs.size() != 2) {
                    if (xs.size() == 4 && (xs[1] != 1 || xs[2] != 1))
                        throw Error(what + ": flattening a spatial NHWC tensor has no NCHW equivalent");
                    const std::string flat = name_of(out) + "_flat";
                    int_attr(add_node("Flatten", {x}, flat), "axis", 1);
                    x = flat;
                }
                std::vector<std::string> inputs = {x, weight(op.inputs[1], OpKind::FullyConnected)};
                const auto O = g_.tensors[static_cast<std::size_t>(op.inputs[1])].shape[0];
                if (op.inputs.size() > 2 && op.inputs[2] >= 0) inputs.push_back(weight(op.inputs[2], OpKind::Add));
                else inputs.push_back(initializer(name_of(out) + "_zero_bias", {O}, std::vector<float>(static_cast<std::size_t>(O), 0.f)));
                auto* n = with_activation(op, "Gemm", inputs, name_of(out));
                int_attr(n, "transB", 1);
                break;
            }
            case OpKind::Relu:
                add_node("Relu", {in(0)}, name_of(out));
                break;
            case OpKind::Relu6:
                activation(Activation::Relu6, in(0), name_of(out));
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
                int_attr(add_node("Softmax", {in(0)}, name_of(out)), "axis", 1);
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
                add_node("Reshape", {in(0), t->name()}, name_of(out));
                break;
            }
            case OpKind::BatchNorm: {
                auto* n = with_activation(op, "BatchNormalization",
                                          {in(0), weight(op.inputs[1], OpKind::Add), weight(op.inputs[2], OpKind::Add),
                                           weight(op.inputs[3], OpKind::Add), weight(op.inputs[4], OpKind::Add)},
                                          name_of(out));
                float_attr(n, "epsilon", op.epsilon);
                break;
            }
            default:
                throw Error(what + ": not exported to ONNX (fp32 export only)");
        }
    }

    const Graph& g_;
    onnx::ModelProto model_;
    onnx::GraphProto* graph_ = nullptr;
    std::unordered_map<std::int32_t, std::int32_t> alias_;
    std::unordered_map<std::int32_t, std::string> names_;
    std::set<std::string> used_;
};

}  // namespace

std::string export_onnx(const Graph& g) {
    validate(g);
    for (const auto& t : g.tensors)
        if (t.dtype != DType::F32)
            throw Error("onnx export: tensor '" + t.name + "' is " + dtype_name(t.dtype) + "; only float graphs are exported (export before quantize_int8)");
    for (const auto& t : g.tensors)
        if (!t.constant && t.dtype != DType::F32) throw Error("onnx export: tensor '" + t.name + "' is not f32 (fp32 export only)");
    return OnnxWriter(g).run();
}

void save_onnx(const Graph& g, const std::filesystem::path& path) { write_file_atomic(path, export_onnx(g)); }

}  // namespace firesight::engine
