// The buffer planner shared by the reference and native-int8 executors.
#include "buffer_plan.h"

namespace firesight::engine::detail {

BufferPlan plan_buffers(const Graph& g, int batch) {
    BufferPlan p;
    p.shapes = infer_shapes(g, batch);
    p.storage.assign(g.tensors.size(), {});
    p.data.assign(g.tensors.size(), nullptr);
    for (std::size_t i = 0; i < g.tensors.size(); ++i) {
        const auto& t = g.tensors[i];
        if (t.constant) {
            // Executors never write constants; the pointer is non-const only to share one table.
            p.data[i] = const_cast<void*>(t.bytes());
            continue;
        }
        std::int64_t n = 1;
        for (auto d : p.shapes[i]) n *= d;
        p.storage[i].resize(static_cast<std::size_t>((n * static_cast<std::int64_t>(dtype_size(t.dtype)) + 3) / 4));
        p.data[i] = p.storage[i].data();
    }
    return p;
}

}  // namespace firesight::engine::detail
