// Add: two same-shaped tensors, with a fused activation; float, or int8 in XNNPACK's fixed-point
// form. Kernels: kernels/reference/add{,_q8}.cpp.
#include "q8_args.h"
#include "op_def.h"

namespace firesight::engine::ops {
namespace {

OutputType infer(const ShapeContext& c) {
    OutputType r;
    if (c.is_i8(0) || c.is_i8(1)) {
        c.need_q8(0);
        c.need_q8(1);
        c.need_q8_output("int8 add");
        r.dtype = DType::I8;
    } else {
        c.need_f32(0);
        c.need_f32(1);
    }
    if (c.shape_of(0) != c.shape_of(1))
        c.fail("input shapes " + shape_str(c.shape_of(0)) + " and " + shape_str(c.shape_of(1)) + " differ");
    r.shape = c.shape_of(0);
    return r;
}

void run(const RunContext& c) {
    ref::add(c.op, c.input<float>(0), c.input<float>(1), c.output<float>(), c.output_count());
}

void run_q8(const RunContext& c) {
    ref::add_q8(c.op, c.input<std::int8_t>(0), c.input_tensor(0).quant, c.input<std::int8_t>(1), c.input_tensor(1).quant,
                c.output<std::int8_t>(), c.output_tensor().quant, c.output_count());
}

}  // namespace

const OpDef kAdd = {"Add", infer, run, run_q8};

}  // namespace firesight::engine::ops
