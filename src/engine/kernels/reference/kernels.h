// The reference kernels: plain C++, one file per op, written for clarity. They are the oracle
// the other backends are tested against and the fallback when no other backend is built.
#pragma once
#include <algorithm>
#include <cstdint>
#include <vector>

#include "firesight/engine_ir.h"

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

// Runs one op. `data[i]` points at tensor i's values (constants included), `shapes` are the
// shapes inferred for the batch being run.
void run_op(const Graph& g, const Op& op, const std::vector<Shape>& shapes, const std::vector<void*>& data);

}  // namespace firesight::engine::ref
