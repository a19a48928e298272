// DepthwiseConv2D: x [N,H,W,C], filter [1,KH,KW,C*multiplier], bias (optional) -> [N,OH,OW,C*m];
// float, or int8 with per-channel (axis 3) symmetric filters. Kernels:
// kernels/reference/depthwise_conv2d{,_q8}.cpp.
#include "q8_args.h"
#include "op_def.h"

namespace firesight::engine::ops {
namespace {

OutputType infer(const ShapeContext& c) {
    const Op& op = c.op;
    OutputType r;
    r.dtype = c.need_layer_types(3);
    const Shape& x = c.shape_of(0);
    if (x.size() != 4) c.fail("input must be rank 4 (NHWC), got " + shape_str(x));
    c.need_const(1, -1, "filter");
    const Shape& w = c.input(1)->shape;
    if (w.size() != 4) c.fail("filter must be rank 4, got " + shape_str(w));
    c.need_window_attributes();
    if (op.depth_multiplier < 1) c.fail("depth_multiplier must be positive");
    if (w[0] != 1 || w[3] != x[3] * op.depth_multiplier)
        c.fail("filter " + shape_str(w) + " does not match input channels " + std::to_string(x[3]));
    if (c.has_input(2)) c.need_const(2, w[3], "bias");
    r.shape = c.window_output_shape(x, w, w[3]);
    return r;
}

void run(const RunContext& c) {
    ref::depthwise_conv2d(c.op, c.input<float>(0), c.input_shape(0), c.input<float>(1), c.input_shape(1), c.input<float>(2),
                          c.output<float>(), c.output_shape());
}

void run_q8(const RunContext& c) {
    ref::depthwise_conv2d_q8(c.op, q8_input(c, 0), q8_weights(c), c.output<std::int8_t>(), c.output_shape(),
                             c.output_tensor().quant);
}

}  // namespace

const OpDef kDepthwiseConv2D = {"DepthwiseConv2D", infer, run, run_q8};

}  // namespace firesight::engine::ops
