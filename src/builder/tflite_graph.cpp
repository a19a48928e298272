// Builds an engine graph from a .tflite model: float weights (dequantized by the reader),
// float activations, TF SAME padding made explicit for the model's fixed input size.
#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "firesight/engine/ir.h"
#include "firesight/builder/passes.h"
#include "firesight/builder/tflite_graph.h"
#include "firesight/common/error.h"
#include "firesight/import/tflite.h"

namespace firesight::engine {
namespace {

using TOp = tflite::OpCode;

Activation activation_of(tflite::Activation a, const std::string& what) {
    switch (a) {
        case tflite::Activation::None: return Activation::None;
        case tflite::Activation::Relu: return Activation::Relu;
        case tflite::Activation::Relu6: return Activation::Relu6;
        default: throw Error(what + ": fused activation " + tflite::activation_name(a) + " is not supported");
    }
}

// Translates one model: tensors are created on first use, so unused ones never reach the engine.
class TfliteTranslator {
public:
    explicit TfliteTranslator(const tflite::Model& m) : m_(m), map_(m.tensors.size(), -1) {}

    Graph run() {
        if (m_.inputs.size() != 1 || m_.outputs.size() != 1) throw Error("tflite model: expected one input and one output");
        const auto in_t = tensor(m_.inputs[0], "input");
        g_.inputs = {in_t};
        for (std::size_t i = 0; i < m_.operators.size(); ++i) g_.ops.push_back(translate(m_.operators[i], i));
        set_outputs();
        set_preprocessing(in_t);
        validate(g_);
        name_classes();
        return std::move(g_);
    }

private:
    // Every tensor index an operator names goes through here: -1 (an absent optional input) or one
    // past the table is a refusal, not a read outside m.tensors (fuzz_tflite_import found one).
    const tflite::Tensor& model_tensor(std::int32_t ti, const std::string& what) const {
        if (ti < 0 || static_cast<std::size_t>(ti) >= m_.tensors.size()) throw Error(what + ": tensor index " + std::to_string(ti) + " is out of range");
        return m_.tensors[static_cast<std::size_t>(ti)];
    }
    const std::vector<std::int32_t>& shape(std::int32_t ti, const std::string& what) const { return model_tensor(ti, what).shape; }

    std::int32_t tensor(std::int32_t ti, const std::string& what) {
        const auto& t = model_tensor(ti, what);
        auto& slot = map_[static_cast<std::size_t>(ti)];
        if (slot >= 0) return slot;
        Tensor e;
        e.name = t.name;
        e.shape = t.shape;
        if (t.is_constant) {
            if (t.values.size() != static_cast<std::size_t>(t.element_count()))
                throw Error(what + ": constant '" + t.name + "' is not numeric (" + tflite::tensor_type_name(t.type) + ")");
            e.constant = true;
            e.owned = t.values;
        }
        slot = g_.add_tensor(std::move(e));
        return slot;
    }

