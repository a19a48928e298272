// The Classifier over a libtorch MobileNetV2 (imported or trained).
#pragma once
#include "firesight/data/classifier.h"
#include "firesight/model/mobilenet_v2.h"

namespace firesight::model {

class TorchClassifier : public Classifier {
public:
    TorchClassifier(MobileNetV2 net, std::vector<std::string> names, data::Preprocess pre, std::string description);
    const std::vector<std::string>& class_names() const override { return names_; }
    const data::Preprocess& preprocessing() const override { return pre_; }
    std::vector<std::vector<float>> probabilities(const std::vector<cv::Mat>& inputs) override;
    // The feature map before the pool, weighted by the classifier's rows (bias left out).
    std::vector<Prediction> predict_with_maps(const std::vector<cv::Mat>& inputs) override;
    std::string describe() const override { return description_; }
    MobileNetV2& net() { return net_; }

private:
    torch::Tensor batch_of(const std::vector<cv::Mat>& inputs) const;
    MobileNetV2 net_;
    std::vector<std::string> names_;
    data::Preprocess pre_;
    std::string description_;
};

std::unique_ptr<Classifier> open_tflite_classifier(const std::filesystem::path& path, const std::filesystem::path& labels);

}  // namespace firesight::model
