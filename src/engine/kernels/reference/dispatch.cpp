// Runs an IR op with its reference kernel, found in the op table (src/engine/ops).
#include "../../ops/op_def.h"
#include "firesight/common/error.h"
#include "kernels.h"

namespace firesight::engine::ref {

void run_op(const Graph& g, const Op& op, const std::vector<Shape>& shapes, const std::vector<void*>& data) {
    const ops::OpDef& def = ops::op_def(op.kind);
    const ops::RunContext c{g, op, shapes, data};
    if (ops::runs_int8(g, op)) {
        if (!def.reference_q8) throw Error(std::string("reference backend: no int8 kernel for ") + def.name);
        def.reference_q8(c);
    } else {
        def.reference(c);
    }
}

}  // namespace firesight::engine::ref
