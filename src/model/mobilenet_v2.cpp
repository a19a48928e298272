#include "firesight/model/mobilenet_v2.h"

#include "firesight/common/error.h"

namespace firesight::model {

SamePadding same_padding(int in, int kernel, int stride, int dilation) {
    const int eff = (kernel - 1) * dilation + 1;
    const int out = (in + stride - 1) / stride;
    const int total = std::max((out - 1) * stride + eff - in, 0);
    return {total / 2, total - total / 2};
}

ConvActImpl::ConvActImpl(int in, int out, int k, int s, int groups, bool act)
    : kernel(k), stride(s), relu6(act) {
    // Stride 1 with an odd kernel pads symmetrically for any input size, so the conv can pad
    // itself; stride 2 is padded in forward() because the split depends on the input size.
    const int pad = s == 1 ? (k - 1) / 2 : 0;
    conv = register_module("conv", torch::nn::Conv2d(torch::nn::Conv2dOptions(in, out, k)
                                                         .stride(s).padding(pad).groups(groups).bias(true)));
}

torch::Tensor ConvActImpl::forward(torch::Tensor x) {
    if (stride != 1 && kernel > 1) {
        const auto ph = same_padding(static_cast<int>(x.size(2)), kernel, stride);
        const auto pw = same_padding(static_cast<int>(x.size(3)), kernel, stride);
        if (ph.before || ph.after || pw.before || pw.after)
            x = torch::constant_pad_nd(x, {pw.before, pw.after, ph.before, ph.after}, 0);
    }
    x = conv->forward(x);
    return relu6 ? torch::hardtanh(x, 0.0, 6.0) : x;
}

InvertedResidualImpl::InvertedResidualImpl(int in, int out, int stride, int t, int hidden)
    : use_residual(stride == 1 && in == out) {
    if (hidden <= 0) hidden = in * t;
    // Without an expansion conv the depthwise conv sees the block input directly.
    if (t == 1 && hidden != in)
        throw Error("InvertedResidual: hidden width " + std::to_string(hidden) + " needs an expansion conv (t = 1, in = " + std::to_string(in) + ")");
    if (t != 1) expand = register_module("expand", ConvAct(in, hidden, 1, 1, 1, true));
    depthwise = register_module("depthwise", ConvAct(hidden, hidden, 3, stride, hidden, true));
    project = register_module("project", ConvAct(hidden, out, 1, 1, 1, false));
}

torch::Tensor InvertedResidualImpl::forward(torch::Tensor x) {
    auto y = expand ? expand->forward(x) : x;
    y = project->forward(depthwise->forward(y));
    return use_residual ? x + y : y;
}

MobileNetV2Impl::MobileNetV2Impl(MobileNetV2Options opt) {
    // (expansion t, output channels c, repeats n, first stride s) of the MobileNetV2 paper.
    const int settings[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2},
                                {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
    constexpr std::size_t kBlocks = kFeatureBlocks - 2;
    if (!opt.hidden_channels.empty() && opt.hidden_channels.size() != kBlocks)
        throw Error("MobileNetV2Options.hidden_channels: expected " + std::to_string(kBlocks) + " widths, got " +
                    std::to_string(opt.hidden_channels.size()));
    // features.1 has no expansion conv: its hidden channels are features.0's outputs, so a pruned
    // features.1 narrows features.0 too.
    const int stem = opt.hidden_channels.empty() || opt.hidden_channels[0] <= 0 ? 32 : opt.hidden_channels[0];
    features = torch::nn::Sequential();
    features->push_back(ConvAct(3, stem, 3, 2, 1, true));
    const int embedding = opt.embedding_channels == 0 ? kEmbeddingSize : opt.embedding_channels;
    if (embedding < 1) throw Error("MobileNetV2Options.embedding_channels: " + std::to_string(embedding) + " is not a width");
    int in = stem;
    std::size_t block = 0;
    for (const auto& s : settings)
        for (int i = 0; i < s[2]; ++i, ++block) {
            const int hidden = opt.hidden_channels.empty() ? 0 : opt.hidden_channels[block];
            InvertedResidual b(in, s[1], i == 0 ? s[3] : 1, s[0], hidden);
            // The residuals are the paper's: a stem pruned to 16 channels must not give
            // features.1 (32 -> 16) one.
            if (block == 0) b->use_residual = false;
            features->push_back(b);
            in = s[1];
        }
    features->push_back(ConvAct(in, embedding, 1, 1, 1, true));
    register_module("features", features);
    dropout = register_module("dropout", torch::nn::Dropout(opt.dropout));
    classifier = register_module("classifier", torch::nn::Linear(embedding, opt.num_classes));
}

torch::Tensor MobileNetV2Impl::forward_features(torch::Tensor x, int from, int upto) {
    if (from < 0 || upto > kFeatureBlocks || from > upto)
        throw Error("forward_features: block range [" + std::to_string(from) + ", " + std::to_string(upto) + ") is invalid");
    auto it = features->begin() + from;
    for (int i = from; i < upto; ++i, ++it) x = it->forward(x);
    return x;
}

torch::Tensor MobileNetV2Impl::embed(torch::Tensor x) {
    x = features->forward(x);
    return x.mean({2, 3});
}

torch::Tensor MobileNetV2Impl::forward(torch::Tensor x) {
    return classifier->forward(dropout->forward(embed(x)));
}

void MobileNetV2Impl::replace_head(int num_classes) {
    classifier = replace_module("classifier", torch::nn::Linear(embedding_channels(), num_classes));
}

int MobileNetV2Impl::embedding_channels() const { return static_cast<int>(classifier->weight.size(1)); }

int MobileNetV2Impl::num_classes() const { return static_cast<int>(classifier->weight.size(0)); }

}  // namespace firesight::model
