// Reshape to new_shape (its entry 0 is replaced by the batch); any dtype, the output keeps the
// input's. Kernel: kernels/reference/reshape.cpp (a copy of the bytes).
#include "../kernels/reference/kernels.h"
#include "op_def.h"

namespace firesight::engine::ops {
namespace {

OutputType infer(const ShapeContext& c) {
    c.input(0);
    const Shape& x = c.shape_of(0);
    const Op& op = c.op;
    if (op.new_shape.empty() || op.new_shape.size() > 6) c.fail("new_shape must have rank 1..6");
    Shape out = op.new_shape;
    out[0] = x[0];
    for (std::size_t i = 1; i < out.size(); ++i)
        if (out[i] < 1) c.fail("new_shape " + shape_str(op.new_shape) + " has a non-positive dimension");
    if (product(out) != product(x)) c.fail("cannot reshape " + shape_str(x) + " to " + shape_str(op.new_shape));
    return {out, c.input(0)->dtype};
}

void run(const RunContext& c) {
    ref::reshape(c.input<void>(0), c.output<void>(), c.output_count() * static_cast<std::int64_t>(dtype_size(c.output_tensor().dtype)));
    c.apply_activation();
}

}  // namespace

const OpDef kReshape = {"Reshape", infer, run, run};

}  // namespace firesight::engine::ops
