#include "firesight/classifier.h"
#include "firesight/error.h"
#include "firesight/mobilenet_v2.h"
#include "model/torch_classifier.h"

namespace firesight::model {

TorchClassifier::TorchClassifier(MobileNetV2 net, std::vector<std::string> names, data::Preprocess pre,
                                 std::string description)
    : net_(std::move(net)), names_(std::move(names)), pre_(pre), description_(std::move(description)) {
    net_->eval();
}

std::vector<std::vector<float>> TorchClassifier::probabilities(const std::vector<cv::Mat>& inputs) {
    if (inputs.empty()) return {};
    std::vector<torch::Tensor> batch;
    batch.reserve(inputs.size());
    for (const auto& m : inputs) {
        if (m.type() != CV_32FC3 || !m.isContinuous()) throw Error("classifier: input must be a continuous float RGB image");
        batch.push_back(torch::from_blob(const_cast<float*>(m.ptr<float>()), {m.rows, m.cols, 3}).permute({2, 0, 1}));
    }
    torch::InferenceMode guard;
    const auto probs = torch::softmax(net_->forward(torch::stack(batch)), 1).contiguous();
    std::vector<std::vector<float>> out(inputs.size());
    for (std::size_t i = 0; i < inputs.size(); ++i) {
        const float* p = probs[static_cast<long>(i)].data_ptr<float>();
        out[i].assign(p, p + probs.size(1));
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
