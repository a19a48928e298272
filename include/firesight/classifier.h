// What predict, eval and the watcher need from a model, whatever its kind (.tflite import,
// trained run folder / model.pt, engine file): class names, its preprocessing, probabilities.
#pragma once
#include <opencv2/core.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "firesight/image.h"

namespace firesight {

class Classifier {
public:
    virtual ~Classifier() = default;
    virtual const std::vector<std::string>& class_names() const = 0;
    virtual const data::Preprocess& preprocessing() const = 0;
    // Probabilities for a batch of preprocessed images (RGB float32 HWC, see data::preprocess).
    virtual std::vector<std::vector<float>> probabilities(const std::vector<cv::Mat>& inputs) = 0;
    // A short description of what was loaded, for logs.
    virtual std::string describe() const = 0;

    // Decoded BGR image in, probabilities out.
    std::vector<float> classify(const cv::Mat& bgr) {
        return probabilities({data::preprocess(bgr, preprocessing())}).at(0);
    }
};

// Opens a model by what it is: a .tflite file (labels from `labels`, else imagenet_labels.txt
// beside it, else class indices), a run folder or model.pt from `firesight train`.
std::unique_ptr<Classifier> open_classifier(const std::filesystem::path& model,
                                            const std::filesystem::path& labels = {});

}  // namespace firesight
