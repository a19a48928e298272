// Reference int8 fully connected layer: y[n,o] = requantize(bias[o] + sum_i (x[n,i] - x_zero) * w[o,i]).
#include "kernels.h"

namespace firesight::engine::ref {

void fully_connected_q8(const Op& op, Q8Tensor x, Q8Weights w, std::int8_t* y, const Quantization& yq) {
    const std::int64_t N = x.shape[0], O = w.filter_shape[0], I = w.filter_shape[1];
    const std::int32_t xz = x.quant.zero_point[0];
    const Q8Requantization requantize = q8_requantization(op.activation, x.quant, w.filter_quant, yq, O);
    for (std::int64_t o = 0; o < O; ++o) {
        for (std::int64_t n = 0; n < N; ++n) {
            std::int32_t acc = w.bias ? w.bias[o] : 0;
            for (std::int64_t i = 0; i < I; ++i) acc = add_wrapping(acc, (static_cast<std::int32_t>(x.data[n * I + i]) - xz) * w.filter[o * I + i]);
            y[n * O + o] = requantize(acc, o);
        }
    }
}

}  // namespace firesight::engine::ref
