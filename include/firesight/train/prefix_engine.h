// The frozen part of a MobileNetV2 under training, run by the runtime engine (XNNPACK, f32)
// instead of libtorch's eager kernels: it needs no autograd, and XNNPACK's depthwise and 1x1
// kernels at the large early resolutions are several times faster. The weights are copied into
// an engine graph once; the caller must not change the converted blocks afterwards (the trainer
// only converts blocks it never trains).
#pragma once
#include <opencv2/core.hpp>

#include <cstdint>
#include <memory>
#include <mutex>
#include <vector>

#include "firesight/engine/session.h"
#include "firesight/model/mobilenet_v2.h"

namespace firesight::train {

class PrefixEngine {
public:
    // features[0, prefix_upto) as output 1 (prefix_upto < 1: none) and, with `embedding`, the pooled
    // 1280-d embedding of all features as output 2, for size x size inputs.
    PrefixEngine(model::MobileNetV2& net, int size, int prefix_upto, bool embedding);

    // Whether this build can run the prefix on the engine at speed (the XNNPACK backend is built).
    static bool available();

    // Runs one preprocessed image (RGB float32 HWC, size x size x 3, as data::preprocess and
    // data::augment give it). `prefix` receives prefix_size() floats in libtorch's CHW layout,
    // `embedding` 1280 floats; either may be null when not wanted. Thread-safe: each concurrent
    // caller gets a session of its own (single-threaded: the callers are the parallelism).
    void run(const cv::Mat& input, float* prefix, float* embedding) const;

    // C, H, W of the prefix output (empty without one), and its element count.
    const std::vector<std::int64_t>& prefix_shape() const { return prefix_chw_; }
    std::int64_t prefix_size() const;
    int embedding_size() const { return embedding_size_; }

private:
    std::shared_ptr<const engine::Engine> engine_;
    int size_ = 0;
    int prefix_output_ = -1, embedding_output_ = -1;
    std::vector<std::int64_t> prefix_chw_;
    int embedding_size_ = 0;
    mutable std::mutex mutex_;
    mutable std::vector<std::unique_ptr<engine::Session>> idle_;
};

}  // namespace firesight::train
