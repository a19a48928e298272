// MobileNetV2 as a libtorch module that reproduces TFLite's computation (TF "SAME" padding,
// ReLU6, batch norm folded into conv bias), with weights imported from a .tflite file.
// Submodules are named features.N.* and classifier, so heads can be replaced, blocks frozen and
// weights saved and loaded by name.
#pragma once
#include <torch/torch.h>

#include <filesystem>
#include <string>
#include <vector>

#include "firesight/model/mobilenet_v2_layout.h"
#include "firesight/import/tflite.h"

namespace firesight::model {

// Padding that TensorFlow's SAME gives along one axis: the extra pixel goes after (bottom/right).
struct SamePadding {
    int before = 0, after = 0;
};
SamePadding same_padding(int in, int kernel, int stride, int dilation = 1);

// Conv2d (+ folded BN as bias) + optional ReLU6, padded as TF SAME.
class ConvActImpl : public torch::nn::Module {
public:
    ConvActImpl(int in, int out, int kernel, int stride, int groups, bool relu6);
    torch::Tensor forward(torch::Tensor x);
    torch::nn::Conv2d conv{nullptr};
    int kernel, stride;
    bool relu6;
};
TORCH_MODULE(ConvAct);

class InvertedResidualImpl : public torch::nn::Module {
public:
    // hidden: width of the expanded layer; 0 means in * expand_ratio. Channel pruning builds
    // blocks with fewer hidden channels than that.
    InvertedResidualImpl(int in, int out, int stride, int expand_ratio, int hidden = 0);
    torch::Tensor forward(torch::Tensor x);
    ConvAct expand{nullptr};  // absent when expand_ratio == 1
    ConvAct depthwise{nullptr};
    ConvAct project{nullptr};
    bool use_residual;
};
TORCH_MODULE(InvertedResidual);

struct MobileNetV2Options {
    int num_classes = 1001;
    double dropout = 0.2;
    // Hidden width of each inverted-residual block (features.1 .. features.17); empty means the
    // paper's in * t everywhere. Set by structured channel pruning (firesight/compress/prune.h).
    std::vector<int> hidden_channels{};
    // Output channels of features.18 (the embedding the classifier reads); 0 means
    // kEmbeddingSize. Structured pruning of the tail makes it smaller.
    int embedding_channels = 0;
};

class MobileNetV2Impl : public torch::nn::Module {
public:
    explicit MobileNetV2Impl(MobileNetV2Options opt = {});
    // x: N x 3 x H x W, already normalised (TFLite MobileNetV2: [-1, 1]). Returns logits.
    torch::Tensor forward(torch::Tensor x);
    // The pooled embedding that the classifier sees (embedding_channels() wide).
    torch::Tensor embed(torch::Tensor x);
    // Runs features[0, upto) only (for feature caching of a frozen prefix).
    torch::Tensor forward_features(torch::Tensor x, int from, int upto);
    // Replaces the classifier by a fresh Linear with num_classes outputs.
    void replace_head(int num_classes);
    int num_classes() const;
    // Width of the embedding: kEmbeddingSize unless features.18's outputs were pruned.
    int embedding_channels() const;
    static constexpr int kFeatureBlocks = model::kFeatureBlocks;
    static constexpr int kEmbeddingSize = model::kEmbeddingSize;

    torch::nn::Sequential features{nullptr};
    torch::nn::Dropout dropout{nullptr};
    torch::nn::Linear classifier{nullptr};
};
TORCH_MODULE(MobileNetV2);

// How a model expects its input pixels: value = (pixel - mean) * scale, RGB, size x size.
struct InputSpec {
    int size = 224;
    float mean = 127.5f;
    float scale = 1.0f / 127.5f;
};

struct ImportedModel {
    MobileNetV2 net{nullptr};
    InputSpec input;
    std::vector<std::string> labels;  // may be empty when no labels were found
};

// Builds a MobileNetV2 from a parsed TFLite model, checking every layer's kind, stride,
// activation and shape against the expected architecture.
ImportedModel import_mobilenet_v2(const tflite::Model& m);
ImportedModel import_mobilenet_v2(const std::filesystem::path& tflite_path);


}  // namespace firesight::model
