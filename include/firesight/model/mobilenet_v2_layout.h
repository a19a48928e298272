// MobileNetV2's layout, for code that needs its sizes without libtorch (memory estimates, the
// trainer's frozen prefix, the optimizer's fine-tuned suffix).
#pragma once

namespace firesight::model {

inline constexpr int kFeatureBlocks = 19;    // features.0 .. features.18; the head follows
inline constexpr int kEmbeddingSize = 1280;  // channels of the last feature map

}  // namespace firesight::model
