// The op table: one row per OpKind, in kind order, checked at compile time against kOpKindCount.
// Adding an op: its kind in engine/ir.h (the next number, and kOpKindCount), its file
// ops/<op>.cpp defining its OpDef, its declaration in op_def.h and its row here.
#include <array>

#include "firesight/common/error.h"
#include "op_def.h"

namespace firesight::engine::ops {
namespace {

struct Row {
    OpKind kind;
    const OpDef* def;
};

constexpr Row kTable[] = {
    {OpKind::Conv2D, &kConv2D},
    {OpKind::DepthwiseConv2D, &kDepthwiseConv2D},
    {OpKind::Add, &kAdd},
    {OpKind::GlobalAveragePool, &kGlobalAveragePool},
    {OpKind::FullyConnected, &kFullyConnected},
    {OpKind::Relu, &kRelu},
    {OpKind::Relu6, &kRelu6},
    {OpKind::Softmax, &kSoftmax},
    {OpKind::Reshape, &kReshape},
    {OpKind::Quantize, &kQuantize},
    {OpKind::Dequantize, &kDequantize},
    {OpKind::BatchNorm, &kBatchNorm},
    {OpKind::Identity, &kIdentity},
    {OpKind::HardSwish, &kHardSwish},
};

static_assert(std::size(kTable) == kOpKindCount, "one row per op kind: a kind was added without its OpDef, or kOpKindCount was not raised");

constexpr bool rows_in_kind_order() {
    for (std::size_t i = 0; i < std::size(kTable); ++i)
        if (static_cast<std::size_t>(kTable[i].kind) != i + 1) return false;
    return true;
}
static_assert(rows_in_kind_order(), "row i must be op kind i + 1");

}  // namespace

const OpDef* find_op(OpKind kind) {
    const auto k = static_cast<std::size_t>(kind);
    return k >= 1 && k <= kOpKindCount ? kTable[k - 1].def : nullptr;
}

const OpDef& op_def(OpKind kind) {
    if (const OpDef* d = find_op(kind)) return *d;
    throw Error("unknown op kind " + std::to_string(static_cast<int>(kind)));
}

bool runs_int8(const Graph& g, const Op& op) {
    if (op.inputs.empty() || op.outputs.empty() || op.inputs[0] < 0) return false;
    return g.tensors[static_cast<std::size_t>(op.inputs[0])].dtype == DType::I8 &&
           g.tensors[static_cast<std::size_t>(op.outputs[0])].dtype == DType::I8;
}

}  // namespace firesight::engine::ops

namespace firesight::engine {

const char* op_kind_name(OpKind k) {
    const ops::OpDef* d = ops::find_op(k);
    return d ? d->name : "unknown";
}

}  // namespace firesight::engine
