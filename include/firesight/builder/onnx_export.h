// ONNX export of an engine graph, so a model built by firesight can go to TensorRT, ONNX Runtime,
// OpenVINO or OpenCV DNN. Toolchain side only (needs protobuf); the runtime never links it.
#pragma once
#include <filesystem>
#include <string>

#include "firesight/engine/ir.h"

namespace firesight::engine {

// Serialized onnx.ModelProto, opset 10 (ReLU6 as Clip with min/max attributes, no Identity
// nodes), so OpenCV DNN 4.6 reads it as well as TensorRT and ONNX Runtime. Tensors are NCHW: the
// input is N x 3 x H x W. Outputs keep the engine's names and order (probabilities, logits).
// Throws firesight::Error for ops ONNX export does not cover (quantize/dequantize, reshapes that
// reorder NHWC data).
std::string export_onnx(const Graph& g);
void save_onnx(const Graph& g, const std::filesystem::path& path);

}  // namespace firesight::engine
