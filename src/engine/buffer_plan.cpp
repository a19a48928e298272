// The buffer planner shared by the reference and native-int8 executors: each activation takes a
// free buffer when its op writes it and gives it back after the last op that reads it, so
// MobileNetV2 needs a few buffers the size of its largest activations instead of one for each.
#include "buffer_plan.h"

#include <algorithm>

namespace firesight::engine::detail {

namespace {

struct Slot {
    std::size_t floats = 0;
    bool free = false;
};

// The smallest free slot that holds `floats`, else the largest free one (which grows), else a new one.
std::size_t take_slot(std::vector<Slot>& slots, std::size_t floats) {
    std::size_t best = slots.size(), largest = slots.size();
    for (std::size_t s = 0; s < slots.size(); ++s) {
        if (!slots[s].free) continue;
        if (slots[s].floats >= floats && (best == slots.size() || slots[s].floats < slots[best].floats)) best = s;
        if (largest == slots.size() || slots[s].floats > slots[largest].floats) largest = s;
    }
    if (best == slots.size()) best = largest;
    if (best == slots.size()) {
        slots.push_back({});
        best = slots.size() - 1;
    }
    slots[best].floats = std::max(slots[best].floats, floats);
    slots[best].free = false;
    return best;
}

}  // namespace

BufferPlan plan_buffers(const Graph& g, int batch) {
    BufferPlan p;
    p.shapes = infer_shapes(g, batch);
    const std::size_t n = g.tensors.size();
    p.data.assign(n, nullptr);
    constexpr int kNever = -1;
    std::vector<int> last_read(n, kNever);
    std::vector<char> keep(n, 0), external(n, 0);
    for (std::size_t i = 0; i < g.ops.size(); ++i)
        for (auto t : g.ops[i].inputs)
            if (t >= 0) last_read[static_cast<std::size_t>(t)] = static_cast<int>(i);
    for (auto t : g.outputs) keep[static_cast<std::size_t>(t)] = 1;  // read by the caller after the run
    for (auto t : g.inputs) external[static_cast<std::size_t>(t)] = 1;

    std::vector<Slot> slots;
    constexpr std::size_t kNone = static_cast<std::size_t>(-1);
    std::vector<std::size_t> slot_of(n, kNone);
    auto floats_of = [&](std::size_t t) {
        std::int64_t count = 1;
        for (auto d : p.shapes[t]) count *= d;
        return static_cast<std::size_t>((count * static_cast<std::int64_t>(dtype_size(g.tensors[t].dtype)) + 3) / 4);
    };
    auto needs_slot = [&](std::size_t t) { return !g.tensors[t].constant && !external[t] && slot_of[t] == kNone; };
    auto release = [&](std::size_t t) {
        if (slot_of[t] != kNone && !keep[t]) slots[slot_of[t]].free = true;
    };
    for (std::size_t i = 0; i < g.ops.size(); ++i) {
        const Op& op = g.ops[i];
        // Outputs first, while this op's inputs still hold their buffers: kernels may read an
        // input after writing part of the output.
        for (auto t : op.outputs)
            if (t >= 0 && needs_slot(static_cast<std::size_t>(t)))
                slot_of[static_cast<std::size_t>(t)] = take_slot(slots, floats_of(static_cast<std::size_t>(t)));
        for (auto t : op.inputs)
            if (t >= 0 && last_read[static_cast<std::size_t>(t)] == static_cast<int>(i)) release(static_cast<std::size_t>(t));
        for (auto t : op.outputs)
            if (t >= 0 && last_read[static_cast<std::size_t>(t)] == kNever) release(static_cast<std::size_t>(t));
    }
    // Activations no op writes (validation refuses such graphs): a buffer of their own, never a
    // dangling pointer or one shared with a live tensor.
    for (std::size_t t = 0; t < n; ++t)
        if (needs_slot(t)) {
            slots.push_back({floats_of(t), false});
            slot_of[t] = slots.size() - 1;
        }

    p.storage.resize(slots.size());
    for (std::size_t s = 0; s < slots.size(); ++s) p.storage[s].resize(std::max<std::size_t>(slots[s].floats, 1));
    for (std::size_t t = 0; t < n; ++t) {
        if (g.tensors[t].constant)
            // Executors never write constants; the pointer is non-const only to share one table.
            p.data[t] = const_cast<void*>(g.tensors[t].bytes());
        else if (slot_of[t] != kNone)
            p.data[t] = p.storage[slot_of[t]].data();
    }
    return p;
}

}  // namespace firesight::engine::detail
