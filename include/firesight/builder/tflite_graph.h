// Building an engine graph from a TensorFlow Lite model.
#pragma once
#include <filesystem>

#include "firesight/engine/ir.h"

namespace firesight::tflite {
struct Model;
}

namespace firesight::engine {

// From a parsed .tflite: weights dequantized to float, Q/DQ pairs dropped, TF SAME padding made
// explicit for the model's input size. Outputs: probabilities, then logits.
Graph graph_from_tflite(const tflite::Model& m);
// Builds from a .tflite file, with labels from `labels` or imagenet_labels.txt beside the file.
Graph graph_from_tflite_file(const std::filesystem::path& path, const std::filesystem::path& labels = {});

}  // namespace firesight::engine
