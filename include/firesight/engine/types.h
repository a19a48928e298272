// The runtime's value types: element types, quantization parameters, an engine's metadata and
// the description of its inputs and outputs.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace firesight::engine {

enum class DType : std::uint8_t { F32 = 0, I8 = 1, I32 = 2 };
const char* dtype_name(DType t);

struct Quantization {
    std::vector<float> scale;  // empty: not quantized; one per tensor or one per channel
    std::vector<std::int32_t> zero_point;
    std::int32_t axis = 0;
    bool empty() const { return scale.empty(); }
};

// Everything predict needs besides the graph: what the classes are and how pixels become input.
struct Metadata {
    std::vector<std::string> class_names;
    int size = 224;            // input is size x size RGB
    int resize_shorter = 224;  // shorter side resized to this, then centre-cropped
    float mean = 127.5f;       // value = (pixel - mean) * scale
    float scale = 1.0f / 127.5f;
    std::string build_json = "{}";  // build settings, source, accuracy measured at build time
};

struct TensorDesc {
    std::string name;
    std::vector<std::int32_t> shape;  // batch-1 shape, NHWC
    DType dtype = DType::F32;
};

}  // namespace firesight::engine
