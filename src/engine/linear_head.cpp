// Finding the GAP -> linear -> softmax head of a classifier graph, and the session graph that
// keeps the feature map the pool reads (see linear_head.h).
#include "linear_head.h"

#include <algorithm>
#include <string>

#include "firesight/common/error.h"

namespace firesight::engine {
namespace {

const char* kNeeds = "class activation maps need a graph that ends in global average pool -> linear layer -> softmax";

class HeadFinder {
public:
    explicit HeadFinder(const Graph& g) : g_(g), producer_(g.tensors.size(), -1) {
        for (std::size_t i = 0; i < g.ops.size(); ++i)
            for (auto t : g.ops[i].outputs)
                if (t >= 0) producer_[static_cast<std::size_t>(t)] = static_cast<int>(i);
    }

    // The op that produces `t`, looking through ops that only reshape or convert it.
    const Op* producer(std::int32_t t, bool through_dequantize) const {
        while (t >= 0) {
            const int i = producer_[static_cast<std::size_t>(t)];
            if (i < 0) return nullptr;
            const Op& op = g_.ops[static_cast<std::size_t>(i)];
            const bool pass = op.kind == OpKind::Reshape || op.kind == OpKind::Identity ||
                              (through_dequantize && op.kind == OpKind::Dequantize);
            if (!pass) return &op;
            t = op.inputs.empty() ? -1 : op.inputs[0];
        }
        return nullptr;
    }

    LinearHead find() const {
        if (g_.outputs.empty()) throw Error(std::string(kNeeds) + "; this graph has no outputs");
        const Op* softmax = producer(g_.outputs[0], false);
        if (!softmax || softmax->kind != OpKind::Softmax) throw Error(std::string(kNeeds) + "; its first output is not a softmax's");
        const Op* linear = producer(softmax->inputs[0], true);
        if (!linear || !is_linear(*linear)) throw Error(std::string(kNeeds) + "; the softmax does not read a fully connected layer or a 1x1 conv");
        if (linear->activation != Activation::None) throw Error(std::string(kNeeds) + "; the linear layer has an activation");
        const Op* pool = producer(linear->inputs[0], false);
        if (!pool || pool->kind != OpKind::GlobalAveragePool) throw Error(std::string(kNeeds) + "; the linear layer does not read a global average pool");
        if (pool->activation != Activation::None) throw Error(std::string(kNeeds) + "; the global average pool has an activation");
        LinearHead h;
        h.features = pool->inputs[0];
        const auto& fs = g_.tensors[static_cast<std::size_t>(h.features)].shape;
        const Tensor& w = g_.tensors[static_cast<std::size_t>(linear->inputs[1])];
        if (fs.size() != 4 || !w.constant) throw Error(std::string(kNeeds) + "; the pool's input is not N x H x W x C or the weights are not constant");
        h.classes = w.shape[0];
        h.channels = static_cast<int>(w.element_count() / h.classes);
        if (h.channels != fs[3])
            throw Error(std::string(kNeeds) + "; the linear layer has " + std::to_string(h.channels) + " inputs for " +
                        std::to_string(fs[3]) + " feature channels");
        h.weights = dequantized(w);
        h.bias.assign(static_cast<std::size_t>(h.classes), 0.f);
        if (linear->inputs.size() > 2 && linear->inputs[2] >= 0) h.bias = dequantized(g_.tensors[static_cast<std::size_t>(linear->inputs[2])]);
        if (static_cast<int>(h.bias.size()) != h.classes) throw Error(std::string(kNeeds) + "; the linear layer's bias does not match its classes");
        return h;
    }

private:
    // A 1x1 conv on a 1x1 map (TFLite's MobileNetV2 head) is a fully connected layer.
    bool is_linear(const Op& op) const {
        if (op.inputs.size() < 2) return false;
        if (op.kind == OpKind::FullyConnected) return g_.tensors[static_cast<std::size_t>(op.inputs[1])].shape.size() == 2;
        if (op.kind != OpKind::Conv2D || op.groups != 1) return false;
        const auto& ws = g_.tensors[static_cast<std::size_t>(op.inputs[1])].shape;
        const auto& xs = g_.tensors[static_cast<std::size_t>(op.inputs[0])].shape;
        return ws.size() == 4 && ws[1] == 1 && ws[2] == 1 && xs.size() == 4 && xs[1] == 1 && xs[2] == 1;
    }

    // A constant's real values: int8 weights and int32 biases as scale * (q - zero point), with
    // one scale per tensor or per output channel (axis 0, the only one the quantizer writes).
    static std::vector<float> dequantized(const Tensor& t) {
        const auto n = static_cast<std::size_t>(t.element_count());
        if (t.dtype == DType::F32) return std::vector<float>(t.data(), t.data() + n);
        const auto& q = t.quant;
        if (q.scale.empty() || q.zero_point.size() != q.scale.size() || (q.scale.size() > 1 && q.axis != 0))
            throw Error("class activation maps: constant '" + t.name + "' has a quantization they cannot undo");
        const std::size_t channels = q.scale.size(), per = n / std::max<std::size_t>(1, static_cast<std::size_t>(t.shape[0]));
        std::vector<float> v(n);
        for (std::size_t i = 0; i < n; ++i) {
            const std::size_t c = channels == 1 ? 0 : i / per;
            const std::int32_t raw = t.dtype == DType::I8 ? t.data_i8()[i] : t.data_i32()[i];
            v[i] = q.scale[c] * static_cast<float>(raw - q.zero_point[c]);
        }
        return v;
    }

    const Graph& g_;
    std::vector<int> producer_;
};

}  // namespace

LinearHead find_linear_head(const Graph& g) { return HeadFinder(g).find(); }

Graph with_feature_output(const Graph& g, std::int32_t features, const std::shared_ptr<const void>& owner) {
    Graph s;
    s.ops = g.ops;
    s.inputs = g.inputs;
    s.outputs = g.outputs;
    s.metadata = g.metadata;
    s.tensors.reserve(g.tensors.size() + 1);
    for (const auto& t : g.tensors) {
        Tensor c;
        c.name = t.name;
        c.shape = t.shape;
        c.dtype = t.dtype;
        c.quant = t.quant;
        c.constant = t.constant;
        if (t.constant) {
            c.external = t.bytes();
            c.storage = owner;
        }
        s.tensors.push_back(std::move(c));
    }
    const Tensor& f = g.tensors[static_cast<std::size_t>(features)];
    if (f.dtype == DType::F32) {
        s.outputs.push_back(features);
        return s;
    }
    Tensor out;
    out.name = f.name + "/dequantized";
    out.shape = f.shape;
    Op dq;
    dq.kind = OpKind::Dequantize;
    dq.inputs = {features};
    dq.outputs = {s.add_tensor(std::move(out))};
    // Right after the op that writes the feature map, so its buffer is not held longer than before.
    auto at = std::find_if(s.ops.begin(), s.ops.end(), [&](const Op& op) {
        return std::find(op.outputs.begin(), op.outputs.end(), features) != op.outputs.end();
    });
    s.ops.insert(at == s.ops.end() ? at : at + 1, dq);
    s.outputs.push_back(dq.outputs[0]);
    return s;
}

}  // namespace firesight::engine
