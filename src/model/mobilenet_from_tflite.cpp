#include "firesight/common/error.h"
#include "firesight/model/mobilenet_v2.h"

namespace firesight::model {
namespace {

using tflite::Activation;
using tflite::OpCode;

// NHWC-family TFLite weights to torch's OIHW.
torch::Tensor to_torch_weight(const tflite::Tensor& w, OpCode code) {
    const auto& s = w.shape;
    auto t = torch::from_blob(const_cast<float*>(w.values.data()), {static_cast<long>(w.values.size())},
                              torch::kFloat32).clone();
    if (code == OpCode::Conv2D)  // O H W I -> O I H W
        return t.view({s[0], s[1], s[2], s[3]}).permute({0, 3, 1, 2}).contiguous();
    if (code == OpCode::DepthwiseConv2D)  // 1 H W C -> C 1 H W
        return t.view({s[0], s[1], s[2], s[3]}).permute({3, 0, 1, 2}).contiguous();
    return t.view({s[0], s[1]});  // FULLY_CONNECTED: O I
}

void assign(torch::Tensor dst, const torch::Tensor& src, const std::string& what) {
    if (dst.sizes() != src.sizes()) {
        std::ostringstream os;
        os << what << ": shape " << src.sizes() << " in the file, the model expects " << dst.sizes();
        throw Error(os.str());
    }
    torch::NoGradGuard g;
    dst.copy_(src);
}

}  // namespace

ImportedModel import_mobilenet_v2(const tflite::Model& m) {
    // The weight-carrying operators, in graph order, must match the module's convs in order.
    std::vector<const tflite::Operator*> layers;
    for (const auto& op : m.operators)
        if (op.code == OpCode::Conv2D || op.code == OpCode::DepthwiseConv2D || op.code == OpCode::FullyConnected)
            layers.push_back(&op);
    constexpr std::size_t kExpected = 1 + 2 + 16 * 3 + 1 + 1;
    if (layers.size() != kExpected)
        throw Error("tflite model has " + std::to_string(layers.size()) +
                    " conv/fully-connected layers; MobileNetV2 1.0 has " + std::to_string(kExpected));
    const auto& last = *layers.back();
    const auto& last_w = m.tensors[static_cast<std::size_t>(last.inputs.at(1))];
    const int num_classes = last_w.shape.empty() ? 0 : last_w.shape[0];

    ImportedModel out;
    out.net = MobileNetV2(MobileNetV2Options{num_classes, 0.2});
    std::vector<ConvAct> convs;
    for (std::size_t i = 0; i < out.net->features->size(); ++i) {
        auto mod = out.net->features->ptr(i);
        if (auto c = std::dynamic_pointer_cast<ConvActImpl>(mod)) {
            convs.emplace_back(c);
        } else if (auto b = std::dynamic_pointer_cast<InvertedResidualImpl>(mod)) {
            if (b->expand) convs.push_back(b->expand);
            convs.push_back(b->depthwise);
            convs.push_back(b->project);
        }
    }
    for (std::size_t i = 0; i < layers.size(); ++i) {
        const auto& op = *layers[i];
        const std::string what = "tflite layer " + std::to_string(i) + " (" + tflite::op_code_name(static_cast<int>(op.code)) + ")";
        if (op.inputs.size() < 2 || op.inputs[1] < 0) throw Error(what + ": has no weight tensor");
        const auto& w = m.tensors[static_cast<std::size_t>(op.inputs[1])];
        if (!w.is_constant) throw Error(what + ": weight tensor '" + w.name + "' is not constant");
        const std::size_t rank = op.code == OpCode::FullyConnected ? 2 : 4;
        if (w.shape.size() != rank) throw Error(what + ": weight tensor has rank " + std::to_string(w.shape.size()));
        auto weight = to_torch_weight(w, op.code);
        torch::Tensor bias = torch::zeros({weight.size(0)});
        if (op.inputs.size() > 2 && op.inputs[2] >= 0) {
            const auto& b = m.tensors[static_cast<std::size_t>(op.inputs[2])];
            if (!b.is_constant) throw Error(what + ": bias tensor '" + b.name + "' is not constant");
            bias = torch::from_blob(const_cast<float*>(b.values.data()), {static_cast<long>(b.values.size())}).clone();
        }
        if (i + 1 == layers.size()) {  // logits: a 1x1 conv or a fully-connected layer
            if (op.activation != Activation::None) throw Error(what + ": logits layer has a fused activation");
            assign(out.net->classifier->weight, weight.reshape({weight.size(0), -1}), what + " weight");
            assign(out.net->classifier->bias, bias, what + " bias");
            continue;
        }
        auto& c = convs[i];
        if (op.code == OpCode::FullyConnected) throw Error(what + ": expected a convolution");
        const bool depthwise = c->conv->options.groups() > 1;
        if (depthwise != (op.code == OpCode::DepthwiseConv2D))
            throw Error(what + ": expected " + (depthwise ? "DEPTHWISE_CONV_2D" : "CONV_2D"));
        if (op.stride_h != c->stride || op.stride_w != c->stride)
            throw Error(what + ": stride " + std::to_string(op.stride_h) + " differs from MobileNetV2's " + std::to_string(c->stride));
        if (op.dilation_h != 1 || op.dilation_w != 1) throw Error(what + ": dilated convolution is not MobileNetV2");
        if (c->kernel > 1 && op.padding != tflite::Padding::Same) throw Error(what + ": expected SAME padding");
        const bool relu6 = op.activation == Activation::Relu6;
        if (relu6 != c->relu6 || (op.activation != Activation::None && !relu6))
            throw Error(what + std::string(": activation ") + tflite::activation_name(op.activation) + ", expected " +
                        (c->relu6 ? "RELU6" : "NONE"));
        assign(c->conv->weight, weight, what + " weight");
        assign(c->conv->bias, bias, what + " bias");
    }

    // Input normalisation from the input tensor's quantization (q -> real), or [-1, 1] for float.
    if (m.inputs.empty()) throw Error("tflite model has no input");
    const auto& in = m.tensors[static_cast<std::size_t>(m.inputs[0])];
    if (in.shape.size() != 4 || in.shape[3] != 3 || in.shape[1] != in.shape[2])
        throw Error("tflite model input '" + in.name + "' is not N x S x S x 3");
    out.input.size = in.shape[1];
    if (!in.quant.empty() && (in.type == tflite::TensorType::UInt8 || in.type == tflite::TensorType::Int8)) {
        const float zp = in.quant.zero_point.empty() ? 0.f : static_cast<float>(in.quant.zero_point[0]);
        out.input.scale = in.quant.scale[0];
        // int8 input holds pixel - 128.
        out.input.mean = in.type == tflite::TensorType::Int8 ? zp + 128.f : zp;
    }
    out.net->eval();
    return out;
}

ImportedModel import_mobilenet_v2(const std::filesystem::path& path) {
    try {
        return import_mobilenet_v2(tflite::load_model(path));
    } catch (const Error& e) {
        const std::string msg = e.what();
        if (msg.rfind(path.string(), 0) == 0) throw;
        throw Error(path.string() + ": " + msg);
    }
}

}  // namespace firesight::model