    Op translate(const tflite::Operator& op, std::size_t index) {
        const std::string what = "tflite operator " + std::to_string(index) + " (" + tflite::op_code_name(static_cast<int>(op.code)) + ")";
        if (op.inputs.empty() || op.outputs.size() != 1) throw Error(what + ": expected inputs and one output");
        Op e;
        e.activation = activation_of(op.activation, what);
        auto in = [&](std::size_t k) {
            if (k >= op.inputs.size()) throw Error(what + ": missing input " + std::to_string(k));
            return tensor(op.inputs[k], what);
        };
        auto optional_bias = [&] {
            if (op.inputs.size() > 2 && op.inputs[2] >= 0) e.inputs.push_back(in(2));
        };
        switch (op.code) {
            case TOp::Conv2D:
            case TOp::DepthwiseConv2D:
                translate_conv(op, what, e);
                e.inputs = {in(0), in(1)};
                optional_bias();
                break;
            case TOp::Add: e.kind = OpKind::Add; e.inputs = {in(0), in(1)}; break;
            case TOp::AveragePool2D:
            case TOp::Mean:
                translate_global_pool(op, what, e);
                e.inputs = {in(0)};
                break;
            case TOp::FullyConnected:
                e.kind = OpKind::FullyConnected;
                e.inputs = {in(0), in(1)};
                optional_bias();
                break;
            case TOp::Relu: e.kind = OpKind::Relu; e.inputs = {in(0)}; break;
            case TOp::Relu6: e.kind = OpKind::Relu6; e.inputs = {in(0)}; break;
            case TOp::HardSwish: e.kind = OpKind::HardSwish; e.inputs = {in(0)}; break;
            case TOp::Softmax: e.kind = OpKind::Softmax; e.beta = op.softmax_beta; e.inputs = {in(0)}; break;
            case TOp::Reshape:
            case TOp::Squeeze:
                e.kind = OpKind::Reshape;
                e.new_shape = shape(op.outputs[0], what);
                e.inputs = {in(0)};
                break;
            // The engine runs in float: quantize/dequantize steps become identities that the
            // optimiser removes.
            case TOp::Quantize:
            case TOp::Dequantize: e.kind = OpKind::Identity; e.inputs = {in(0)}; break;
            default: throw Error(what + ": not supported by the engine builder");
        }
        e.outputs = {tensor(op.outputs[0], what)};
        return e;
    }

    // Kind, strides, dilations, explicit padding and depth multiplier of a (depthwise) convolution.
    void translate_conv(const tflite::Operator& op, const std::string& what, Op& e) const {
        e.kind = op.code == TOp::Conv2D ? OpKind::Conv2D : OpKind::DepthwiseConv2D;
        const auto& xs = shape(op.inputs[0], what);
        if (op.inputs.size() < 2) throw Error(what + ": missing input 1");
        const auto& ws = shape(op.inputs[1], what);
        if (xs.size() != 4 || ws.size() != 4) throw Error(what + ": input and filter must be rank 4");
        e.stride_h = op.stride_h, e.stride_w = op.stride_w;
        e.dilation_h = op.dilation_h, e.dilation_w = op.dilation_w;
        if (op.padding == tflite::Padding::Same) {
            const auto ph = same_padding(xs[1], ws[1], op.stride_h, op.dilation_h);
            const auto pw = same_padding(xs[2], ws[2], op.stride_w, op.dilation_w);
            e.pad_top = ph.before, e.pad_bottom = ph.after, e.pad_left = pw.before, e.pad_right = pw.after;
        }
        // Some converters write depth_multiplier 0 or leave it stale; the filter decides.
        if (e.kind == OpKind::DepthwiseConv2D) e.depth_multiplier = xs[3] > 0 ? ws[3] / xs[3] : 1;
    }

    // An average pool over the whole image, or a mean over height and width: a global average pool.
    void translate_global_pool(const tflite::Operator& op, const std::string& what, Op& e) const {
        const auto& xs = shape(op.inputs[0], what);
        e.kind = OpKind::GlobalAveragePool;
        if (op.code == TOp::AveragePool2D) {
            if (xs.size() != 4 || op.filter_h != xs[1] || op.filter_w != xs[2] || op.padding != tflite::Padding::Valid)
                throw Error(what + ": only a pool over the whole image (global average) is supported");
            e.keep_dims = 1;
            return;
        }
        if (op.inputs.size() < 2) throw Error(what + ": missing input 1 (the axes)");
        std::vector<std::int64_t> axes = model_tensor(op.inputs[1], what).int_values;
        std::sort(axes.begin(), axes.end());
        if (xs.size() != 4 || axes != std::vector<std::int64_t>{1, 2}) throw Error(what + ": only a mean over height and width is supported");
        e.keep_dims = op.keep_dims ? 1 : 0;
    }

