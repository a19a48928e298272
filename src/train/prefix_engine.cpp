#include "firesight/train/prefix_engine.h"

#include "firesight/builder/passes.h"
#include "firesight/engine/ir.h"
#include "firesight/common/error.h"
#include "firesight/model/features_graph.h"

namespace firesight::train {

PrefixEngine::PrefixEngine(model::MobileNetV2& net, int size, int prefix_upto, bool embedding) : size_(size) {
    auto g = model::mobilenet_v2_features_graph(net, size, prefix_upto, embedding);
    engine::optimize(g);
    const auto shapes = engine::infer_shapes(g, 1);
    int k = 0;
    if (prefix_upto >= 1) {
        const auto& s = shapes[static_cast<std::size_t>(g.outputs[0])];  // 1, H, W, C
        prefix_chw_ = {s[3], s[1], s[2]};
        prefix_output_ = k++;
    }
    if (embedding) {
        embedding_size_ = shapes[static_cast<std::size_t>(g.outputs.back())][1];
        embedding_output_ = k++;
    }
    engine_ = engine::Engine::from_graph(std::move(g));
}

bool PrefixEngine::available() { return engine::backend_available(engine::Backend::Xnnpack); }

std::int64_t PrefixEngine::prefix_size() const {
    return prefix_chw_.empty() ? 0 : prefix_chw_[0] * prefix_chw_[1] * prefix_chw_[2];
}

void PrefixEngine::run(const cv::Mat& input, float* prefix, float* embedding) const {
    if (input.type() != CV_32FC3 || input.rows != size_ || input.cols != size_ || !input.isContinuous())
        throw Error("prefix engine: expected a continuous " + std::to_string(size_) + "x" + std::to_string(size_) + " float RGB image");
    if (prefix && prefix_output_ < 0) throw Error("prefix engine: this engine has no prefix output");
    if (embedding && embedding_output_ < 0) throw Error("prefix engine: this engine has no embedding output");
    std::unique_ptr<engine::Session> s;
    {
        std::lock_guard lock(mutex_);
        if (!idle_.empty()) {
            s = std::move(idle_.back());
            idle_.pop_back();
        }
    }
    if (!s) s = std::make_unique<engine::Session>(engine_, engine::SessionOptions{engine::Backend::Xnnpack, 1, false, false});
    const auto& out = s->run(std::span<const float>(input.ptr<float>(), static_cast<std::size_t>(size_) * size_ * 3), 1);
    if (prefix) {  // NHWC -> CHW
        const std::int64_t C = prefix_chw_[0], HW = prefix_chw_[1] * prefix_chw_[2];
        const float* src = out[static_cast<std::size_t>(prefix_output_)];
        for (std::int64_t p = 0; p < HW; ++p)
            for (std::int64_t c = 0; c < C; ++c) prefix[c * HW + p] = src[p * C + c];
    }
    if (embedding) {
        const float* src = out[static_cast<std::size_t>(embedding_output_)];
        std::copy(src, src + embedding_size_, embedding);
    }
    std::lock_guard lock(mutex_);
    idle_.push_back(std::move(s));
}

}  // namespace firesight::train
