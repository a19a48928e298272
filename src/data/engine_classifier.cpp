// EngineClassifier: preprocessed OpenCV images in, engine probabilities out.
#include "firesight/data/engine_classifier.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <thread>

#include "firesight/common/error.h"

namespace firesight {
namespace {

class EngineClassifier : public Classifier {
public:
    EngineClassifier(std::shared_ptr<const engine::Engine> e, engine::SessionOptions o, const std::string& file_name)
        : engine_(e),
          session_(std::make_unique<engine::Session>(e, o)),
          // Named after the session's backend, so the message shows what auto chose.
          description_("engine " + file_name + " (" + engine::backend_name(session_->backend()) + ", " +
                       std::to_string(o.threads) + " threads)") {
        const auto& m = e->metadata();
        names_ = m.class_names;
        pre_ = preprocessing_of(m);
        const auto in = e->inputs().at(0).shape;
        if (in.size() != 4 || in[1] != m.size || in[2] != m.size || in[3] != 3)
            throw Error(description_ + ": engine input is not 1 x " + std::to_string(m.size) + " x " + std::to_string(m.size) + " x 3");
    }
    const std::vector<std::string>& class_names() const override { return names_; }
    const data::Preprocess& preprocessing() const override { return pre_; }
    std::string describe() const override { return description_; }

    std::vector<std::vector<float>> probabilities(const std::vector<cv::Mat>& inputs) override {
        if (inputs.empty()) return {};
        return session_->probabilities(batch(inputs), static_cast<int>(inputs.size()));
    }

    std::vector<Prediction> predict_with_maps(const std::vector<cv::Mat>& inputs) override {
        std::unique_ptr<engine::Session> previous;
        if (!session_->options().class_activation_maps) {
            // Switched on when first asked for: keeping the feature map costs XNNPACK's sparse
            // mode, which a session that never shows maps should keep. Throws for graphs
            // without the head and leaves the old session in place.
            auto o = session_->options();
            o.class_activation_maps = true;
            try {
                auto with_maps = std::make_unique<engine::Session>(engine_, o);
                previous = std::move(session_);
                session_ = std::move(with_maps);
            } catch (const Error& e) {
                throw Error(description_ + ": " + e.what());
            }
        }
        std::vector<std::vector<float>> probs;
        try {
            probs = probabilities(inputs);
        } catch (...) {
            // A session with maps that builds but cannot run (a backend refusing the graph's
            // head) must not take the plain one with it: the watcher would fail every later frame.
            if (previous) session_ = std::move(previous);
            throw;
        }
        std::vector<Prediction> out(probs.size());
        for (std::size_t i = 0; i < probs.size(); ++i) {
            out[i].probabilities = probs[i];
            for (std::size_t c = 0; c < probs[i].size(); ++c) {
                const auto m = session_->class_activation_map(static_cast<int>(c), static_cast<int>(i));
                out[i].maps.push_back(cv::Mat(m.height, m.width, CV_32F, const_cast<float*>(m.values.data())).clone());
            }
        }
        return out;
    }

private:
    // The inputs copied into one contiguous NHWC batch.
    std::span<const float> batch(const std::vector<cv::Mat>& inputs) {
        const std::size_t per = static_cast<std::size_t>(pre_.size) * pre_.size * 3;
        batch_.resize(per * inputs.size());
        for (std::size_t i = 0; i < inputs.size(); ++i) {
            const auto& m = inputs[i];
            if (m.type() != CV_32FC3 || !m.isContinuous() || m.rows != pre_.size || m.cols != pre_.size)
                throw Error(description_ + ": input must be a continuous " + std::to_string(pre_.size) + "x" +
                            std::to_string(pre_.size) + " float RGB image");
            std::memcpy(batch_.data() + i * per, m.ptr<float>(), per * sizeof(float));
        }
        return batch_;
    }

    std::shared_ptr<const engine::Engine> engine_;
    std::unique_ptr<engine::Session> session_;
    std::vector<std::string> names_;
    data::Preprocess pre_;
    std::string description_;
    std::vector<float> batch_;
};

}  // namespace

data::Preprocess preprocessing_of(const engine::Metadata& m) {
    data::Preprocess p;
    p.size = m.size;
    p.resize_shorter = m.resize_shorter;
    p.mean = m.mean;
    p.scale = m.scale;
    return p;
}

std::unique_ptr<Classifier> open_engine_classifier(const std::filesystem::path& path, engine::SessionOptions o) {
    return std::make_unique<EngineClassifier>(engine::Engine::load(path), o, path.filename().string());
}

std::unique_ptr<Classifier> open_engine_classifier(const std::filesystem::path& path) {
    engine::SessionOptions o;
    o.threads = static_cast<int>(std::clamp(std::thread::hardware_concurrency(), 1u, 2u));
    if (const char* b = std::getenv("FIRESIGHT_BACKEND"); b && *b) o.backend = engine::parse_backend(b);
    if (const char* t = std::getenv("FIRESIGHT_THREADS"); t && *t) {
        o.threads = std::atoi(t);
        if (o.threads < 1 || o.threads > 256) throw Error(std::string("FIRESIGHT_THREADS=") + t + " is not a thread count");
    }
    return open_engine_classifier(path, o);
}

}  // namespace firesight
