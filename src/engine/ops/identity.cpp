// Identity: a copy (the optimiser removes it). Kernel: kernels/reference/reshape.cpp.
#include "../kernels/reference/kernels.h"
#include "op_def.h"

namespace firesight::engine::ops {
namespace {

void run(const RunContext& c) {
    ref::reshape(c.input<void>(0), c.output<void>(), c.output_count() * static_cast<std::int64_t>(dtype_size(c.output_tensor().dtype)));
    c.apply_activation();
}

}  // namespace

const OpDef kIdentity = {"Identity", infer_elementwise_f32, run, run};

}  // namespace firesight::engine::ops
