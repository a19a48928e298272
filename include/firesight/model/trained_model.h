// A trained firesight model as `firesight train` saves it (model.pt in a run folder): the
// network, its class names and its preprocessing, so eval, predict and build need nothing else.
#pragma once
#include <filesystem>
#include <string>
#include <vector>

#include "firesight/data/image.h"
#include "firesight/model/mobilenet_v2.h"

namespace firesight::model {

struct TrainedModel {
    MobileNetV2 net{nullptr};
    std::vector<std::string> class_names;
    data::Preprocess preprocess;
    std::string info_json = "{}";  // free-form facts about the run (source weights, data, epochs)
};

// `path` is a run folder (containing model.pt) or a model.pt file. Throws firesight::Error.
TrainedModel load_trained_model(const std::filesystem::path& path);
// Writes atomically (temp file + rename).
void save_trained_model(const TrainedModel& m, const std::filesystem::path& model_pt);

}  // namespace firesight::model
