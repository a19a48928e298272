// The int8 reference kernels' arguments, taken from a RunContext: an i8 activation and an int8
// layer's filter and bias.
#pragma once
#include "../kernels/reference/kernels.h"
#include "op_def.h"

namespace firesight::engine::ops {

inline ref::Q8Tensor q8_input(const RunContext& c, std::size_t k) {
    return {c.input<std::int8_t>(k), c.input_shape(k), c.input_tensor(k).quant};
}

inline ref::Q8Weights q8_weights(const RunContext& c) {
    return {c.input<std::int8_t>(1), c.input_tensor(1).shape, c.input_tensor(1).quant, c.input<std::int32_t>(2)};
}

}  // namespace firesight::engine::ops
