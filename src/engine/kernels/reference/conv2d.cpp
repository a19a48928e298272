// Reference grouped 2D convolution, NHWC input, OHWI filter, explicit 4-sided zero padding.
#include "kernels.h"

namespace firesight::engine::ref {

void conv2d(const Op& op, const float* x, const Shape& xs, const float* w, const Shape& ws, const float* bias,
            float* y, const Shape& ys) {
    const int N = xs[0], H = xs[1], W = xs[2], C = xs[3];
    const int OH = ys[1], OW = ys[2], O = ys[3];
    const int KH = ws[1], KW = ws[2], CG = ws[3];
    const int OG = O / op.groups;
    for (int n = 0; n < N; ++n)
        for (int oy = 0; oy < OH; ++oy)
            for (int ox = 0; ox < OW; ++ox) {
                float* out = y + ((static_cast<std::int64_t>(n) * OH + oy) * OW + ox) * O;
                for (int o = 0; o < O; ++o) {
                    const int g = o / OG;
                    float acc = bias ? bias[o] : 0.f;
                    for (int ky = 0; ky < KH; ++ky) {
                        const int iy = oy * op.stride_h - op.pad_top + ky * op.dilation_h;
                        if (iy < 0 || iy >= H) continue;
                        for (int kx = 0; kx < KW; ++kx) {
                            const int ix = ox * op.stride_w - op.pad_left + kx * op.dilation_w;
                            if (ix < 0 || ix >= W) continue;
                            const float* xp = x + ((static_cast<std::int64_t>(n) * H + iy) * W + ix) * C + g * CG;
                            const float* wp = w + ((static_cast<std::int64_t>(o) * KH + ky) * KW + kx) * CG;
                            for (int c = 0; c < CG; ++c) acc += xp[c] * wp[c];
                        }
                    }
                    out[o] = activate(acc, op.activation);
                }
            }
}

}  // namespace firesight::engine::ref
