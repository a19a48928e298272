#include <cstring>
#include <random>

#include "firesight/common/error.h"
#include "firesight/common/fileio.h"
#include "firesight/import/tflite.h"
#include "import/tflite_writer.h"
#include "test_util.h"

using namespace firesight;
using firesight::test::FakeOp;
using firesight::test::FakeTensor;

namespace {

std::string parse_error(const std::vector<std::uint8_t>& bytes) {
    try {
        tflite::parse_model(bytes.data(), bytes.size());
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

const tflite::Tensor& weight_of(const tflite::Model& m, std::size_t op) {
    return m.tensors.at(static_cast<std::size_t>(m.operators.at(op).inputs.at(1)));
}

template <typename T>
std::vector<std::uint8_t> bytes_of(const std::vector<T>& v) {
    std::vector<std::uint8_t> b(v.size() * sizeof(T));
    std::memcpy(b.data(), v.data(), b.size());
    return b;
}

}  // namespace

TEST(TfliteImport, QuantAssetStructure) {
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_quant());
    const auto m = tflite::load_model(test::mobilenet_quant());
    EXPECT_EQ(m.tensors.size(), 174u);
    ASSERT_EQ(m.operators.size(), 66u);
    EXPECT_EQ(m.operators.front().code, tflite::OpCode::Conv2D);
    EXPECT_EQ(m.operators.back().code, tflite::OpCode::Softmax);

    // First conv: 32 x 3x3 x 3 (OHWI), stride 2, SAME, ReLU6, uint8 per-tensor weights.
    const auto& op0 = m.operators[0];
    EXPECT_EQ(op0.stride_h, 2);
    EXPECT_EQ(op0.padding, tflite::Padding::Same);
    EXPECT_EQ(op0.activation, tflite::Activation::Relu6);
    const auto& w0 = weight_of(m, 0);
    EXPECT_EQ(w0.shape, (std::vector<std::int32_t>{32, 3, 3, 3}));
    EXPECT_EQ(w0.type, tflite::TensorType::UInt8);
    ASSERT_EQ(w0.quant.scale.size(), 1u);
    EXPECT_TRUE(w0.is_constant);
    EXPECT_EQ(w0.values.size(), 32u * 27u);

    // The depthwise conv of the first block: 1 x 3x3 x 32, depth multiplier 1.
    EXPECT_EQ(m.operators[1].code, tflite::OpCode::DepthwiseConv2D);
    EXPECT_EQ(m.operators[1].depth_multiplier, 1);
    EXPECT_EQ(weight_of(m, 1).shape, (std::vector<std::int32_t>{1, 3, 3, 32}));

    // Pooling and the logits layer.
    EXPECT_EQ(m.operators[62].code, tflite::OpCode::AveragePool2D);
    EXPECT_EQ(m.operators[62].filter_w, 7);
    EXPECT_EQ(m.operators[62].padding, tflite::Padding::Valid);
    EXPECT_EQ(weight_of(m, 63).shape, (std::vector<std::int32_t>{1001, 1, 1, 1280}));

    // Input: uint8 with scale 1/128 and zero point 128 encodes [-1, 1].
    const auto& in = m.tensors[static_cast<std::size_t>(m.inputs.at(0))];
    EXPECT_EQ(in.shape, (std::vector<std::int32_t>{1, 224, 224, 3}));
    EXPECT_FLOAT_EQ(in.quant.scale.at(0), 0.0078125f);
    EXPECT_EQ(in.quant.zero_point.at(0), 128);
}

TEST(TfliteImport, DequantizationMatchesScaleAndZeroPoint) {
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_quant());
    const auto bytes = read_file_bytes(test::mobilenet_quant());
    const auto m = tflite::parse_model(bytes.data(), bytes.size());
    const auto& w = weight_of(m, 0);
    const float s = w.quant.scale[0];
    const auto zp = w.quant.zero_point[0];
    // Every dequantized value is scale * (q - zp) for some q in [0, 255].
    for (float v : w.values) {
        const double q = v / s + static_cast<double>(zp);
        EXPECT_NEAR(q, std::round(q), 1e-3);
        EXPECT_GE(std::round(q), 0);
        EXPECT_LE(std::round(q), 255);
    }
    // Bias is int32 with scale = input_scale * weight_scale.
    const auto& bias = m.tensors.at(static_cast<std::size_t>(m.operators[0].inputs.at(2)));
    EXPECT_EQ(bias.type, tflite::TensorType::Int32);
    const auto& in = m.tensors.at(static_cast<std::size_t>(m.operators[0].inputs.at(0)));
    EXPECT_NEAR(bias.quant.scale.at(0), in.quant.scale.at(0) * s, 1e-9);
}

