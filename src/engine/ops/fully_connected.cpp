// FullyConnected: x [N,...,I] flattened to [N,I], filter [O,I], bias [O] (optional) -> [N,O]; float,
// or int8 (per-tensor or per-channel symmetric filter). Kernels: kernels/reference/fully_connected{,_q8}.cpp.
#include "q8_args.h"
#include "op_def.h"

namespace firesight::engine::ops {
namespace {

OutputType infer(const ShapeContext& c) {
    OutputType r;
    r.dtype = c.need_layer_types(0);
    const Shape& x = c.shape_of(0);
    c.need_const(1, -1, "filter");
    const Shape& w = c.input(1)->shape;
    if (w.size() != 2) c.fail("filter must be rank 2, got " + shape_str(w));
    if (x.size() < 2 || product(x, 1) != w[1])
        c.fail("input " + shape_str(x) + " does not flatten to " + std::to_string(w[1]) + " features");
    if (c.has_input(2)) c.need_const(2, w[0], "bias");
    r.shape = {x[0], w[0]};
    return r;
}

void run(const RunContext& c) {
    ref::fully_connected(c.op, c.input<float>(0), c.input_shape(0), c.input<float>(1), c.input_shape(1), c.input<float>(2),
                         c.output<float>());
}

void run_q8(const RunContext& c) {
    ref::fully_connected_q8(c.op, q8_input(c, 0), q8_weights(c), c.output<std::int8_t>(), c.output_tensor().quant);
}

}  // namespace

const OpDef kFullyConnected = {"FullyConnected", infer, run, run_q8};

}  // namespace firesight::engine::ops
