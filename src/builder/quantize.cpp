// The int8 quantization pass: rewrites a float graph so that its convolutions, fully connected
// layers, adds and pooling run on int8 activations with per-channel int8 weights.
#include <algorithm>
#include <cmath>
#include <limits>
#include <unordered_set>

#include "firesight/engine/ir.h"
#include "firesight/builder/passes.h"
#include "firesight/builder/quantize.h"
#include "firesight/common/error.h"
#include "firesight/engine/reference.h"

namespace firesight::engine {
namespace {

// Asymmetric per-tensor parameters for an observed range. The range always contains 0 so that
// zero padding and ReLU's 0 are exact.
Quantization activation_quantization(const std::string& name, const std::map<std::string, TensorRange>& ranges) {
    const auto it = ranges.find(name);
    if (it == ranges.end()) throw Error("quantize_int8: no calibration range for tensor '" + name + "'");
    const float lo = std::min(it->second.min, 0.f), hi = std::max(it->second.max, 0.f);
    if (!std::isfinite(lo) || !std::isfinite(hi))
        throw Error("quantize_int8: the range of tensor '" + name + "' is not finite");
    // A tensor that is always 0 still needs a positive scale; any will do.
    const float scale = hi - lo > 1e-12f ? (hi - lo) / 255.f : 1e-6f;
    const float zp = std::nearbyint(-128.f - lo / scale);
    Quantization q;
    q.scale = {scale};
    q.zero_point = {static_cast<std::int32_t>(std::clamp(zp, -128.f, 127.f))};
    return q;
}

// A weight tensor with this few distinct values may have been clustered.
constexpr std::size_t kClusteredMaxValues = 256;

// Clustered weights get one scale for the whole tensor when that keeps every distinct value
// distinct in int8: then the int8 tensor has exactly the k values of the float one, and the
// palette codec still stores log2(k) bits per weight. Otherwise (a small continuous tensor, or
// weights on a fine grid such as an imported uint8 model's, where one symmetric scale would merge
// neighbours and wipe out the small channels) per-channel scales are kept.
bool is_clustered(const float* w, std::int64_t n) {
    std::unordered_set<float> distinct;
    float max_abs = 0.f;
    for (std::int64_t i = 0; i < n; ++i) {
        distinct.insert(w[i] == 0.f ? 0.f : w[i]);  // -0 and +0 are one value
        if (distinct.size() > kClusteredMaxValues) return false;
        max_abs = std::max(max_abs, std::fabs(w[i]));
    }
    // Continuous weights practically never repeat a value; clustered ones always do.
    if (static_cast<std::int64_t>(distinct.size()) >= n || max_abs == 0.f) return false;
    const float scale = max_abs / 127.f;
    std::unordered_set<int> codes;
    for (float v : distinct) codes.insert(static_cast<int>(std::nearbyint(v / scale)));
    return codes.size() == distinct.size();
}

struct QuantizedWeights {
    std::vector<std::int8_t> values;
    std::vector<float> scale;  // one per channel along `axis`
};

// Symmetric int8 weights with one scale per slice along `axis` (or one for the whole tensor when
// `per_tensor`, replicated per channel).
QuantizedWeights quantize_weights(const Tensor& w, std::int32_t axis, bool per_tensor) {
    const auto& s = w.shape;
    const std::int64_t n = w.element_count();
    const float* v = w.data();
    std::int64_t inner = 1;
    for (std::size_t k = static_cast<std::size_t>(axis) + 1; k < s.size(); ++k) inner *= s[k];
    const std::int32_t channels = s[static_cast<std::size_t>(axis)];
    auto channel_of = [&](std::int64_t i) { return static_cast<std::int32_t>((i / inner) % channels); };
    std::vector<float> max_abs(static_cast<std::size_t>(channels), 0.f);
    float tensor_max = 0.f;
    for (std::int64_t i = 0; i < n; ++i) {
        const float a = std::fabs(v[i]);
        auto& m = max_abs[static_cast<std::size_t>(channel_of(i))];
        m = std::max(m, a);
        tensor_max = std::max(tensor_max, a);
    }
    QuantizedWeights q;
    const float tensor_scale = tensor_max > 0.f ? tensor_max / 127.f : 1.f;
    for (std::int32_t c = 0; c < channels; ++c) {
        const float m = max_abs[static_cast<std::size_t>(c)];
        // An all-zero channel takes the tensor's scale: its value does not matter, but a tiny one
        // would make the requantization scale unrepresentable.
        q.scale.push_back(per_tensor || m == 0.f ? tensor_scale : m / 127.f);
    }
    q.values.resize(static_cast<std::size_t>(n));
    for (std::int64_t i = 0; i < n; ++i) {
        const float r = std::nearbyint(v[i] / q.scale[static_cast<std::size_t>(channel_of(i))]);
        q.values[static_cast<std::size_t>(i)] = static_cast<std::int8_t>(std::clamp(r, -127.f, 127.f));
    }
    return q;
}

class Quantizer {
public:
    Quantizer(Graph& g, const std::map<std::string, TensorRange>& ranges, const QuantizeOptions& opt)
        : g_(g), ranges_(ranges), opt_(opt) {}

