#include "firesight/data/classifier.h"
#include "firesight/common/error.h"
#include "firesight/model/mobilenet_v2.h"
#include "firesight/model/torch_classifier.h"

namespace firesight::model {

TorchClassifier::TorchClassifier(MobileNetV2 net, std::vector<std::string> names, data::Preprocess pre,
                                 std::string description)
    : net_(std::move(net)), names_(std::move(names)), pre_(pre), description_(std::move(description)) {
    net_->eval();
}

torch::Tensor TorchClassifier::batch_of(const std::vector<cv::Mat>& inputs) const {
    std::vector<torch::Tensor> batch;
    batch.reserve(inputs.size());
    for (const auto& m : inputs) {
        if (m.type() != CV_32FC3 || !m.isContinuous()) throw Error("classifier: input must be a continuous float RGB image");
        batch.push_back(torch::from_blob(const_cast<float*>(m.ptr<float>()), {m.rows, m.cols, 3}).permute({2, 0, 1}));
    }
    return torch::stack(batch);
}

std::vector<std::vector<float>> TorchClassifier::probabilities(const std::vector<cv::Mat>& inputs) {
    if (inputs.empty()) return {};
    torch::InferenceMode guard;
    const auto probs = torch::softmax(net_->forward(batch_of(inputs)), 1).contiguous();
    std::vector<std::vector<float>> out(inputs.size());
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        const float* p = probs[static_cast<long>(i)].data_ptr<float>();
        out[i].assign(p, p + probs.size(1));
    }
    return out;
}

std::vector<Prediction> TorchClassifier::predict_with_maps(const std::vector<cv::Mat>& inputs) {
    if (inputs.empty()) return {};
    torch::InferenceMode guard;
    const auto features = net_->features->forward(batch_of(inputs));  // N x C x h x w
    // The same computation as forward() (dropout is off in eval mode), keeping the feature map.
    const auto probs = torch::softmax(net_->classifier->forward(features.mean({2, 3})), 1).contiguous();
    const auto maps = torch::einsum("kc,nchw->nkhw", {net_->classifier->weight, features}).contiguous();
    const int classes = static_cast<int>(maps.size(1)), h = static_cast<int>(maps.size(2)), w = static_cast<int>(maps.size(3));
    std::vector<Prediction> out(inputs.size());
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        const float* p = probs[static_cast<long>(i)].data_ptr<float>();
        out[i].probabilities.assign(p, p + probs.size(1));
        for (int c = 0; c < classes; ++c)
            out[i].maps.push_back(cv::Mat(h, w, CV_32F, maps[static_cast<long>(i)][c].data_ptr<float>()).clone());
    }
    return out;
}

std::unique_ptr<Classifier> open_tflite_classifier(const std::filesystem::path& path, const std::filesystem::path& labels) {
    auto imported = import_mobilenet_v2(path);
    const int n = imported.net->num_classes();
    std::vector<std::string> names;
    if (!labels.empty()) {
        names = tflite::read_labels(labels, n);
    } else if (auto beside = path.parent_path() / "imagenet_labels.txt"; std::filesystem::exists(beside)) {
        names = tflite::read_labels(beside, n);
    } else {
        for (int i = 0; i < n; ++i) names.push_back("class " + std::to_string(i));
    }
    data::Preprocess pre;
    pre.size = pre.resize_shorter = imported.input.size;
    pre.mean = imported.input.mean;
    pre.scale = imported.input.scale;
    return std::make_unique<TorchClassifier>(imported.net, std::move(names), pre,
                                             "MobileNetV2 imported from " + path.filename().string());
}

}  // namespace firesight::model
