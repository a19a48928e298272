// Graph optimisation passes. Each leaves a valid graph behind and never edits weights in place
// (they may be memory-mapped from a file): changed weights become new constant tensors.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "firesight/engine/ir.h"
#include "firesight/engine/reference.h"
#include "firesight/builder/passes.h"
#include "firesight/common/error.h"

namespace firesight::engine {
namespace {

std::vector<int> consumer_counts(const Graph& g) {
    std::vector<int> n(g.tensors.size(), 0);
    for (const auto& op : g.ops)
        for (auto i : op.inputs)
            if (i >= 0) ++n[static_cast<std::size_t>(i)];
    for (auto o : g.outputs) ++n[static_cast<std::size_t>(o)];
    return n;
}

// Index of the op that writes tensor t, or -1.
std::vector<int> producers(const Graph& g) {
    std::vector<int> p(g.tensors.size(), -1);
    for (std::size_t i = 0; i < g.ops.size(); ++i) p[static_cast<std::size_t>(g.ops[i].outputs[0])] = static_cast<int>(i);
    return p;
}

bool is_graph_output(const Graph& g, std::int32_t t) { return std::find(g.outputs.begin(), g.outputs.end(), t) != g.outputs.end(); }
bool is_graph_input(const Graph& g, std::int32_t t) { return std::find(g.inputs.begin(), g.inputs.end(), t) != g.inputs.end(); }

void replace_uses(Graph& g, std::int32_t from, std::int32_t to) {
    for (auto& op : g.ops)
        for (auto& i : op.inputs)
            if (i == from) i = to;
}

const float* const_data(const Graph& g, const Op& op, std::size_t k) {
    if (k >= op.inputs.size() || op.inputs[k] < 0) return nullptr;
    const auto& t = g.tensors[static_cast<std::size_t>(op.inputs[k])];
    return t.constant ? t.data() : nullptr;
}

bool has_weights(OpKind k) { return k == OpKind::Conv2D || k == OpKind::DepthwiseConv2D || k == OpKind::FullyConnected; }

}  // namespace

int fold_batch_norm(Graph& g) {
    int changes = 0;
    auto uses = consumer_counts(g);
    auto prod = producers(g);
    for (std::size_t bi = 0; bi < g.ops.size(); ++bi) {
        Op& bn = g.ops[bi];
        if (bn.kind != OpKind::BatchNorm) continue;
        const auto x = bn.inputs[0];
        const int pi = prod[static_cast<std::size_t>(x)];
        if (pi < 0 || uses[static_cast<std::size_t>(x)] != 1 || is_graph_output(g, x)) continue;
        Op& p = g.ops[static_cast<std::size_t>(pi)];
        if (!has_weights(p.kind) || p.activation != Activation::None || !const_data(g, p, 1)) continue;
        const float *gamma = const_data(g, bn, 1), *beta = const_data(g, bn, 2), *mean = const_data(g, bn, 3), *var = const_data(g, bn, 4);
        if (!gamma || !beta || !mean || !var) continue;
        const auto& w = g.tensors[static_cast<std::size_t>(p.inputs[1])];
        const auto wshape = w.shape;
        const std::int64_t out_ch = p.kind == OpKind::DepthwiseConv2D ? wshape[3] : wshape[0];
        std::vector<float> nw(w.data(), w.data() + w.element_count());
        std::vector<float> nb(static_cast<std::size_t>(out_ch), 0.f);
        const float* old_bias = const_data(g, p, 2);
        std::vector<float> s(static_cast<std::size_t>(out_ch));
        for (std::int64_t c = 0; c < out_ch; ++c) {
            s[static_cast<std::size_t>(c)] = gamma[c] / std::sqrt(var[c] + bn.epsilon);
            nb[static_cast<std::size_t>(c)] = ((old_bias ? old_bias[c] : 0.f) - mean[c]) * s[static_cast<std::size_t>(c)] + beta[c];
        }
        if (p.kind == OpKind::DepthwiseConv2D) {
            for (std::size_t i = 0; i < nw.size(); ++i) nw[i] *= s[i % static_cast<std::size_t>(out_ch)];
        } else {
            const std::size_t per = nw.size() / static_cast<std::size_t>(out_ch);
            for (std::size_t i = 0; i < nw.size(); ++i) nw[i] *= s[i / per];
        }
        const std::string base = g.tensors[static_cast<std::size_t>(p.inputs[1])].name;
        const auto wi = g.add_constant(base + "/bn_folded", wshape, std::move(nw));
        const auto bidx = g.add_constant(base + "/bn_folded_bias", {static_cast<std::int32_t>(out_ch)}, std::move(nb));
        // add_constant may have reallocated g.tensors but not g.ops; p and bn stay valid.
        p.inputs.resize(3);
        p.inputs[1] = wi;
        p.inputs[2] = bidx;
        p.outputs[0] = bn.outputs[0];
        p.activation = bn.activation;
        bn.kind = OpKind::Identity;  // removed below
        bn.inputs = {-2};
        ++changes;
    }
    if (changes)
        g.ops.erase(std::remove_if(g.ops.begin(), g.ops.end(), [](const Op& o) { return o.inputs.size() == 1 && o.inputs[0] == -2; }),
                    g.ops.end());
    return changes;
}

int fuse_activations(Graph& g) {
    int changes = 0;
    auto uses = consumer_counts(g);
    auto prod = producers(g);
    std::vector<char> drop(g.ops.size(), 0);
    for (std::size_t ai = 0; ai < g.ops.size(); ++ai) {
        const Op& a = g.ops[ai];
        if (a.kind != OpKind::Relu && a.kind != OpKind::Relu6) continue;
        if (a.activation != Activation::None) continue;
        const auto x = a.inputs[0];
        const int pi = prod[static_cast<std::size_t>(x)];
        if (pi < 0 || drop[static_cast<std::size_t>(pi)] || uses[static_cast<std::size_t>(x)] != 1 || is_graph_output(g, x)) continue;
        Op& p = g.ops[static_cast<std::size_t>(pi)];
        const bool fusable = has_weights(p.kind) || p.kind == OpKind::Add || p.kind == OpKind::BatchNorm;
        if (!fusable) continue;
        // Any composition of relu and relu6 is relu6 if either is relu6, else relu.
        const bool six = a.kind == OpKind::Relu6 || p.activation == Activation::Relu6;
        p.activation = six ? Activation::Relu6 : Activation::Relu;
        p.outputs[0] = a.outputs[0];
        drop[ai] = 1;
        ++changes;
    }
    std::size_t k = 0;
    g.ops.erase(std::remove_if(g.ops.begin(), g.ops.end(), [&](const Op&) { return drop[k++] != 0; }), g.ops.end());
    return changes;
}

int remove_identities(Graph& g) {
    int changes = 0;
    std::vector<char> drop(g.ops.size(), 0);
    for (std::size_t i = 0; i < g.ops.size(); ++i) {
        const Op& op = g.ops[i];
        const auto in = op.inputs[0], out = op.outputs[0];
        const auto& ti = g.tensors[static_cast<std::size_t>(in)];
        const auto& to = g.tensors[static_cast<std::size_t>(out)];
        const bool identity = op.kind == OpKind::Identity ||
                              (op.kind == OpKind::Reshape && ti.shape == to.shape && ti.dtype == to.dtype);
        if (!identity || op.activation != Activation::None) continue;
        if (is_graph_output(g, out)) {
            // The graph output can take over the input only if that is computed by an op.
            if (is_graph_input(g, in) || is_graph_output(g, in) || ti.constant) continue;
            std::replace(g.outputs.begin(), g.outputs.end(), out, in);
        }
        replace_uses(g, out, in);
        drop[i] = 1;
        ++changes;
    }
    std::size_t k = 0;
    g.ops.erase(std::remove_if(g.ops.begin(), g.ops.end(), [&](const Op&) { return drop[k++] != 0; }), g.ops.end());
    return changes;
}

int fold_constants(Graph& g) {
    int changes = 0;
    std::vector<char> drop(g.ops.size(), 0);
    for (std::size_t i = 0; i < g.ops.size(); ++i) {
        const Op& op = g.ops[i];
        const auto out = op.outputs[0];
        if (is_graph_output(g, out) || g.tensors[static_cast<std::size_t>(out)].dtype != DType::F32) continue;
        bool all_const = true;
        for (auto in : op.inputs)
            if (in >= 0 && !g.tensors[static_cast<std::size_t>(in)].constant) all_const = false;
        if (!all_const) continue;
        std::vector<std::vector<std::int32_t>> shapes(g.tensors.size());
        std::vector<void*> data(g.tensors.size(), nullptr);
        for (auto in : op.inputs)
            if (in >= 0) {
                shapes[static_cast<std::size_t>(in)] = g.tensors[static_cast<std::size_t>(in)].shape;
                data[static_cast<std::size_t>(in)] = const_cast<float*>(g.tensors[static_cast<std::size_t>(in)].data());
            }
        auto& ot = g.tensors[static_cast<std::size_t>(out)];
        shapes[static_cast<std::size_t>(out)] = ot.shape;
        std::vector<float> values(static_cast<std::size_t>(ot.element_count()));
        data[static_cast<std::size_t>(out)] = values.data();
        run_reference_op(g, op, shapes, data);
        ot.constant = true;
        ot.owned = std::move(values);
        ot.quant = {};
        drop[i] = 1;
        ++changes;
    }
    std::size_t k = 0;
    g.ops.erase(std::remove_if(g.ops.begin(), g.ops.end(), [&](const Op&) { return drop[k++] != 0; }), g.ops.end());
    return changes;
}

int remove_dead(Graph& g) {
    int changes = 0;
    std::vector<char> live(g.tensors.size(), 0);
    for (auto o : g.outputs) live[static_cast<std::size_t>(o)] = 1;
    std::vector<char> keep(g.ops.size(), 0);
    for (std::size_t i = g.ops.size(); i-- > 0;) {
        if (!live[static_cast<std::size_t>(g.ops[i].outputs[0])]) continue;
        keep[i] = 1;
        for (auto in : g.ops[i].inputs)
            if (in >= 0) live[static_cast<std::size_t>(in)] = 1;
    }
    for (auto in : g.inputs) live[static_cast<std::size_t>(in)] = 1;
    std::size_t k = 0;
    const auto before = g.ops.size();
    g.ops.erase(std::remove_if(g.ops.begin(), g.ops.end(), [&](const Op&) { return !keep[k++]; }), g.ops.end());
    changes += static_cast<int>(before - g.ops.size());
    // Compact the tensor table.
    std::vector<std::int32_t> remap(g.tensors.size(), -1);
    std::vector<Tensor> kept;
    for (std::size_t i = 0; i < g.tensors.size(); ++i) {
        if (!live[i]) {
            ++changes;
            continue;
        }
        remap[i] = static_cast<std::int32_t>(kept.size());
        kept.push_back(std::move(g.tensors[i]));
    }
    g.tensors = std::move(kept);
    auto fix = [&](std::int32_t& i) {
        if (i >= 0) i = remap[static_cast<std::size_t>(i)];
    };
    for (auto& op : g.ops) {
        for (auto& i : op.inputs) fix(i);
        for (auto& o : op.outputs) fix(o);
    }
    for (auto& i : g.inputs) fix(i);
    for (auto& o : g.outputs) fix(o);
    return changes;
}

std::string optimize(Graph& g) {
    validate(g);
    const auto ops_before = g.ops.size();
    int folded_bn = 0, fused = 0, identities = 0, constants = 0, dead = 0;
    for (int round = 0; round < 16; ++round) {
        const int c = fold_constants(g), i = remove_identities(g), b = fold_batch_norm(g), f = fuse_activations(g), d = remove_dead(g);
        constants += c, identities += i, folded_bn += b, fused += f, dead += d;
        if (c + i + b + f + d == 0) break;
    }
    validate(g);
    return "optimize: " + std::to_string(ops_before) + " -> " + std::to_string(g.ops.size()) + " ops (" +
           std::to_string(folded_bn) + " batch norms folded, " + std::to_string(fused) + " activations fused, " +
           std::to_string(identities) + " identities removed, " + std::to_string(constants) + " ops constant-folded, " +
           std::to_string(dead) + " dead ops/tensors removed)";
}

SamePadding same_padding(int in, int kernel, int stride, int dilation) {
    const int eff = (kernel - 1) * dilation + 1;
    const int out = (in + stride - 1) / stride;
    const int total = std::max((out - 1) * stride + eff - in, 0);
    return {total / 2, total - total / 2};
}

void set_input_size(Graph& g, int size) {
    if (size < 1 || size > 8192) throw Error("set_input_size: size " + std::to_string(size) + " is out of range");
    const auto old = infer_shapes(g, 1);
    auto& input = g.tensors[static_cast<std::size_t>(g.inputs.at(0))];
    if (input.shape.size() != 4) throw Error("set_input_size: input '" + input.name + "' is not NHWC");
    const int old_size = input.shape[1];
    auto is_conv = [](const Op& op) { return op.kind == OpKind::Conv2D || op.kind == OpKind::DepthwiseConv2D; };
    auto filter = [&](const Op& op) -> const std::vector<std::int32_t>& { return g.tensors[static_cast<std::size_t>(op.inputs[1])].shape; };
    // Which convolutions are SAME (re-padded for the new size) and which VALID (left at zero).
    std::vector<char> same(g.ops.size(), 0);
    for (std::size_t i = 0; i < g.ops.size(); ++i) {
        const Op& op = g.ops[i];
        if (!is_conv(op)) continue;
        const auto& x = old[static_cast<std::size_t>(op.inputs[0])];
        const auto ph = same_padding(x[1], filter(op)[1], op.stride_h, op.dilation_h);
        const auto pw = same_padding(x[2], filter(op)[2], op.stride_w, op.dilation_w);
        const bool valid = op.pad_top == 0 && op.pad_bottom == 0 && op.pad_left == 0 && op.pad_right == 0;
        same[i] = op.pad_top == ph.before && op.pad_bottom == ph.after && op.pad_left == pw.before && op.pad_right == pw.after;
        if (!same[i] && !valid)
            throw Error("set_input_size: op " + std::to_string(i) + " (" + op_kind_name(op.kind) +
                        ") has padding that is neither TF SAME nor none for its input");
    }
    input.shape[1] = input.shape[2] = size;
    std::vector<std::vector<std::int32_t>> shapes(g.tensors.size());
    for (std::size_t i = 0; i < g.tensors.size(); ++i)
        if (g.tensors[i].constant) shapes[i] = g.tensors[i].shape;
    shapes[static_cast<std::size_t>(g.inputs[0])] = input.shape;
    shapes[static_cast<std::size_t>(g.inputs[0])][0] = 1;
    for (std::size_t i = 0; i < g.ops.size(); ++i) {
        Op& op = g.ops[i];
        if (same[i]) {
            const auto& x = shapes[static_cast<std::size_t>(op.inputs[0])];
            const auto ph = same_padding(x[1], filter(op)[1], op.stride_h, op.dilation_h);
            const auto pw = same_padding(x[2], filter(op)[2], op.stride_w, op.dilation_w);
            op.pad_top = ph.before, op.pad_bottom = ph.after, op.pad_left = pw.before, op.pad_right = pw.after;
        }
        const auto out = infer_op_output_shape(g, i, shapes);
        auto& t = g.tensors[static_cast<std::size_t>(op.outputs[0])];
        t.shape = out;
        shapes[static_cast<std::size_t>(op.outputs[0])] = out;
    }
    g.metadata.resize_shorter = static_cast<int>(std::lround(static_cast<double>(g.metadata.resize_shorter) * size / old_size));
    g.metadata.size = size;
    validate(g);
}

Graph cut_after(const Graph& full, std::int32_t tensor) {
    if (tensor < 0 || static_cast<std::size_t>(tensor) >= full.tensors.size())
        throw Error("cut_after: tensor " + std::to_string(tensor) + " is not in the graph");
    Graph g = full;
    std::int32_t out = tensor;
    if (g.tensors[static_cast<std::size_t>(tensor)].dtype != DType::F32) {
        Tensor f;
        f.name = g.tensors[static_cast<std::size_t>(tensor)].name + ".cut_float";
        f.shape = g.tensors[static_cast<std::size_t>(tensor)].shape;
        out = g.add_tensor(std::move(f));
        Op op;
        op.kind = OpKind::Dequantize;
        op.inputs = {tensor};
        op.outputs = {out};
        // Right behind its producer keeps the ops in topological order.
        std::size_t at = 0;
        for (std::size_t i = 0; i < g.ops.size(); ++i)
            for (auto o : g.ops[i].outputs)
                if (o == tensor) at = i + 1;
        g.ops.insert(g.ops.begin() + static_cast<std::ptrdiff_t>(at), op);
    }
    g.outputs = {out};
    remove_dead(g);
    return g;
}

}  // namespace firesight::engine