    void run() {
        validate(g_);
        for (const auto& t : g_.tensors)
            if (!t.constant && t.dtype != DType::F32)
                throw Error("quantize_int8: tensor '" + t.name + "' is already " + dtype_name(t.dtype) + " (graph quantized twice?)");
        // Checked before anything changes, so a bad name leaves the graph as it was.
        std::set<std::string> filters;
        for (const auto& op : g_.ops)
            if ((op.kind == OpKind::Conv2D || op.kind == OpKind::DepthwiseConv2D || op.kind == OpKind::FullyConnected) && weights_constant(op))
                filters.insert(tensor(op.inputs[1]).name);
        for (const auto& name : opt_.one_scale)
            if (!filters.count(name))
                throw Error("quantize_int8: QuantizeOptions::one_scale names '" + name + "', which is not the filter of a conv or fully connected layer");
        std::vector<Op> old_ops = std::move(g_.ops);
        g_.ops.clear();
        for (Op op : old_ops) {
            switch (op.kind) {
                case OpKind::Conv2D:
                case OpKind::DepthwiseConv2D:
                case OpKind::FullyConnected:
                    if (weights_constant(op)) {
                        quantize_layer(op);
                        continue;
                    }
                    break;
                case OpKind::Add:
                    op.inputs[0] = as_int8(op.inputs[0]);
                    op.inputs[1] = as_int8(op.inputs[1]);
                    make_int8_output(op, std::max(input_scale(op, 0), input_scale(op, 1)) / 255.f);
                    g_.ops.push_back(op);
                    continue;
                case OpKind::GlobalAveragePool:
                    op.inputs[0] = as_int8(op.inputs[0]);
                    make_int8_output(op, input_scale(op, 0) / 255.f);
                    g_.ops.push_back(op);
                    continue;
                case OpKind::Reshape:
                case OpKind::Identity: {
                    // Moving data does not change its values: the output keeps the input's int8.
                    const auto& x = tensor(op.inputs[0]);
                    if (x.dtype == DType::I8) {
                        auto& y = tensor(op.outputs[0]);
                        y.dtype = DType::I8;
                        y.quant = x.quant;
                        g_.ops.push_back(op);
                        continue;
                    }
                    break;
                }
                default:
                    break;
            }
            for (auto& in : op.inputs)
                if (in >= 0 && !tensor(in).constant) in = as_float(in);
            g_.ops.push_back(op);
        }
        // Outputs stay f32 under their own names: the int8 tensor that fed them is renamed.
        for (auto& o : g_.outputs) {
            if (tensor(o).dtype == DType::F32) continue;
            const auto f = as_float(o);
            std::string name = tensor(o).name;
            tensor(o).name = name + ".int8";
            tensor(f).name = std::move(name);
            o = f;
        }
        remove_dead(g_);
        validate(g_);
    }

private:
    Tensor& tensor(std::int32_t i) { return g_.tensors[static_cast<std::size_t>(i)]; }

    bool weights_constant(const Op& op) {
        if (!tensor(op.inputs[1]).constant || tensor(op.inputs[1]).dtype != DType::F32) return false;
        return op.inputs.size() < 3 || op.inputs[2] < 0 || tensor(op.inputs[2]).constant;
    }

    // An int8 version of tensor `t`: itself when already int8, else a Quantize of it (once).
    std::int32_t as_int8(std::int32_t t) {
        if (tensor(t).dtype == DType::I8) return t;
        if (auto it = quantized_.find(t); it != quantized_.end()) return it->second;
        Tensor q;
        q.name = tensor(t).name + ".int8";
        q.shape = tensor(t).shape;
        q.dtype = DType::I8;
        q.quant = activation_quantization(tensor(t).name, ranges_);
        const auto qi = g_.add_tensor(std::move(q));
        Op op;
        op.kind = OpKind::Quantize;
        op.inputs = {t};
        op.outputs = {qi};
        g_.ops.push_back(op);
        quantized_[t] = qi;
        return qi;
    }

