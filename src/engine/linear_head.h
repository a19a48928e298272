// Class activation maps in the runtime: finding a classifier's final global average pool + linear
// layer in a graph, and the graph a session runs to keep the feature map that the pool reads.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "firesight/engine/ir.h"

namespace firesight::engine {

// The last linear layer of a classifier that pools its feature map globally: because pooling and
// the layer are both linear, applying the layer at each position gives the class activation maps.
struct LinearHead {
    std::int32_t features = -1;  // the pool's input, [N, H, W, C]
    int classes = 0, channels = 0;
    std::vector<float> weights;  // classes x channels, dequantized for int8 graphs
    std::vector<float> bias;     // classes (zeros when the layer has none)
};

// Follows graph output 0 back: softmax <- [reshape | identity | dequantize]* <- fully connected
// (or a 1x1 conv on a 1x1 map) without activation <- [reshape | identity]* <- global average pool
// without activation. Throws Error saying which step is missing.
LinearHead find_linear_head(const Graph& g);

// A copy of g with the feature map (dequantized by an added op when it is int8) as an extra, last
// output. Constants are not copied: they point at g's, kept alive by `owner`.
Graph with_feature_output(const Graph& g, std::int32_t features, const std::shared_ptr<const void>& owner);

}  // namespace firesight::engine
