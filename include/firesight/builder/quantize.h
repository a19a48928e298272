// Post-training int8 quantization of a float graph, from calibrated activation ranges.
#pragma once
#include <map>
#include <set>
#include <string>
#include <vector>

#include "firesight/engine/ir.h"

namespace firesight::engine {

struct TensorRange {  // observed float range of an activation
    float min = 0.f, max = 0.f;
};
struct QuantizeOptions {
    // Filters (by their float tensor's name) that get one scale for the whole tensor whatever their
    // values: clustered layers, so that their int8 values stay at most k distinct and the engine's
    // palette keeps log2(k) bits. Two centroids less than one scale step apart then share an int8
    // value (an error within the rounding's). Every name must be the filter of a quantized layer.
    std::set<std::string> one_scale;
};

// Turns a float graph (after optimize()) into an int8 graph, in place:
//  - activations: per-tensor asymmetric int8 from ranges[tensor name] (range widened to include 0);
//    needed for the graph input and the output of every Conv2D / DepthwiseConv2D / FullyConnected /
//    Add / GlobalAveragePool. A missing name -> firesight::Error naming the tensor.
//  - weights: per-output-channel symmetric int8 (scale = max|w_c| / 127). A weight tensor with at
//    most 256 distinct float values, some repeated (clustered), gets ONE scale for the whole
//    tensor (stored replicated per channel) when that scale maps its k values to k distinct int8
//    values, so its int8 values stay exactly k distinct; if one scale would merge values (weights
//    on a fine grid, e.g. an imported uint8 model's), it keeps per-channel scales, unless the
//    filter is named in opt.one_scale.
//    Fully connected weights always get one scale: XNNPACK (2022-02) has no per-channel qs8
//    fully connected operator.
//  - biases: int32, scale = input_scale * weight_scale[c], zero point 0.
//  - input and outputs stay f32: a Quantize after the input, a Dequantize before the softmax (and
//    for the logits output). Session::run still takes/returns f32.
void quantize_int8(Graph& g, const std::map<std::string, TensorRange>& ranges, const QuantizeOptions& opt = {});

// Min-max calibration: every activation's smallest and largest value over reference-kernel runs of
// the float graph on `inputs` (each one batch of `batch` items, NHWC f32). The simplest range
// choice; the compression stage (src/compress) chooses per tensor between min-max, percentile and
// entropy from histograms instead.
std::map<std::string, TensorRange> minmax_ranges(const Graph& g, const std::vector<std::vector<float>>& inputs, int batch);

}  // namespace firesight::engine
