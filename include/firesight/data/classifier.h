// What predict, eval and the watcher need from a model, whatever its kind (.tflite import,
// trained run folder / model.pt, engine file): class names, its preprocessing, probabilities.
#pragma once
#include <opencv2/core.hpp>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "firesight/common/error.h"
#include "firesight/data/image.h"

namespace firesight {

// One image's class probabilities and where the model saw each class.
struct Prediction {
    std::vector<float> probabilities;
    // maps[c]: class c's activation map, CV_32F at the last feature map's size (7x7 for a 224
    // input): the final linear layer applied at each position before the global average pool,
    // bias left out, so its mean is class c's logit minus its bias. It covers the centre crop
    // the model sees (data::model_view), not the whole image.
    std::vector<cv::Mat> maps;
};

class Classifier {
public:
    virtual ~Classifier() = default;
    virtual const std::vector<std::string>& class_names() const = 0;
    virtual const data::Preprocess& preprocessing() const = 0;
    // Probabilities for a batch of preprocessed images (RGB float32 HWC, see data::preprocess).
    virtual std::vector<std::vector<float>> probabilities(const std::vector<cv::Mat>& inputs) = 0;
    // A short description of what was loaded, for logs.
    virtual std::string describe() const = 0;
    // Probabilities plus one class activation map per class (see Prediction) for a batch of
    // preprocessed images. Throws Error for models without global average pool + linear head;
    // an empty batch only checks that.
    virtual std::vector<Prediction> predict_with_maps(const std::vector<cv::Mat>& inputs) {
        throw Error(describe() + ": this model gives no class activation maps");
    }

    // Decoded BGR image in, probabilities out.
    std::vector<float> classify(const cv::Mat& bgr) {
        return probabilities({data::preprocess(bgr, preprocessing())}).at(0);
    }
    Prediction classify_with_maps(const cv::Mat& bgr) {
        return predict_with_maps({data::preprocess(bgr, preprocessing())}).at(0);
    }
};

}  // namespace firesight
