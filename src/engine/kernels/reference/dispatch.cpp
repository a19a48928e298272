// Maps an IR op onto its reference kernel.
#include "firesight/common/error.h"
#include "kernels.h"

namespace firesight::engine::ref {

namespace {

// The int8 ops: i8 activations, i8 filters, i32 biases.
void run_op_q8(const Graph& g, const Op& op, const std::vector<Shape>& shapes, const std::vector<void*>& data) {
    auto tensor = [&](std::size_t k) -> const Tensor& { return g.tensors[static_cast<std::size_t>(op.inputs[k])]; };
    auto q8 = [&](std::size_t k) {
        return Q8Tensor{static_cast<const std::int8_t*>(data[static_cast<std::size_t>(op.inputs[k])]),
                        shapes[static_cast<std::size_t>(op.inputs[k])], tensor(k).quant};
    };
    auto weights = [&]() {
        const bool has_bias = op.inputs.size() > 2 && op.inputs[2] >= 0;
        return Q8Weights{static_cast<const std::int8_t*>(data[static_cast<std::size_t>(op.inputs[1])]), tensor(1).shape,
                         tensor(1).quant,
                         has_bias ? static_cast<const std::int32_t*>(data[static_cast<std::size_t>(op.inputs[2])]) : nullptr};
    };
    const auto oi = static_cast<std::size_t>(op.outputs[0]);
    auto* y = static_cast<std::int8_t*>(data[oi]);
    const Shape& ys = shapes[oi];
    const Quantization& yq = g.tensors[oi].quant;
    std::int64_t n = 1;
    for (auto d : ys) n *= d;
    switch (op.kind) {
        case OpKind::Conv2D: conv2d_q8(op, q8(0), weights(), y, ys, yq); break;
        case OpKind::DepthwiseConv2D: depthwise_conv2d_q8(op, q8(0), weights(), y, ys, yq); break;
        case OpKind::FullyConnected: fully_connected_q8(op, q8(0), weights(), y, yq); break;
        case OpKind::Add: add_q8(op, q8(0).data, tensor(0).quant, q8(1).data, tensor(1).quant, y, yq, n); break;
        case OpKind::GlobalAveragePool: global_average_pool_q8(op, q8(0), y, yq); break;
        default: throw Error(std::string("reference backend: no int8 kernel for ") + op_kind_name(op.kind));
    }
}

}  // namespace

void run_op(const Graph& g, const Op& op, const std::vector<Shape>& shapes, const std::vector<void*>& data) {
    auto in = [&](std::size_t k) -> const float* {
        if (k >= op.inputs.size() || op.inputs[k] < 0) return nullptr;
        return static_cast<const float*>(data[static_cast<std::size_t>(op.inputs[k])]);
    };
    auto in_shape = [&](std::size_t k) -> const Shape& { return shapes[static_cast<std::size_t>(op.inputs[k])]; };
    const auto oi = static_cast<std::size_t>(op.outputs[0]);
    float* y = static_cast<float*>(data[oi]);
    const Shape& ys = shapes[oi];
    std::int64_t n = 1;
    for (auto d : ys) n *= d;
    const bool int8 = op.kind != OpKind::Quantize && op.kind != OpKind::Dequantize && !op.inputs.empty() &&
                      g.tensors[static_cast<std::size_t>(op.inputs[0])].dtype == DType::I8;
    if (int8 && op.kind != OpKind::Reshape && op.kind != OpKind::Identity) {
        run_op_q8(g, op, shapes, data);
        return;
    }
    switch (op.kind) {
        case OpKind::Conv2D: conv2d(op, in(0), in_shape(0), in(1), in_shape(1), in(2), y, ys); break;
        case OpKind::DepthwiseConv2D: depthwise_conv2d(op, in(0), in_shape(0), in(1), in_shape(1), in(2), y, ys); break;
        case OpKind::Add: add(op, in(0), in(1), y, n); break;
        case OpKind::GlobalAveragePool: global_average_pool(in(0), in_shape(0), y); break;
        case OpKind::FullyConnected: fully_connected(op, in(0), in_shape(0), in(1), in_shape(1), in(2), y); break;
        case OpKind::Relu: relu(in(0), y, n, -1.f); break;
        case OpKind::Relu6: relu(in(0), y, n, 6.f); break;
        case OpKind::Softmax: softmax(in(0), y, n / ys.back(), ys.back(), op.beta); break;
        case OpKind::Identity:
        case OpKind::Reshape:
            reshape(in(0), y, n * static_cast<std::int64_t>(dtype_size(g.tensors[oi].dtype)));
            break;
        case OpKind::Quantize: {
            const auto& q = g.tensors[oi].quant;
            quantize(in(0), static_cast<std::int8_t*>(data[oi]), n, q.scale[0], q.zero_point[0]);
            break;
        }
        case OpKind::Dequantize: {
            const auto& q = g.tensors[static_cast<std::size_t>(op.inputs[0])].quant;
            dequantize(static_cast<const std::int8_t*>(data[static_cast<std::size_t>(op.inputs[0])]), y, n, q.scale[0], q.zero_point[0]);
            break;
        }
        case OpKind::BatchNorm:
            batch_norm(op, in(0), in(1), in(2), in(3), in(4), y, n / ys.back(), ys.back());
            break;
        default: throw Error(std::string("reference backend: no kernel for ") + op_kind_name(op.kind));
    }
    // Ops without a fused-activation parameter in their kernel apply it here.
    if (op.activation != Activation::None && g.tensors[oi].dtype == DType::F32 &&
        (op.kind == OpKind::GlobalAveragePool || op.kind == OpKind::Softmax || op.kind == OpKind::Identity ||
         op.kind == OpKind::Reshape || op.kind == OpKind::Relu || op.kind == OpKind::Relu6))
        for (std::int64_t i = 0; i < n; ++i) y[i] = activate(y[i], op.activation);
}

}  // namespace firesight::engine::ref
