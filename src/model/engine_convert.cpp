// MobileNetV2 (libtorch) -> engine IR. Weights are copied out of the module, converted from
// torch's OIHW to the engine's OHWI (depthwise: 1 x KH x KW x C).
#include <nlohmann/json.hpp>

#include "firesight/builder/passes.h"
#include "firesight/model/engine_convert.h"
#include "firesight/common/error.h"
#include "firesight/model/features_graph.h"

namespace firesight::model {
namespace {

std::vector<float> values_of(const torch::Tensor& t) {
    const auto c = t.detach().to(torch::kFloat32).contiguous();
    return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

class Converter {
public:
    engine::Graph g;
    int h = 0, w = 0;

    std::int32_t activation(std::vector<std::int32_t> shape, const std::string& name) {
        engine::Tensor t;
        t.name = name;
        t.shape = std::move(shape);
        return g.add_tensor(std::move(t));
    }

    std::int32_t conv(ConvAct& c, std::int32_t x, const std::string& name) {
        const auto& opt = c->conv->options;
        const int groups = static_cast<int>(opt.groups());
        const auto weight = c->conv->weight.detach();  // O, I/groups, KH, KW
        const int O = static_cast<int>(weight.size(0)), KH = static_cast<int>(weight.size(2)), KW = static_cast<int>(weight.size(3));
        const int in_ch = static_cast<int>(weight.size(1)) * groups;
        engine::Op op;
        const bool depthwise = groups > 1 && groups == in_ch && groups == O;
        std::int32_t wi;
        if (depthwise) {
            op.kind = engine::OpKind::DepthwiseConv2D;
            wi = g.add_constant(name + "/weights", {1, KH, KW, O}, values_of(weight.permute({1, 2, 3, 0})));
        } else {
            op.kind = engine::OpKind::Conv2D;
            op.groups = groups;
            wi = g.add_constant(name + "/weights", {O, KH, KW, static_cast<int>(weight.size(1))}, values_of(weight.permute({0, 2, 3, 1})));
        }
        op.inputs = {x, wi};
        if (c->conv->bias.defined()) op.inputs.push_back(g.add_constant(name + "/bias", {O}, values_of(c->conv->bias)));
        op.stride_h = op.stride_w = c->stride;
        if (c->stride == 1) {
            op.pad_top = op.pad_bottom = op.pad_left = op.pad_right = (c->kernel - 1) / 2;
        } else {
            const auto ph = same_padding(h, c->kernel, c->stride), pw = same_padding(w, c->kernel, c->stride);
            op.pad_top = ph.before, op.pad_bottom = ph.after, op.pad_left = pw.before, op.pad_right = pw.after;
        }
        op.activation = c->relu6 ? engine::Activation::Relu6 : engine::Activation::None;
        h = (h + op.pad_top + op.pad_bottom - KH) / c->stride + 1;
        w = (w + op.pad_left + op.pad_right - KW) / c->stride + 1;
        const auto y = activation({1, h, w, O}, name);
        op.outputs = {y};
        g.ops.push_back(op);
        return y;
    }
};

// Appends features[from, upto) to the converter's graph after x; returns the last tensor.
std::int32_t add_features(Converter& cv, MobileNetV2& net, std::int32_t x, std::size_t from, std::size_t upto) {
    for (std::size_t i = from; i < upto; ++i) {
        const std::string name = "features." + std::to_string(i);
        auto mod = net->features->ptr(i);
        if (auto c = std::dynamic_pointer_cast<ConvActImpl>(mod)) {
            ConvAct ca(c);
            x = cv.conv(ca, x, name);
        } else if (auto b = std::dynamic_pointer_cast<InvertedResidualImpl>(mod)) {
            auto y = x;
            if (b->expand) y = cv.conv(b->expand, y, name + ".expand");
            y = cv.conv(b->depthwise, y, name + ".depthwise");
            y = cv.conv(b->project, y, name + ".project");
            if (b->use_residual) {
                engine::Op add;
                add.kind = engine::OpKind::Add;
                add.inputs = {x, y};
                const auto s = cv.g.tensors[static_cast<std::size_t>(y)].shape;
                add.outputs = {cv.activation(s, name + ".add")};
                cv.g.ops.push_back(add);
                y = add.outputs[0];
            }
            x = y;
        } else {
            throw Error("mobilenet_v2_to_graph: unexpected module in " + name);
        }
    }
    return x;
}

}  // namespace

engine::Graph mobilenet_v2_to_graph(MobileNetV2& net, int size) {
    torch::NoGradGuard no_grad;
    Converter cv;
    cv.h = cv.w = size;
    auto x = cv.activation({1, size, size, 3}, "input");
    cv.g.inputs = {x};
    x = add_features(cv, net, x, 0, net->features->size());
    const int channels = cv.g.tensors[static_cast<std::size_t>(x)].shape[3];
    engine::Op pool;
    pool.kind = engine::OpKind::GlobalAveragePool;
    pool.inputs = {x};
    pool.outputs = {cv.activation({1, channels}, "pooled")};
    cv.g.ops.push_back(pool);
    const int classes = net->num_classes();
    engine::Op fc;
    fc.kind = engine::OpKind::FullyConnected;
    fc.inputs = {pool.outputs[0], cv.g.add_constant("classifier/weights", {classes, channels}, values_of(net->classifier->weight)),
                 cv.g.add_constant("classifier/bias", {classes}, values_of(net->classifier->bias))};
    fc.outputs = {cv.activation({1, classes}, "logits")};
    cv.g.ops.push_back(fc);
    engine::Op sm;
    sm.kind = engine::OpKind::Softmax;
    sm.inputs = fc.outputs;
    sm.outputs = {cv.activation({1, classes}, "probabilities")};
    cv.g.ops.push_back(sm);
    cv.g.outputs = {sm.outputs[0], fc.outputs[0]};
    for (int c = 0; c < classes; ++c) cv.g.metadata.class_names.push_back("class " + std::to_string(c));
    cv.g.metadata.size = cv.g.metadata.resize_shorter = size;
    engine::validate(cv.g);
    return cv.g;
}

engine::Graph mobilenet_v2_features_graph(MobileNetV2& net, int size, int prefix_upto, bool embedding) {
    torch::NoGradGuard no_grad;
    const int blocks = static_cast<int>(net->features->size());
    if (prefix_upto > blocks || (prefix_upto < 1 && !embedding))
        throw Error("mobilenet_v2_features_graph: no block range to convert (prefix up to " + std::to_string(prefix_upto) + " of " +
                    std::to_string(blocks) + " blocks)");
    Converter cv;
    cv.h = cv.w = size;
    auto x = cv.activation({1, size, size, 3}, "input");
    cv.g.inputs = {x};
    if (prefix_upto >= 1) {
        x = add_features(cv, net, x, 0, static_cast<std::size_t>(prefix_upto));
        cv.g.outputs.push_back(x);
    }
    if (embedding) {
        x = add_features(cv, net, x, static_cast<std::size_t>(std::max(0, prefix_upto)), static_cast<std::size_t>(blocks));
        engine::Op pool;
        pool.kind = engine::OpKind::GlobalAveragePool;
        pool.inputs = {x};
        pool.outputs = {cv.activation({1, cv.g.tensors[static_cast<std::size_t>(x)].shape[3]}, "pooled")};
        cv.g.ops.push_back(pool);
        cv.g.outputs.push_back(pool.outputs[0]);
    }
    cv.g.metadata.size = cv.g.metadata.resize_shorter = size;
    engine::validate(cv.g);
    return cv.g;
}

engine::Graph trained_model_to_graph(const TrainedModel& m) {
    auto net = m.net;
    auto g = mobilenet_v2_to_graph(net, m.preprocess.size);
    if (!m.class_names.empty()) {
        if (static_cast<int>(m.class_names.size()) != net->num_classes())
            throw Error("trained model: " + std::to_string(m.class_names.size()) + " class names for " +
                        std::to_string(net->num_classes()) + " outputs");
        g.metadata.class_names = m.class_names;
    }
    g.metadata.size = m.preprocess.size;
    g.metadata.resize_shorter = m.preprocess.resize_shorter;
    g.metadata.mean = m.preprocess.mean;
    g.metadata.scale = m.preprocess.scale;
    const auto summary = engine::optimize(g);
    nlohmann::json build = {{"builder", "libtorch MobileNetV2"}, {"passes", summary}, {"precision", "fp32"}};
    auto info = nlohmann::json::parse(m.info_json, nullptr, false);
    if (!info.is_discarded()) build["run"] = info;
    g.metadata.build_json = build.dump();
    return g;
}

}  // namespace firesight::model
