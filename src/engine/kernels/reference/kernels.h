// The reference kernels: plain C++, one file per op, written for clarity. They are the oracle
// the other backends are tested against and the fallback when no other backend is built.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "firesight/engine/ir.h"

namespace firesight::engine::ref {

using Shape = std::vector<std::int32_t>;

inline float activate(float v, Activation a) {
    switch (a) {
        case Activation::None: return v;
        case Activation::Relu: return std::max(v, 0.f);
        case Activation::Relu6: return std::min(std::max(v, 0.f), 6.f);
    }
    return v;
}

void conv2d(const Op& op, const float* x, const Shape& xs, const float* w, const Shape& ws, const float* bias,
            float* y, const Shape& ys);
void depthwise_conv2d(const Op& op, const float* x, const Shape& xs, const float* w, const Shape& ws,
                      const float* bias, float* y, const Shape& ys);
void add(const Op& op, const float* a, const float* b, float* y, std::int64_t n);
void global_average_pool(const float* x, const Shape& xs, float* y);
void fully_connected(const Op& op, const float* x, const Shape& xs, const float* w, const Shape& ws,
                     const float* bias, float* y);
void relu(const float* x, float* y, std::int64_t n, float upper);  // upper < 0: no upper bound
void softmax(const float* x, float* y, std::int64_t rows, std::int64_t cols, float beta);
void reshape(const void* x, void* y, std::int64_t bytes);
void quantize(const float* x, std::int8_t* y, std::int64_t n, float scale, std::int32_t zero_point);
void dequantize(const std::int8_t* x, float* y, std::int64_t n, float scale, std::int32_t zero_point);
void batch_norm(const Op& op, const float* x, const float* gamma, const float* beta, const float* mean,
                const float* var, float* y, std::int64_t rows, std::int64_t channels);

// ---- int8 ------------------------------------------------------------------------------------
// The int8 kernels compute exactly what XNNPACK (2022-02) computes, so the tests can demand equal
// bytes: int32 accumulation of (x - x_zero_point) * w + bias, then "fp32" requantization — the
// accumulator converted to float, multiplied by the float scale input_scale * w_scale[c] /
// output_scale (evaluated in that order, in float), clamped to the activation bounds, rounded to
// nearest-even and offset by the output zero point.

// Output bounds of an int8 op's fused activation, derived from the float bounds the way XNNPACK's
// subgraph does: lrintf(clamp(bound / scale + zero_point, -128, 127)).
struct Q8Bounds {
    std::int32_t lo = -128, hi = 127;
};
Q8Bounds q8_bounds(Activation a, const Quantization& out);

// int32 accumulation that wraps on overflow, as XNNPACK's qs8 kernels (and the native-int8 VNNI
// ones) do in their vector adds: the reference must equal them byte for byte, and a layer whose
// bias was clamped near INT32_MAX (a degenerate calibration) does overflow. Done in unsigned
// arithmetic, where wrapping is defined; `acc += ...` on int32 was undefined behaviour (UBSan).
inline std::int32_t add_wrapping(std::int32_t a, std::int32_t b) {
    return static_cast<std::int32_t>(static_cast<std::uint32_t>(a) + static_cast<std::uint32_t>(b));
}

inline std::int8_t requantize_fp32(std::int32_t acc, float scale, std::int32_t zero_point, Q8Bounds b) {
    float v = static_cast<float>(acc) * scale;
    v = std::min(std::max(v, static_cast<float>(b.lo - zero_point)), static_cast<float>(b.hi - zero_point));
    return static_cast<std::int8_t>(static_cast<std::int32_t>(std::nearbyint(v)) + zero_point);
}

// How a layer with weights turns output channel o's int32 sum into int8: the per-channel float
// scale x_scale * w_scale[o] / y_scale (w_scale: one value or one per channel), the output zero
// point and the fused activation's bounds.
struct Q8Requantization {
    std::vector<float> scale;  // one per output channel
    std::int32_t zero_point = 0;
    Q8Bounds bounds;
    std::int8_t operator()(std::int32_t acc, std::int64_t o) const {
        return requantize_fp32(acc, scale[static_cast<std::size_t>(o)], zero_point, bounds);
    }
};
Q8Requantization q8_requantization(Activation a, const Quantization& xq, const Quantization& wq, const Quantization& yq,
                                   std::int64_t channels);

// XNNPACK's fixed-point int8 addition: each input's scale relative to the output becomes an
// integer multiplier of at most 21 bits (the larger one in [2^20, 2^21)) with a shared right
// shift; y = clamp(((bias + a_mult*a + b_mult*b + rounding) >> shift) + zero_point, bounds).
// Throws, as XNNPACK refuses them, for relative scales outside [2^-10, 2^8).
struct Q8AddParams {
    std::int32_t a_mult = 0, b_mult = 0, bias = 0, shift = 0, rounding = 0, zero_point = 0;
    Q8Bounds bounds;
};
Q8AddParams q8_add_params(Activation a, const Quantization& aq, const Quantization& bq, const Quantization& yq);

struct Q8Tensor {  // an int8 activation: values, shape and quantization
    const std::int8_t* data;
    const Shape& shape;
    const Quantization& quant;
};
struct Q8Weights {  // an int8 layer's constants
    const std::int8_t* filter;
    const Shape& filter_shape;
    const Quantization& filter_quant;  // one scale, or one per output channel
    const std::int32_t* bias;          // may be null
};

void conv2d_q8(const Op& op, Q8Tensor x, Q8Weights w, std::int8_t* y, const Shape& ys, const Quantization& yq);
void depthwise_conv2d_q8(const Op& op, Q8Tensor x, Q8Weights w, std::int8_t* y, const Shape& ys, const Quantization& yq);
void fully_connected_q8(const Op& op, Q8Tensor x, Q8Weights w, std::int8_t* y, const Quantization& yq);
void add_q8(const Op& op, const std::int8_t* a, const Quantization& aq, const std::int8_t* b, const Quantization& bq,
            std::int8_t* y, const Quantization& yq, std::int64_t n);
void global_average_pool_q8(const Op& op, Q8Tensor x, std::int8_t* y, const Quantization& yq);

// Runs one op with its table entry's kernel (src/engine/ops). `data[i]` points at tensor i's values (constants included), `shapes` are the
// shapes inferred for the batch being run.
void run_op(const Graph& g, const Op& op, const std::vector<Shape>& shapes, const std::vector<void*>& data);

}  // namespace firesight::engine::ref