TEST(TfliteImport, Tf2AssetIsPerChannel) {
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_tf2());
    const auto m = tflite::load_model(test::mobilenet_tf2());
    EXPECT_EQ(m.operators.front().code, tflite::OpCode::Quantize);
    EXPECT_EQ(m.operators.back().code, tflite::OpCode::Quantize);
    bool saw_mean = false;
    for (const auto& op : m.operators) saw_mean |= op.code == tflite::OpCode::Mean;
    EXPECT_TRUE(saw_mean);
    const auto& w = weight_of(m, 1);  // first conv, after the input QUANTIZE
    EXPECT_EQ(w.type, tflite::TensorType::Int8);
    EXPECT_EQ(w.quant.scale.size(), 32u);
    EXPECT_EQ(w.quant.quantized_dimension, 0);
}

TEST(TfliteImport, PerChannelDequantizationAlongQuantizedDimension) {
    // A 2x1x1x3 int8 conv weight, per-channel along dim 0 with scales 0.5 and 2, zero points 0 and 1.
    std::vector<std::int8_t> q = {2, -4, 6, 1, 3, -1};
    FakeTensor in{"in", {1, 4, 4, 3}};
    FakeTensor w{"w", {2, 1, 1, 3}, 9, bytes_of(q), {0.5f, 2.0f}, {0, 1}, 0};
    FakeTensor out{"out", {1, 4, 4, 2}};
    const auto bytes = test::build_tflite({in, w, out}, {FakeOp{3, {0, 1, -1}, {2}}});
    const auto m = tflite::parse_model(bytes.data(), bytes.size());
    const auto& t = m.tensors[1];
    ASSERT_EQ(t.values.size(), 6u);
    EXPECT_FLOAT_EQ(t.values[0], 1.0f);
    EXPECT_FLOAT_EQ(t.values[1], -2.0f);
    EXPECT_FLOAT_EQ(t.values[2], 3.0f);
    EXPECT_FLOAT_EQ(t.values[3], 0.0f);   // 2 * (1 - 1)
    EXPECT_FLOAT_EQ(t.values[4], 4.0f);   // 2 * (3 - 1)
    EXPECT_FLOAT_EQ(t.values[5], -4.0f);  // 2 * (-1 - 1)
}

TEST(TfliteImport, UnsupportedOperatorIsNamed) {
    FakeTensor in{"in", {1, 4}};
    FakeTensor out{"out", {1, 4}};
    const auto lstm = test::build_tflite({in, out}, {FakeOp{16, {0}, {1}}});
    EXPECT_NE(parse_error(lstm).find("unsupported operator LSTM"), std::string::npos) << parse_error(lstm);
    const auto mul = test::build_tflite({in, out}, {FakeOp{18, {0}, {1}}});  // (HARD_SWISH, 117, is supported now)
    EXPECT_NE(parse_error(mul).find("unsupported operator MUL"), std::string::npos) << parse_error(mul);
}

