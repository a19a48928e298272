// Reader for TensorFlow Lite model files (.tflite FlatBuffers, identifier "TFL3").
// Every offset and length in the file is checked against the file size before it is followed,
// so a truncated or hostile file is refused with a message that names the field.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

namespace firesight::tflite {

enum class TensorType : std::int8_t {
    Float32 = 0, Float16 = 1, Int32 = 2, UInt8 = 3, Int64 = 4, String = 5, Bool = 6, Int16 = 7,
    Complex64 = 8, Int8 = 9, Float64 = 10,
};
const char* tensor_type_name(TensorType t);

// Builtin operator codes of the TFLite schema that the importer understands.
enum class OpCode : std::int32_t {
    Add = 0, AveragePool2D = 1, Conv2D = 3, DepthwiseConv2D = 4, Dequantize = 6,
    FullyConnected = 9, MaxPool2D = 17, Relu = 19, Relu6 = 21, Reshape = 22, Softmax = 25,
    Pad = 34, Mean = 40, Squeeze = 43, Quantize = 114, HardSwish = 117,
};
// Name of any builtin operator code of the schema (also the ones that are not supported).
std::string op_code_name(std::int32_t code);
bool op_code_supported(std::int32_t code);

enum class Padding : std::int8_t { Same = 0, Valid = 1 };
enum class Activation : std::int8_t { None = 0, Relu = 1, ReluN1To1 = 2, Relu6 = 3, Tanh = 4, SignBit = 5 };
const char* activation_name(Activation a);

struct Quantization {
    std::vector<float> scale;          // one (per tensor) or one per channel
    std::vector<std::int64_t> zero_point;
    std::int32_t quantized_dimension = 0;
    std::vector<float> min, max;
    bool empty() const { return scale.empty(); }
    bool per_channel() const { return scale.size() > 1; }
};

struct Tensor {
    std::string name;
    std::vector<std::int32_t> shape;
    TensorType type = TensorType::Float32;
    std::uint32_t buffer = 0;
    Quantization quant;
    // Constant tensors (weights, biases, shape operands) carry data: dequantized to float with
    // real = scale * (q - zero_point), per tensor or per channel along quant.quantized_dimension.
    bool is_constant = false;
    std::vector<float> values;
    // Integer constants without quantization (e.g. the shape operand of RESHAPE), as read.
    std::vector<std::int64_t> int_values;
    std::int64_t element_count() const;
};

struct Operator {
    OpCode code = OpCode::Add;
    std::vector<std::int32_t> inputs, outputs;  // tensor indices, -1 = optional input absent
    Padding padding = Padding::Valid;
    std::int32_t stride_w = 1, stride_h = 1;
    std::int32_t dilation_w = 1, dilation_h = 1;
    std::int32_t depth_multiplier = 1;
    std::int32_t filter_w = 1, filter_h = 1;  // pooling window
    Activation activation = Activation::None;
    float softmax_beta = 1.0f;
    bool keep_dims = false;
    std::vector<std::int32_t> new_shape;
};

struct Model {
    std::uint32_t version = 0;
    std::string description;
    std::vector<Tensor> tensors;
    std::vector<Operator> operators;
    std::vector<std::int32_t> inputs, outputs;
};

// Parses a whole .tflite file held in memory. Throws firesight::Error on any malformed field.
Model parse_model(const std::uint8_t* data, std::size_t size);
Model load_model(const std::filesystem::path& path);

// Reads a labels file, one label per line, for a model with num_classes outputs. ImageNet label
// files start with "background", which 1000-class models lack: one label too many drops the first.
std::vector<std::string> read_labels(const std::filesystem::path& path, int num_classes);

}  // namespace firesight::tflite
