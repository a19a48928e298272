// Chooses how to open a model from what the path is. One branch per model kind.
#include "firesight/data/classifier.h"
#include "open_classifier.h"
#include "firesight/common/error.h"
#include "firesight/model/torch_classifier.h"
#include "firesight/model/trained_model.h"
#include "firesight/data/engine_classifier.h"

namespace firesight {

std::unique_ptr<Classifier> open_classifier(const std::filesystem::path& model, const std::filesystem::path& labels) {
    std::error_code ec;
    if (!std::filesystem::exists(model, ec)) throw Error(model.string() + ": no such file or directory");
    if (model.extension() == ".tflite") return model::open_tflite_classifier(model, labels);
    if (std::filesystem::is_directory(model, ec) || model.extension() == ".pt") {  // `firesight train` run
        auto m = model::load_trained_model(model);
        return std::make_unique<model::TorchClassifier>(m.net, m.class_names, m.preprocess, "trained MobileNetV2 from " + model.string());
    }
    if (model.extension() == ".fse") return open_engine_classifier(model);
    throw Error(model.string() + ": unknown model kind (expected a .tflite file)");
}

}  // namespace firesight