    // A float version of tensor `t`: itself when f32, else a Dequantize of it (once).
    std::int32_t as_float(std::int32_t t) {
        if (tensor(t).dtype == DType::F32) return t;
        if (auto it = dequantized_.find(t); it != dequantized_.end()) return it->second;
        Tensor f;
        f.name = tensor(t).name + ".float";
        f.shape = tensor(t).shape;
        const auto fi = g_.add_tensor(std::move(f));
        Op op;
        op.kind = OpKind::Dequantize;
        op.inputs = {t};
        op.outputs = {fi};
        g_.ops.push_back(op);
        dequantized_[t] = fi;
        return fi;
    }

    // The output's quantization from its range. XNNPACK refuses requantization scales of 256 and
    // more (input_scale x filter_scale / output_scale; an add's input_scale / output_scale), which
    // an output that stayed (nearly) constant during calibration would ask for: its scale is then
    // raised to `min_scale`, keeping the zero point.
    void make_int8_output(const Op& op, float min_scale = 0.f) {
        auto& y = tensor(op.outputs[0]);
        y.quant = activation_quantization(y.name, ranges_);
        y.quant.scale[0] = std::max(y.quant.scale[0], min_scale);
        y.dtype = DType::I8;
    }
    float input_scale(const Op& op, std::size_t k) { return tensor(op.inputs[k]).quant.scale[0]; }

    void quantize_layer(Op op) {
        op.inputs[0] = as_int8(op.inputs[0]);
        const float input_scale = tensor(op.inputs[0]).quant.scale[0];
        const Tensor& w = tensor(op.inputs[1]);
        // Output channels lie along axis 0 of a conv filter [O,KH,KW,I] and axis 3 of a depthwise
        // one [1,KH,KW,C*m]. XNNPACK (2022-02) has no per-channel qs8 fully connected operator, so a
        // fully connected layer's weights get one scale; the layer is small next to the convs.
        const std::int32_t axis = op.kind == OpKind::DepthwiseConv2D ? 3 : 0;
        const bool named = opt_.one_scale.count(w.name) > 0;
        const bool per_tensor = op.kind == OpKind::FullyConnected || named || is_clustered(w.data(), w.element_count());
        auto qw = quantize_weights(w, axis, per_tensor);
        Quantization wq;
        wq.scale = qw.scale;
        wq.zero_point.assign(qw.scale.size(), 0);
        wq.axis = axis;
        if (op.kind == OpKind::FullyConnected) {
            wq.scale.resize(1);
            wq.zero_point.resize(1);
            wq.axis = 0;
        }
        const std::string wname = w.name + ".int8";
        const auto wshape = w.shape;
        op.inputs[1] = g_.add_constant_i8(wname, wshape, std::move(qw.values), wq);
        if (op.inputs.size() > 2 && op.inputs[2] >= 0) {
            const Tensor& b = tensor(op.inputs[2]);
            Quantization bq;
            bq.axis = 0;
            std::vector<std::int32_t> values(static_cast<std::size_t>(b.element_count()));
            for (std::size_t c = 0; c < values.size(); ++c) {
                const float s = input_scale * wq.scale[wq.scale.size() == 1 ? 0 : c];
                const double r = std::nearbyint(static_cast<double>(b.data()[c]) / s);
                values[c] = static_cast<std::int32_t>(std::clamp(r, -2147483647.0, 2147483647.0));
                if (c < wq.scale.size()) bq.scale.push_back(s);
            }
            bq.zero_point.assign(bq.scale.size(), 0);
            const std::string bname = b.name + ".int32";
            const auto bshape = b.shape;
            op.inputs[2] = g_.add_constant_i32(bname, bshape, std::move(values), bq);
        }
        make_int8_output(op, input_scale * *std::max_element(wq.scale.begin(), wq.scale.end()) / 255.f);
        g_.ops.push_back(op);
    }

    Graph& g_;
    const std::map<std::string, TensorRange>& ranges_;
    const QuantizeOptions& opt_;
    std::map<std::int32_t, std::int32_t> quantized_, dequantized_;
};

}  // namespace

void quantize_int8(Graph& g, const std::map<std::string, TensorRange>& ranges, const QuantizeOptions& opt) {
    Quantizer(g, ranges, opt).run();
}

std::map<std::string, TensorRange> minmax_ranges(const Graph& g, const std::vector<std::vector<float>>& inputs, int batch) {
    std::map<std::string, TensorRange> r;
    for (const auto& in : inputs) {
        const auto values = run_reference_all(g, {in.data()}, batch);
        for (std::size_t i = 0; i < g.tensors.size(); ++i) {
            const auto& t = g.tensors[i];
            if (t.constant || values[i].empty()) continue;
            const auto [lo, hi] = std::minmax_element(values[i].begin(), values[i].end());
            auto [it, fresh] = r.try_emplace(t.name, TensorRange{*lo, *hi});
            if (!fresh) it->second = {std::min(it->second.min, *lo), std::max(it->second.max, *hi)};
        }
    }
    return r;
}

}  // namespace firesight::engine
