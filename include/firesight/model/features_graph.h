// Part of the libtorch MobileNetV2 as an engine graph, for the trainer's frozen blocks
// (implemented with the whole-network conversion in engine_convert.cpp).
#pragma once
#include "firesight/engine/ir.h"
#include "firesight/model/mobilenet_v2.h"

namespace firesight::model {

// features[0, prefix_upto) (and, with `embedding`, the rest of the features and their global
// average pool) for size x size RGB inputs, as the whole-network conversion builds them. Outputs,
// in this order: the NHWC activation entering features[prefix_upto] when prefix_upto >= 1, then
// the pooled embedding ([1, 1280]) when `embedding`. No classifier, metadata left at defaults.
engine::Graph mobilenet_v2_features_graph(MobileNetV2& net, int size, int prefix_upto, bool embedding);

}  // namespace firesight::model
