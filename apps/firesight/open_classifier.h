// The CLI's way to open any model kind it knows (the libraries only see the Classifier interface).
#pragma once
#include <filesystem>
#include <memory>

#include "firesight/data/classifier.h"

namespace firesight {

// Opens a model by what it is: a .tflite file (labels from `labels`, else imagenet_labels.txt
// beside it, else class indices), a run folder or model.pt from `firesight train`.
std::unique_ptr<Classifier> open_classifier(const std::filesystem::path& model,
                                            const std::filesystem::path& labels = {});

}  // namespace firesight
