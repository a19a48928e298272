// Int8 ONNX export (QDQ): the file passes ONNX's checker and strict shape inference, and every
// quantization parameter in it is the engine's own: the QuantizeLinear of each int8 activation has
// the engine's scale and zero point, each int8 layer's filter and bias are the engine's integers
// (in ONNX's layout) behind a DequantizeLinear with the engine's per-channel scales. That ONNX
// Runtime then computes the engine's classes is checked by bench/peers.sh (onnxruntime-node).
#include <gtest/gtest.h>
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <cstring>
#include <map>
#include <opencv2/imgcodecs.hpp>

#include "firesight/builder/onnx_export.h"
#include "firesight/builder/tflite_graph.h"
#include "firesight/common/error.h"
#include "firesight/data/image.h"
#include "graph_helpers.h"
#include "test_util.h"

namespace firesight::engine {
namespace {

using testing::GraphMaker;

// The exported model parsed back, with its values indexed by name.
struct Exported {
    onnx::ModelProto model;
    std::map<std::string, const onnx::TensorProto*> init;
    std::map<std::string, const onnx::NodeProto*> producer;
    std::map<std::string, int> consumers;

    Exported(const Graph& g, bool uint8_activations) {
        const std::string bytes = export_onnx(g, {uint8_activations});
        if (!model.ParseFromString(bytes)) throw Error("test: exported bytes do not parse as ModelProto");
        for (const auto& t : model.graph().initializer()) init[t.name()] = &t;
        for (const auto& n : model.graph().node()) {
            for (const auto& o : n.output()) producer[o] = &n;
            for (const auto& i : n.input()) ++consumers[i];
        }
    }
    const onnx::NodeProto& made_by(const std::string& value, const std::string& op_type) const {
        const auto it = producer.find(value);
        if (it == producer.end()) throw Error("test: nothing produces '" + value + "'");
        if (it->second->op_type() != op_type)
            throw Error("test: '" + value + "' is produced by " + it->second->op_type() + ", expected " + op_type);
        return *it->second;
    }
    const onnx::TensorProto& initializer(const std::string& name) const {
        const auto it = init.find(name);
        if (it == init.end()) throw Error("test: '" + name + "' is not an initializer");
        return *it->second;
    }
    template <class T>
    std::vector<T> values(const std::string& name) const {
        const auto& t = initializer(name);
        std::vector<T> v(t.raw_data().size() / sizeof(T));
        std::memcpy(v.data(), t.raw_data().data(), v.size() * sizeof(T));
        return v;
    }
};

std::int64_t int_attribute(const onnx::NodeProto& n, const std::string& name, std::int64_t otherwise) {
    for (const auto& a : n.attribute())
        if (a.name() == name) return a.i();
    return otherwise;
}

// Checks the exported model against the int8 graph it came from; returns how many int8 layers
// (conv, depthwise, fully connected) were compared.
int check_against_engine(const Graph& g, bool uint8_activations = false) {
    Exported e(g, uint8_activations);
    EXPECT_EQ(e.model.opset_import(0).version(), 13);
    EXPECT_NO_THROW(onnx::checker::check_model(e.model));
    onnx::ModelProto inferred = e.model;
    EXPECT_NO_THROW(onnx::shape_inference::InferShapes(inferred, onnx::OpSchemaRegistry::Instance(), onnx::ShapeInferenceOptions(true, 1)));

    // Every DequantizeLinear has one consumer (ONNX Runtime's QDQ fusion wants its own per node).
    for (const auto& n : e.model.graph().node())
        if (n.op_type() == "DequantizeLinear") {
            EXPECT_EQ(e.consumers[n.output(0)], 1) << n.output(0);
        }

    auto scale_of = [&](const onnx::NodeProto& qdq) { return e.values<float>(qdq.input(1)); };
    // An activation's zero point as the engine's int8 one (uint8 ones are 128 higher).
    auto zero_of = [&](const onnx::NodeProto& qdq) {
        const auto type = e.initializer(qdq.input(2)).data_type();
        EXPECT_EQ(type, uint8_activations ? onnx::TensorProto::UINT8 : onnx::TensorProto::INT8) << qdq.input(2);
        if (type != onnx::TensorProto::UINT8) return e.values<std::int8_t>(qdq.input(2));
        std::vector<std::int8_t> v;
        for (auto z : e.values<std::uint8_t>(qdq.input(2))) v.push_back(static_cast<std::int8_t>(z - 128));
        return v;
    };
    // An int8 activation: produced by a QuantizeLinear with the engine's scale and zero point
    // (the graph input's Quantize op included), or moved by a Reshape / Flatten from one (an int8
    // reshape keeps its input's quantization; a pool's flattened output is quantized before the
    // flattening).
    auto check_activation = [&](std::int32_t t) {
        const auto& ten = g.tensors[static_cast<std::size_t>(t)];
        std::string value = ten.name;
        while (e.producer.count(value) && (e.producer.at(value)->op_type() == "Reshape" || e.producer.at(value)->op_type() == "Flatten"))
            value = e.producer.at(value)->input(0);
        const auto& q = e.made_by(value, "QuantizeLinear");
        EXPECT_EQ(scale_of(q), std::vector<float>{ten.quant.scale[0]}) << ten.name;
        EXPECT_EQ(zero_of(q), std::vector<std::int8_t>{static_cast<std::int8_t>(ten.quant.zero_point[0])}) << ten.name;
    };
    int layers = 0;
    for (const auto& op : g.ops) {
        const auto out = op.outputs[0];
        const auto& y = g.tensors[static_cast<std::size_t>(out)];
        if (y.dtype != DType::I8) continue;
        check_activation(out);
        if (op.kind != OpKind::Conv2D && op.kind != OpKind::DepthwiseConv2D && op.kind != OpKind::FullyConnected) continue;
        ++layers;
        // QuantizeLinear <- [Clip] <- Conv/Gemm, whose inputs are DequantizeLinears.
        const std::string real = e.made_by(y.name, "QuantizeLinear").input(0);
        const onnx::NodeProto* layer = e.producer.at(real);
        if (layer->op_type() == "Clip" || layer->op_type() == "Relu") {
            EXPECT_NE(op.activation, Activation::None) << y.name;
            layer = e.producer.at(layer->input(0));
        }
        EXPECT_EQ(layer->op_type(), op.kind == OpKind::FullyConnected ? "Gemm" : "Conv") << y.name;
        // Input: a DequantizeLinear of the engine's int8 input tensor, with its parameters.
        const auto& x = g.tensors[static_cast<std::size_t>(op.inputs[0])];
        const auto& xdq = e.made_by(layer->input(0), "DequantizeLinear");
        std::string xq = xdq.input(0);
        if (op.kind == OpKind::FullyConnected && xq != x.name) xq = e.made_by(xq, "Flatten").input(0);
        EXPECT_EQ(xq, x.name);
        EXPECT_EQ(scale_of(xdq), std::vector<float>{x.quant.scale[0]});
        EXPECT_EQ(zero_of(xdq), std::vector<std::int8_t>{static_cast<std::int8_t>(x.quant.zero_point[0])});

        // Filter: the engine's int8 values moved to O I H W (depthwise: C 1 H W), its scales.
        const auto& w = g.tensors[static_cast<std::size_t>(op.inputs[1])];
        const auto& wdq = e.made_by(layer->input(1), "DequantizeLinear");
        EXPECT_EQ(e.initializer(wdq.input(0)).data_type(), onnx::TensorProto::INT8);
        const auto q = e.values<std::int8_t>(wdq.input(0));
        if (static_cast<std::int64_t>(q.size()) != w.element_count()) {
            ADD_FAILURE() << w.name << ": " << q.size() << " int8 values exported, the engine has " << w.element_count();
            continue;
        }
        const auto& s = w.shape;
        for (std::int64_t i = 0; i < w.element_count(); ++i) {
            std::int64_t onnx_index = i;
            if (op.kind == OpKind::Conv2D) {  // engine O H W I
                const std::int64_t I = s[3], W = s[2], H = s[1];
                const std::int64_t c = i % I, xx = (i / I) % W, yy = (i / I / W) % H, o = i / I / W / H;
                onnx_index = ((o * I + c) * H + yy) * W + xx;
            } else if (op.kind == OpKind::DepthwiseConv2D) {  // engine 1 H W C
                const std::int64_t C = s[3], W = s[2], H = s[1];
                const std::int64_t c = i % C, xx = (i / C) % W, yy = i / C / W;
                onnx_index = (c * H + yy) * W + xx;
            }
            if (q[static_cast<std::size_t>(onnx_index)] != w.data_i8()[i]) {
                ADD_FAILURE() << w.name << ": int8 value " << i << " differs";
                break;
            }
        }
        EXPECT_EQ(scale_of(wdq), w.quant.scale) << w.name;
        EXPECT_EQ(e.initializer(wdq.input(2)).data_type(), onnx::TensorProto::INT8) << w.name;
        for (auto z : e.values<std::int8_t>(wdq.input(2))) EXPECT_EQ(z, 0) << w.name;
        EXPECT_EQ(int_attribute(wdq, "axis", 1), w.quant.scale.size() > 1 ? 0 : 1) << w.name;

        // Bias: the engine's int32 values, scale input scale x filter scale, zero point 0.
        if (op.inputs.size() > 2 && op.inputs[2] >= 0) {
            const auto& b = g.tensors[static_cast<std::size_t>(op.inputs[2])];
            if (layer->input_size() != 3) {
                ADD_FAILURE() << y.name << ": the layer has a bias in the engine but none in ONNX";
                continue;
            }
            const auto& bdq = e.made_by(layer->input(2), "DequantizeLinear");
            EXPECT_EQ(e.initializer(bdq.input(0)).data_type(), onnx::TensorProto::INT32);
            EXPECT_EQ(e.values<std::int32_t>(bdq.input(0)), std::vector<std::int32_t>(b.data_i32(), b.data_i32() + b.element_count()));
            const auto bs = scale_of(bdq);
            EXPECT_EQ(bs.size(), w.quant.scale.size());
            for (std::size_t c = 0; c < bs.size() && c < w.quant.scale.size(); ++c) EXPECT_FLOAT_EQ(bs[c], x.quant.scale[0] * w.quant.scale[c]);
            for (auto z : e.values<std::int32_t>(bdq.input(2))) EXPECT_EQ(z, 0);
        }
    }
    // The graph's outputs: float, under the engine's names, in its order.
    EXPECT_EQ(e.model.graph().output_size(), static_cast<int>(g.outputs.size()));
    for (int k = 0; k < e.model.graph().output_size() && k < static_cast<int>(g.outputs.size()); ++k) {
        EXPECT_EQ(e.model.graph().output(k).name(), g.tensors[static_cast<std::size_t>(g.outputs[static_cast<std::size_t>(k)])].name);
        EXPECT_EQ(e.model.graph().output(k).type().tensor_type().elem_type(), onnx::TensorProto::FLOAT);
    }
    return layers;
}

TEST(EngineOnnxInt8, SmallGraphIsValidQdqWithTheEnginesParameters) {
    GraphMaker m(41);
    auto x = m.input({1, 9, 9, 3});
    auto a = m.conv(x, 8, 3, 2, {0, 0, 1, 1}, Activation::Relu6);
    auto b = m.depthwise(a, 3, 1, {1, 1, 1, 1}, Activation::Relu6);
    auto c = m.conv(b, 8, 1, 1, {0, 0, 0, 0});
    auto d = m.add(a, c);
    auto p = m.pool(d);
    auto l = m.fc(p, 4);
    m.g.outputs = {m.softmax(l), l};
    const auto ranges = testing::minmax_ranges(m.g, {m.random(243), m.random(243), m.random(243)}, 1);
    quantize_int8(m.g, ranges);
    EXPECT_EQ(onnx_opset(m.g), 13);
    EXPECT_EQ(check_against_engine(m.g), 4);
    EXPECT_EQ(check_against_engine(m.g, true), 4) << "uint8 activations";
}

TEST(EngineOnnxInt8, FloatGraphsStayOpset10) {
    GraphMaker m(3);
    auto x = m.input({1, 5, 5, 2});
    m.g.outputs = {m.conv(x, 3, 3, 1, {1, 1, 1, 1}, Activation::Relu6)};
    EXPECT_EQ(onnx_opset(m.g), 10);
    onnx::ModelProto model;
    ASSERT_TRUE(model.ParseFromString(export_onnx(m.g)));
    EXPECT_EQ(model.opset_import(0).version(), 10);
    for (const auto& n : model.graph().node()) EXPECT_NE(n.op_type(), "DequantizeLinear");
}

// MobileNetV2 from the ImageNet asset, calibrated min-max on the sample photos as int8_bench does.
TEST(EngineOnnxInt8, MobileNetV2Int8IsValidQdqWithTheEnginesParameters) {
    FIRESIGHT_REQUIRE_ASSET(test::mobilenet_quant());
    FIRESIGHT_REQUIRE_ASSET(test::assets() / "imagenet-samples");
    Graph g = graph_from_tflite_file(test::mobilenet_quant());
    optimize(g);
    const auto& md = g.metadata;
    const data::Preprocess pre{md.size, md.resize_shorter, md.mean, md.scale};
    std::vector<std::vector<float>> inputs;
    for (const char* name : {"hot_dog.jpg", "owl.jpg", "cat.bmp"}) {
        const auto f = test::assets() / "imagenet-samples" / name;
        if (!std::filesystem::exists(f)) continue;
        const cv::Mat img = data::preprocess(data::decode_image(f), pre);
        inputs.emplace_back(reinterpret_cast<const float*>(img.data), reinterpret_cast<const float*>(img.data) + img.total() * 3);
    }
    ASSERT_FALSE(inputs.empty()) << "no sample photo found";
    quantize_int8(g, testing::minmax_ranges(g, inputs, 1));
    EXPECT_EQ(check_against_engine(g), 53);  // 52 convolutions and the classifier
    EXPECT_EQ(check_against_engine(g, true), 53) << "uint8 activations";
}

}  // namespace
}  // namespace firesight::engine
