// Builds small .tflite files in memory for tests, with Debian's FlatBuffers builder and the
// field numbers of TFLite's schema, so tests can make models the real assets do not contain
// (an unsupported operator, per-channel int8 weights with known values, ...).
#pragma once
#include <flatbuffers/flatbuffers.h>

#include <cstdint>
#include <string>
#include <vector>

namespace firesight::test {

struct FakeTensor {
    std::string name;
    std::vector<std::int32_t> shape;
    std::int8_t type = 0;  // TensorType
    std::vector<std::uint8_t> data;  // empty: no buffer
    std::vector<float> scale;
    std::vector<std::int64_t> zero_point;
    std::int32_t quantized_dimension = 0;
};

struct FakeOp {
    std::int32_t code = 0;
    std::vector<std::int32_t> inputs, outputs;
};

inline std::vector<std::uint8_t> build_tflite(const std::vector<FakeTensor>& tensors, const std::vector<FakeOp>& ops,
                                              const char* identifier = "TFL3") {
    flatbuffers::FlatBufferBuilder b;
    auto vo = [](int field) { return static_cast<flatbuffers::voffset_t>(4 + 2 * field); };
    std::vector<flatbuffers::Offset<void>> buffers;
    {
        auto s = b.StartTable();
        buffers.push_back(flatbuffers::Offset<void>(b.EndTable(s)));  // buffer 0 is the empty buffer
    }
    std::vector<flatbuffers::Offset<void>> tensor_offsets;
    for (const auto& t : tensors) {
        std::uint32_t buffer_index = 0;
        if (!t.data.empty()) {
            auto d = b.CreateVector(t.data);
            auto s = b.StartTable();
            b.AddOffset(vo(0), d);
            buffers.push_back(flatbuffers::Offset<void>(b.EndTable(s)));
            buffer_index = static_cast<std::uint32_t>(buffers.size() - 1);
        }
        flatbuffers::Offset<void> quant;
        if (!t.scale.empty()) {
            auto sc = b.CreateVector(t.scale);
            auto zp = b.CreateVector(t.zero_point);
            auto s = b.StartTable();
            b.AddOffset(vo(2), sc);
            b.AddOffset(vo(3), zp);
            b.AddElement<std::int32_t>(vo(6), t.quantized_dimension, 0);
            quant = flatbuffers::Offset<void>(b.EndTable(s));
        }
        auto shape = b.CreateVector(t.shape);
        auto name = b.CreateString(t.name);
        auto s = b.StartTable();
        b.AddOffset(vo(0), shape);
        b.AddElement<std::int8_t>(vo(1), t.type, 0);
        b.AddElement<std::uint32_t>(vo(2), buffer_index, 0);
        b.AddOffset(vo(3), name);
        if (!quant.IsNull()) b.AddOffset(vo(4), quant);
        tensor_offsets.push_back(flatbuffers::Offset<void>(b.EndTable(s)));
    }
    std::vector<std::int32_t> codes;
    std::vector<flatbuffers::Offset<void>> op_offsets;
    for (const auto& op : ops) {
        std::uint32_t idx = 0;
        while (idx < codes.size() && codes[idx] != op.code) ++idx;
        if (idx == codes.size()) codes.push_back(op.code);
        auto in = b.CreateVector(op.inputs);
        auto out = b.CreateVector(op.outputs);
        auto s = b.StartTable();
        b.AddElement<std::uint32_t>(vo(0), idx, 0);
        b.AddOffset(vo(1), in);
        b.AddOffset(vo(2), out);
        op_offsets.push_back(flatbuffers::Offset<void>(b.EndTable(s)));
    }
    std::vector<flatbuffers::Offset<void>> code_offsets;
    for (auto c : codes) {
        auto s = b.StartTable();
        b.AddElement<std::int8_t>(vo(0), static_cast<std::int8_t>(c < 127 ? c : 127), 0);
        b.AddElement<std::int32_t>(vo(3), c, 0);
        code_offsets.push_back(flatbuffers::Offset<void>(b.EndTable(s)));
    }
    auto tv = b.CreateVector(tensor_offsets);
    auto inputs = b.CreateVector(std::vector<std::int32_t>{0});
    auto outputs = b.CreateVector(std::vector<std::int32_t>{static_cast<std::int32_t>(tensors.size() - 1)});
    auto ov = b.CreateVector(op_offsets);
    auto s = b.StartTable();
    b.AddOffset(vo(0), tv);
    b.AddOffset(vo(1), inputs);
    b.AddOffset(vo(2), outputs);
    b.AddOffset(vo(3), ov);
    auto subgraph = flatbuffers::Offset<void>(b.EndTable(s));
    auto sgv = b.CreateVector(std::vector<flatbuffers::Offset<void>>{subgraph});
    auto cv = b.CreateVector(code_offsets);
    auto bv = b.CreateVector(buffers);
    auto ms = b.StartTable();
    b.AddElement<std::uint32_t>(vo(0), 3, 0);
    b.AddOffset(vo(1), cv);
    b.AddOffset(vo(2), sgv);
    b.AddOffset(vo(4), bv);
    auto model = flatbuffers::Offset<void>(b.EndTable(ms));
    b.Finish(model, identifier);
    return {b.GetBufferPointer(), b.GetBufferPointer() + b.GetSize()};
}

}  // namespace firesight::test
