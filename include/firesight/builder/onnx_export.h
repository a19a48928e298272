// ONNX export of an engine graph, so a model built by firesight can go to TensorRT, ONNX Runtime,
// OpenVINO or OpenCV DNN. Toolchain side only (needs protobuf); the runtime never links it.
#pragma once
#include <filesystem>
#include <string>

#include "firesight/engine/ir.h"

namespace firesight::engine {

// Serialized onnx.ModelProto. Float graphs: opset 10 (ReLU6 as Clip with min/max attributes, no
// Identity nodes), so OpenCV DNN 4.6 reads it as well as TensorRT and ONNX Runtime. Int8 graphs
// (quantize_int8): opset 13 in QDQ form, so ONNX Runtime and TensorRT run the engine's own
// calibration: every int8 activation is the output of a QuantizeLinear with the engine's scale and
// zero point, each consumer reads it through its own DequantizeLinear, int8 filters and int32
// biases are integer initializers behind a DequantizeLinear (per channel, axis 0, when the engine
// has a scale per channel). Tensors are NCHW: the input is N x 3 x H x W. Outputs keep the
// engine's names and order (probabilities, logits). Throws firesight::Error for what ONNX export
// does not cover (reshapes that reorder NHWC data).
struct OnnxExportOptions {
    // Int8 graphs: write activations as uint8 (q + 128, zero point + 128: the same real values)
    // instead of int8; weights stay int8. ONNX Runtime 1.30 on x86 fuses every QDQ convolution of
    // MobileNetV2 into QLinearConv with uint8 activations, but with int8 ones it leaves the 16
    // convolutions that read or write a value with two consumers (around the residual adds) and
    // the adds in float (docs/peers.md).
    bool uint8_activations = false;
};
std::string export_onnx(const Graph& g, const OnnxExportOptions& opt = {});
void save_onnx(const Graph& g, const std::filesystem::path& path, const OnnxExportOptions& opt = {});
// The opset export_onnx writes for this graph: 10 for float graphs, 13 for int8 ones.
int onnx_opset(const Graph& g);

}  // namespace firesight::engine