    // Outputs: probabilities first, then the logits the softmax reads (a softmax is added if the
    // model ends without one).
    void set_outputs() {
        const auto out = map_[static_cast<std::size_t>(m_.outputs[0])];
        if (out < 0) throw Error("tflite model: its output is not produced by any operator");
        // Walk back through identities to see whether a softmax produces the output.
        std::int32_t probs = out, logits = -1;
        for (auto it = g_.ops.rbegin(); it != g_.ops.rend(); ++it) {
            if (it->outputs[0] != probs) continue;
            if (it->kind == OpKind::Identity) {
                probs = it->inputs[0];
                continue;
            }
            if (it->kind == OpKind::Softmax) logits = it->inputs[0];
            break;
        }
        if (logits >= 0) {
            g_.outputs = {out, logits};
            return;
        }
        Tensor p;
        p.name = "probabilities";
        p.shape = g_.tensors[static_cast<std::size_t>(out)].shape;
        const auto pi = g_.add_tensor(std::move(p));
        Op sm;
        sm.kind = OpKind::Softmax;
        sm.inputs = {out};
        sm.outputs = {pi};
        g_.ops.push_back(sm);
        g_.outputs = {pi, out};
    }

    // Preprocessing from the input tensor's quantization (q -> real), or [-1, 1] for float.
    void set_preprocessing(std::int32_t in_t) {
        const auto& tin = m_.tensors[static_cast<std::size_t>(m_.inputs[0])];
        if (tin.shape.size() != 4 || tin.shape[3] != 3) throw Error("tflite model input '" + tin.name + "' is not N x H x W x 3");
        if (tin.shape[1] != tin.shape[2]) throw Error("tflite model input '" + tin.name + "' is not square");
        g_.metadata.size = g_.metadata.resize_shorter = tin.shape[1];
        if (!tin.quant.empty() && (tin.type == tflite::TensorType::UInt8 || tin.type == tflite::TensorType::Int8)) {
            const float zp = tin.quant.zero_point.empty() ? 0.f : static_cast<float>(tin.quant.zero_point[0]);
            g_.metadata.scale = tin.quant.scale[0];
            g_.metadata.mean = tin.type == tflite::TensorType::Int8 ? zp + 128.f : zp;
        }
        g_.tensors[static_cast<std::size_t>(in_t)].dtype = DType::F32;
        g_.tensors[static_cast<std::size_t>(in_t)].quant = {};
    }

    void name_classes() {
        const auto& ls = g_.tensors[static_cast<std::size_t>(g_.outputs[0])].shape;
        const int classes = ls.empty() ? 0 : ls.back();
        // A bound found by fuzzing: a hostile output shape must not turn into millions of names.
        constexpr int kMaxClasses = 100000;
        if (classes < 1 || classes > kMaxClasses)
            throw Error("tflite model: output has " + std::to_string(classes) + " classes (1.." + std::to_string(kMaxClasses) + " supported)");
        for (int c = 0; c < classes; ++c) g_.metadata.class_names.push_back("class " + std::to_string(c));
    }

    const tflite::Model& m_;
    std::vector<std::int32_t> map_;  // model tensor -> engine tensor, -1 until used
    Graph g_;
};

}  // namespace

Graph graph_from_tflite(const tflite::Model& m) { return TfliteTranslator(m).run(); }

Graph graph_from_tflite_file(const std::filesystem::path& path, const std::filesystem::path& labels) {
    Graph g;
    try {
        g = graph_from_tflite(tflite::load_model(path));
    } catch (const Error& e) {
        const std::string msg = e.what();
        if (msg.rfind(path.string(), 0) == 0) throw;
        throw Error(path.string() + ": " + msg);
    }
    const int n = static_cast<int>(g.metadata.class_names.size());
    if (!labels.empty()) g.metadata.class_names = tflite::read_labels(labels, n);
    else if (auto beside = path.parent_path() / "imagenet_labels.txt"; std::filesystem::exists(beside) && (n == 1001 || n == 1000))
        g.metadata.class_names = tflite::read_labels(beside, n);
    const auto summary = optimize(g);
    nlohmann::json build = {{"source", path.filename().string()}, {"builder", "tflite"}, {"passes", summary},
                            {"precision", "fp32"}};
    g.metadata.build_json = build.dump();
    return g;
}

}  // namespace firesight::engine
