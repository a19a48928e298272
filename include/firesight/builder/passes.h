// The builder's graph passes: batch norm folding, activation fusion and clean-ups. Build time
// only: the runtime executes what they produce.
#pragma once
#include <string>

#include "firesight/engine/ir.h"

namespace firesight::engine {

// Each pass returns how many changes it made.
int fold_batch_norm(Graph& g);        // BatchNorm after a conv/depthwise/fc with constant weights
int fuse_activations(Graph& g);       // Relu/Relu6 into the op that produces their only input
int remove_identities(Graph& g);      // Identity ops and reshapes to the same shape
int fold_constants(Graph& g);         // ops whose inputs are all constant
int remove_dead(Graph& g);            // ops and tensors the outputs do not need
// All of the above until nothing changes. Returns a summary line for logs.
std::string optimize(Graph& g);

}  // namespace firesight::engine
