// Reference int8 grouped 2D convolution: NHWC int8 input, OHWI int8 filter with a scale per output
// channel, int32 bias; padding contributes the input zero point, i.e. nothing.
#include "kernels.h"

namespace firesight::engine::ref {

void conv2d_q8(const Op& op, Q8Tensor x, Q8Weights w, std::int8_t* y, const Shape& ys, const Quantization& yq) {
    const int N = x.shape[0], H = x.shape[1], W = x.shape[2], C = x.shape[3];
    const int OH = ys[1], OW = ys[2], O = ys[3];
    const int KH = w.filter_shape[1], KW = w.filter_shape[2], CG = w.filter_shape[3];
    const int OG = O / op.groups;
    const std::int32_t xz = x.quant.zero_point[0];
    const Q8Requantization requantize = q8_requantization(op.activation, x.quant, w.filter_quant, yq, O);
    for (int n = 0; n < N; ++n)
        for (int oy = 0; oy < OH; ++oy)
            for (int ox = 0; ox < OW; ++ox) {
                std::int8_t* out = y + ((static_cast<std::int64_t>(n) * OH + oy) * OW + ox) * O;
                for (int o = 0; o < O; ++o) {
                    const int g = o / OG;
                    std::int32_t acc = w.bias ? w.bias[o] : 0;
                    for (int ky = 0; ky < KH; ++ky) {
                        const int iy = oy * op.stride_h - op.pad_top + ky * op.dilation_h;
                        if (iy < 0 || iy >= H) continue;
                        for (int kx = 0; kx < KW; ++kx) {
                            const int ix = ox * op.stride_w - op.pad_left + kx * op.dilation_w;
                            if (ix < 0 || ix >= W) continue;
                            const std::int8_t* xp = x.data + ((static_cast<std::int64_t>(n) * H + iy) * W + ix) * C + g * CG;
                            const std::int8_t* wp = w.filter + ((static_cast<std::int64_t>(o) * KH + ky) * KW + kx) * CG;
                            for (int c = 0; c < CG; ++c) acc = add_wrapping(acc, (static_cast<std::int32_t>(xp[c]) - xz) * wp[c]);
                        }
                    }
                    out[o] = requantize(acc, o);
                }
            }
}

}  // namespace firesight::engine::ref
