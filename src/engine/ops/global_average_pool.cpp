// GlobalAveragePool: [N,H,W,C] -> [N,C] (or [N,1,1,C] with keep_dims); float or int8. Kernels:
// kernels/reference/global_average_pool{,_q8}.cpp.
#include "q8_args.h"
#include "op_def.h"

namespace firesight::engine::ops {
namespace {

OutputType infer(const ShapeContext& c) {
    OutputType r;
    if (c.is_i8(0)) {
        c.need_q8(0);
        c.need_q8_output("int8 pool");
        r.dtype = DType::I8;
    } else {
        c.need_f32(0);
    }
    const Shape& x = c.shape_of(0);
    if (x.size() != 4) c.fail("input must be rank 4 (NHWC), got " + shape_str(x));
    r.shape = c.op.keep_dims ? Shape{x[0], 1, 1, x[3]} : Shape{x[0], x[3]};
    return r;
}

void run(const RunContext& c) {
    ref::global_average_pool(c.input<float>(0), c.input_shape(0), c.output<float>());
    c.apply_activation();
}

void run_q8(const RunContext& c) {
    ref::global_average_pool_q8(c.op, q8_input(c, 0), c.output<std::int8_t>(), c.output_tensor().quant);
}

}  // namespace

const OpDef kGlobalAveragePool = {"GlobalAveragePool", infer, run, run_q8};

}  // namespace firesight::engine::ops