TEST(TfliteImport, TensorIndexOutOfRangeIsRefused) {
    FakeTensor in{"in", {1, 4}};
    FakeTensor out{"out", {1, 4}};
    const auto bytes = test::build_tflite({in, out}, {FakeOp{25, {0}, {7}}});
    EXPECT_NE(parse_error(bytes).find("tensor index 7 is out of range"), std::string::npos) << parse_error(bytes);
}

TEST(TfliteImport, BufferSizeMustMatchShape) {
    FakeTensor in{"in", {1, 4}};
    FakeTensor w{"w", {2, 2}, 0, std::vector<std::uint8_t>(12, 0)};  // needs 16 bytes of float
    FakeTensor out{"out", {1, 2}};
    const auto bytes = test::build_tflite({in, w, out}, {FakeOp{9, {0, 1, -1}, {2}}});
    EXPECT_NE(parse_error(bytes).find("buffer holds 12 bytes"), std::string::npos) << parse_error(bytes);
}

TEST(TfliteImport, WrongIdentifierIsRefused) {
    FakeTensor in{"in", {1, 4}};
    FakeTensor out{"out", {1, 4}};
    const auto bytes = test::build_tflite({in, out}, {FakeOp{25, {0}, {1}}}, "XYZ1");
    EXPECT_NE(parse_error(bytes).find("file identifier is 'XYZ1', expected 'TFL3'"), std::string::npos);
}

TEST(TfliteImport, TruncatedFilesAreRefusedNeverCrash) {
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_quant());
    const auto bytes = read_file_bytes(test::mobilenet_quant());
    // Cut at many points, including inside the header, the tables and the weight buffers.
    std::vector<std::size_t> cuts = {0, 3, 7, 8, 16, 100, 1000, 4096, 65536};
    for (std::size_t i = 1; i < 40; ++i) cuts.push_back(bytes.size() * i / 40);
    int refused = 0;
    for (auto cut : cuts) {
        const std::vector<std::uint8_t> part(bytes.begin(), bytes.begin() + static_cast<long>(cut));
        const auto err = parse_error(part);
        EXPECT_FALSE(err.empty()) << "a file cut at " << cut << " bytes was accepted";
        refused += !err.empty();
    }
    EXPECT_EQ(refused, static_cast<int>(cuts.size()));
}

TEST(TfliteImport, RandomBytesAndFlippedBytesNeverCrash) {
    std::mt19937 rng(42);
    for (int i = 0; i < 200; ++i) {
        std::vector<std::uint8_t> junk(static_cast<std::size_t>(rng() % 4096));
        for (auto& b : junk) b = static_cast<std::uint8_t>(rng());
        if (junk.size() >= 8 && i % 2) std::memcpy(junk.data() + 4, "TFL3", 4);  // get past the identifier
        EXPECT_FALSE(parse_error(junk).empty());
    }
    // Flipped bytes in the tables of a real model: either a clean error or a parsed model.
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_quant());
    const auto bytes = read_file_bytes(test::mobilenet_quant());
    for (int i = 0; i < 80; ++i) {
        auto copy = bytes;
        const std::size_t pos = rng() % std::min<std::size_t>(copy.size(), 200000);
        copy[pos] ^= static_cast<std::uint8_t>(1u << (rng() % 8));
        try {
            tflite::parse_model(copy.data(), copy.size());
        } catch (const Error&) {
        }
    }
}

TEST(TfliteImport, MissingFileAndDirectory) {
    try {
        tflite::load_model("/nonexistent/model.tflite");
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("no such file"), std::string::npos);
    }
    test::TempDir dir;
    EXPECT_THROW(tflite::load_model(dir.path()), Error);
}

TEST(TfliteImport, OpCodeNames) {
    EXPECT_EQ(tflite::op_code_name(3), "CONV_2D");
    EXPECT_EQ(tflite::op_code_name(114), "QUANTIZE");
    EXPECT_EQ(tflite::op_code_name(9999), "BUILTIN_9999");
    EXPECT_TRUE(tflite::op_code_supported(40));
    EXPECT_FALSE(tflite::op_code_supported(16));
}
