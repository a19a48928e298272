// Conversion from the toolchain's libtorch MobileNetV2 to the engine IR (the libtorch half of
// `firesight build`); the runtime never sees libtorch.
#pragma once
#include "firesight/engine/ir.h"
#include "firesight/model/mobilenet_v2.h"
#include "firesight/model/trained_model.h"

namespace firesight::model {

// The network as an engine graph for size x size RGB inputs: convs with their (folded) biases,
// explicit TF SAME padding, fused ReLU6, residual adds, global average pool, the classifier and a
// softmax. Outputs: probabilities, logits. Metadata is left for the caller to fill in.
engine::Graph mobilenet_v2_to_graph(MobileNetV2& net, int size);

// A trained model with its class names and preprocessing, optimised.
engine::Graph trained_model_to_graph(const TrainedModel& m);

}  // namespace firesight::model
