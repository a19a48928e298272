// Maps an IR op onto its reference kernel.
#include "firesight/error.h"
#include "kernels.h"

namespace firesight::engine::ref {

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
    if (op.activation != Activation::None &&
        (op.kind == OpKind::GlobalAveragePool || op.kind == OpKind::Softmax || op.kind == OpKind::Identity ||
         op.kind == OpKind::Reshape || op.kind == OpKind::Relu || op.kind == OpKind::Relu6))
        for (std::int64_t i = 0; i < n; ++i) y[i] = activate(y[i], op.activation);
}

}  // namespace firesight::engine::ref
