// Running a graph with the reference kernels, outside a Session: the ground truth that the
// builder's passes, calibration and the tests compare against.
#pragma once
#include <cstdint>
#include <vector>

#include "firesight/engine/ir.h"

namespace firesight::engine {

// Runs the graph with the reference kernels and returns every tensor's values (for the constant
// folding pass, calibration and tests). i8 activations come back dequantized (scale * (q - zero
// point)); i8/i32 constants as their integer values.
std::vector<std::vector<float>> run_reference_all(const Graph& g, const std::vector<const float*>& inputs, int batch);

// Runs one op with the reference kernels. `data[i]` points at tensor i's values (constants
// included, each in its own dtype) and `shapes[i]` is its shape for the batch being run.
void run_reference_op(const Graph& g, const Op& op, const std::vector<std::vector<std::int32_t>>& shapes,
                      const std::vector<void*>& data);

}  // namespace firesight::engine
