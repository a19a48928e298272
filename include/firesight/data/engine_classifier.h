// The Classifier over an engine file (.fse): the OpenCV-facing wrapper around engine::Session,
// kept out of the runtime library so the runtime stays free of OpenCV.
#pragma once
#include <filesystem>
#include <memory>

#include "firesight/data/classifier.h"
#include "firesight/engine/session.h"

namespace firesight {

// Backend and threads come from FIRESIGHT_BACKEND (auto|reference|xnnpack|native-int8) and
// FIRESIGHT_THREADS when set; otherwise auto (see engine::resolve_backend) on up to 2 threads.
std::unique_ptr<Classifier> open_engine_classifier(const std::filesystem::path& path);
std::unique_ptr<Classifier> open_engine_classifier(const std::filesystem::path& path, engine::SessionOptions options);

// The preprocessing an engine's metadata asks for (input size, resize, mean and scale), as the
// OpenCV pipeline of src/data takes it.
data::Preprocess preprocessing_of(const engine::Metadata& m);

}  // namespace firesight
