// Reference int8 addition, in XNNPACK's fixed-point form: each input's scale relative to the
// output becomes an integer multiplier of at most 21 bits (the larger one in [2^20, 2^21)) and a
// shared right shift; the sum is rounded half up by adding 2^(shift-1) before the arithmetic shift.
#include <bit>
#include <cmath>

#include "firesight/common/error.h"
#include "kernels.h"

namespace firesight::engine::ref {

Q8AddParams q8_add_params(Activation act, const Quantization& aq, const Quantization& bq, const Quantization& yq) {
    const float a_scale = aq.scale[0] / yq.scale[0];
    const float b_scale = bq.scale[0] / yq.scale[0];
    // XNNPACK refuses relative scales outside [2^-10, 2^8); so does the oracle.
    for (float s : {a_scale, b_scale})
        if (!(s >= 0x1.0p-10f && s < 0x1.0p+8f))
            throw Error("int8 add: input/output scale ratio " + std::to_string(s) + " is outside [2^-10, 2^8)");
    const float max_scale = std::max(a_scale, b_scale);
    const std::int32_t exponent = static_cast<std::int32_t>(std::bit_cast<std::uint32_t>(max_scale) >> 23) - 127;
    Q8AddParams p;
    p.shift = 20 - exponent;  // in [12, 30]
    p.a_mult = static_cast<std::int32_t>(std::lrintf(std::ldexp(a_scale, p.shift)));
    p.b_mult = static_cast<std::int32_t>(std::lrintf(std::ldexp(b_scale, p.shift)));
    p.bias = -(p.a_mult * aq.zero_point[0] + p.b_mult * bq.zero_point[0]);
    p.rounding = std::int32_t{1} << (p.shift - 1);
    p.zero_point = yq.zero_point[0];
    p.bounds = q8_bounds(act, yq);
    return p;
}

void add_q8(const Op& op, const std::int8_t* a, const Quantization& aq, const std::int8_t* b, const Quantization& bq,
            std::int8_t* y, const Quantization& yq, std::int64_t n) {
    const Q8AddParams p = q8_add_params(op.activation, aq, bq, yq);
    for (std::int64_t i = 0; i < n; ++i) {
        const std::int32_t acc = p.bias + p.a_mult * a[i] + p.b_mult * b[i];
        const std::int32_t v = ((acc + p.rounding) >> p.shift) + p.zero_point;  // arithmetic shift (C++20)
        y[i] = static_cast<std::int8_t>(std::clamp(v, p.bounds.lo, p.bounds.hi));
    }
}

}  // namespace firesight::engine::ref
