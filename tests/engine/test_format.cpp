// The engine file: round trip, and a loader that refuses every damaged file with a message
// naming the field (truncation at every section boundary, every flipped byte, huge lengths).
#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "firesight/engine/session.h"
#include "firesight/engine/format.h"
#include "firesight/builder/quantize.h"
#include "firesight/common/error.h"
#include "graph_helpers.h"
#include "test_util.h"

namespace firesight::engine {
namespace {

using testing::GraphMaker;

Graph small_graph() {
    GraphMaker m(21);
    auto x = m.input({1, 6, 6, 3});
    auto c = m.conv(x, 8, 3, 2, {0, 0, 1, 1}, Activation::Relu6);
    auto d = m.depthwise(c, 3, 1, {1, 1, 1, 1}, Activation::Relu6);
    auto logits = m.fc(m.pool(d), 3);
    m.g.outputs = {m.softmax(logits), logits};
    m.g.metadata.class_names = {"fire", "smoke", "neutral"};
    m.g.metadata.size = 6;
    m.g.metadata.resize_shorter = 7;
    m.g.metadata.mean = 100.f;
    m.g.metadata.scale = 0.5f;
    m.g.metadata.build_json = R"({"accuracy":0.93})";
    return m.g;
}

std::string parse_error(const std::string& bytes) {
    try {
        parse_engine(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size(), nullptr, "x.fse");
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

template <class T>
T read_at(const std::string& b, std::size_t off) {
    T v;
    std::memcpy(&v, b.data() + off, sizeof v);
    return v;
}
template <class T>
void write_at(std::string& b, std::size_t off, T v) {
    std::memcpy(b.data() + off, &v, sizeof v);
}

struct SectionRef {
    std::uint64_t offset, size;
};
SectionRef section(const std::string& b, int i) {
    const std::size_t e = 64 + static_cast<std::size_t>(i) * 32;
    return {read_at<std::uint64_t>(b, e + 8), read_at<std::uint64_t>(b, e + 16)};
}

// Recomputes every checksum so a test can reach the checks behind them.
void reseal(std::string& b) {
    for (int i = 0; i < 3; ++i) {
        const auto s = section(b, i);
        if (s.offset > b.size() || s.size > b.size() - s.offset) continue;  // the loader refuses it before any crc
        write_at<std::uint32_t>(b, 64 + static_cast<std::size_t>(i) * 32 + 24, crc32(b.data() + s.offset, s.size));
    }
    std::string covered = b.substr(0, 24) + b.substr(64, 96);
    write_at<std::uint32_t>(b, 24, crc32(covered.data(), covered.size()));
}

TEST(EngineFormat, Crc32IsTheStandardOne) {
    // The check value of CRC-32/ISO-HDLC, and lengths around the 8-byte steps.
    EXPECT_EQ(crc32("123456789", 9), 0xCBF43926u);
    EXPECT_EQ(crc32("", 0), 0u);
    EXPECT_EQ(crc32("a", 1), 0xE8B7BE43u);
    EXPECT_EQ(crc32("The quick brown fox jumps over the lazy dog", 43), 0x414FA339u);
}

TEST(EngineFormat, RoundTripKeepsGraphWeightsAndMetadata) {
    const Graph g = small_graph();
    const std::string bytes = serialize(g);
    auto owner = std::make_shared<std::string>(bytes);
    const Graph back = parse_engine(reinterpret_cast<const std::uint8_t*>(owner->data()), owner->size(), owner);
    EXPECT_EQ(back.metadata.class_names, g.metadata.class_names);
    EXPECT_EQ(back.metadata.size, 6);
    EXPECT_EQ(back.metadata.resize_shorter, 7);
    EXPECT_EQ(back.metadata.mean, 100.f);
    EXPECT_EQ(back.metadata.scale, 0.5f);
    EXPECT_NE(back.metadata.build_json.find("0.93"), std::string::npos);
    ASSERT_EQ(back.tensors.size(), g.tensors.size());
    for (const auto& t : back.tensors)
        if (t.constant) {
            EXPECT_EQ((reinterpret_cast<std::uintptr_t>(t.data()) - reinterpret_cast<std::uintptr_t>(owner->data())) % 64, 0u);
            EXPECT_NE(t.external, nullptr);  // points into the file, not copied
        }
    GraphMaker m;
    const auto input = m.random(108);
    EXPECT_EQ(testing::reference_output(g, input, 1), testing::reference_output(back, input, 1));
    EXPECT_EQ(serialize(back), bytes);  // deterministic
}

TEST(EngineFormat, LoadsMemoryMappedFromDisk) {
    test::TempDir dir;
    const auto path = dir / "m.fse";
    save_engine(small_graph(), path);
    auto e = Engine::load(path);
    EXPECT_EQ(e->metadata().class_names.size(), 3u);
    ASSERT_EQ(e->inputs().size(), 1u);
    EXPECT_EQ(e->inputs()[0].shape, (std::vector<std::int32_t>{1, 6, 6, 3}));
    Session s(e, {Backend::Reference, 1});
    std::vector<float> x(108, 0.25f);
    auto p = s.probabilities(x);
    ASSERT_EQ(p.size(), 1u);
    EXPECT_NEAR(p[0][0] + p[0][1] + p[0][2], 1.0f, 1e-6f);
}

TEST(EngineFormat, RefusesTruncationAtEverySectionBoundaryAndInBetween) {
    const std::string bytes = serialize(small_graph());
    std::vector<std::size_t> cuts = {0, 1, 7, 8, 63, 64, 159, 160};
    for (int i = 0; i < 3; ++i) {
        const auto s = section(bytes, i);
        for (std::int64_t d : {-1, 0, 1}) cuts.push_back(static_cast<std::size_t>(static_cast<std::int64_t>(s.offset) + d));
        for (std::int64_t d : {-1, 0, 1}) cuts.push_back(static_cast<std::size_t>(static_cast<std::int64_t>(s.offset + s.size) + d));
    }
    for (std::size_t c = 0; c < bytes.size(); c += 37) cuts.push_back(c);
    for (auto c : cuts) {
        if (c >= bytes.size()) continue;
        const auto msg = parse_error(bytes.substr(0, c));
        EXPECT_FALSE(msg.empty()) << "cut at " << c;
        EXPECT_NE(msg.find("x.fse"), std::string::npos) << msg;
    }
    EXPECT_NE(parse_error(bytes.substr(0, bytes.size() - 1)).find("truncated"), std::string::npos);
}

TEST(EngineFormat, RefusesEveryFlippedByte) {
    const std::string bytes = serialize(small_graph());
    ASSERT_EQ(parse_error(bytes), "");
    for (std::size_t i = 0; i < bytes.size(); ++i) {
        std::string b = bytes;
        b[i] = static_cast<char>(b[i] ^ 0x5A);
        EXPECT_FALSE(parse_error(b).empty()) << "flip at byte " << i << " was accepted";
    }
}

TEST(EngineFormat, RefusesHugeLengthsAndCountsEvenWithValidChecksums) {
    const std::string bytes = serialize(small_graph());
    const auto graph = section(bytes, 0);
    {
        std::string b = bytes;
        write_at<std::uint32_t>(b, graph.offset, 0xFFFFFFFFu);  // tensor_count
        reseal(b);
        EXPECT_NE(parse_error(b).find("tensor_count"), std::string::npos) << parse_error(b);
    }
    {
        std::string b = bytes;
        write_at<std::uint32_t>(b, graph.offset + 4, 0x7FFFFFFFu);  // first tensor's name length
        reseal(b);
        EXPECT_NE(parse_error(b).find("tensor.name"), std::string::npos) << parse_error(b);
    }
    {
        std::string b = bytes;
        write_at<std::uint64_t>(b, 64 + 32 + 16, ~std::uint64_t{0});  // weights section size
        reseal(b);
        EXPECT_NE(parse_error(b).find("section[1]"), std::string::npos) << parse_error(b);
    }
    {
        std::string b = bytes;
        write_at<std::uint64_t>(b, 64 + 8, std::uint64_t{1} << 62);  // graph section offset
        reseal(b);
        EXPECT_NE(parse_error(b).find("section[0]"), std::string::npos) << parse_error(b);
    }
}

TEST(EngineFormat, RefusesWrongMagicVersionAndInconsistentGraph) {
    const std::string bytes = serialize(small_graph());
    {
        std::string b = bytes;
        b[0] = 'X';
        EXPECT_NE(parse_error(b).find("magic"), std::string::npos);
    }
    {
        std::string b = bytes;
        write_at<std::uint32_t>(b, 8, 4);
        reseal(b);
        EXPECT_NE(parse_error(b).find("format_version is 4"), std::string::npos) << parse_error(b);
        write_at<std::uint32_t>(b, 8, 0);
        reseal(b);
        EXPECT_NE(parse_error(b).find("format_version is 0"), std::string::npos) << parse_error(b);
    }
    {
        // A graph whose op reads a tensor index that does not exist, with valid checksums.
        Graph ok = small_graph();
        std::string good = serialize(ok);
        // Patch the serialized op input: find the depthwise op's input index in the graph section.
        const auto s = section(good, 0);
        const std::int32_t old_index = ok.ops[1].inputs[0];
        bool patched = false;
        // The op record starts with kind (u16) = 2, activation (u8) = 2, reserved, input_count = 3.
        for (std::size_t p = s.offset; p + 12 <= s.offset + s.size; ++p)
            if (read_at<std::uint16_t>(good, p) == 2 && read_at<std::uint8_t>(good, p + 2) == 2 &&
                read_at<std::uint32_t>(good, p + 4) == 3 && read_at<std::int32_t>(good, p + 8) == old_index) {
                write_at<std::int32_t>(good, p + 8, 999);
                patched = true;
                break;
            }
        ASSERT_TRUE(patched);
        reseal(good);
        const auto msg = parse_error(good);
        EXPECT_NE(msg.find("inconsistent graph"), std::string::npos) << msg;
        EXPECT_NE(msg.find("out of range"), std::string::npos) << msg;
    }
}

// ---- metadata against the graph -------------------------------------------------------------

// input [1, side, side, channels] -> global average pool -> fc(classes) -> softmax; outputs
// probabilities and logits, metadata consistent with it.
Graph pool_classifier(int side, int channels = 3, int classes = 2) {
    GraphMaker m(5);
    auto x = m.input({1, side, side, channels});
    auto logits = m.fc(m.pool(x), classes);
    auto probs = m.softmax(logits);
    m.g.tensors[static_cast<std::size_t>(probs)].name = "probabilities";
    m.g.outputs = {probs, logits};
    for (int c = 0; c < classes; ++c) m.g.metadata.class_names.push_back("class" + std::to_string(c));
    m.g.metadata.size = m.g.metadata.resize_shorter = side;
    return m.g;
}

// Saves g and loads it back: the loader's refusal, or "" when it loads.
std::string load_error(const Graph& g) {
    test::TempDir dir;
    save_engine(g, dir / "m.fse");
    try {
        Engine::load(dir / "m.fse");
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

// The saved graph with preprocess[key] replaced by `value` (JSON text), checksums resealed, so
// values the writer cannot produce (fractions, 1e39) reach the loader.
std::string with_preprocess(const Graph& g, const std::string& key, const std::string& value) {
    std::string b = serialize(g);
    const auto m = section(b, 2);
    auto j = nlohmann::json::parse(b.substr(m.offset));
    j["preprocess"][key] = nlohmann::json::parse(value);
    b.resize(m.offset);
    b += j.dump();
    write_at<std::uint64_t>(b, 64 + 2 * 32 + 16, b.size() - m.offset);  // metadata section size
    write_at<std::uint64_t>(b, 16, b.size());                           // header.file_size
    reseal(b);
    return b;
}

// The case of the issue: a 64x64 input with preprocess.size 2 loaded, and firesight-run then
// gave the kernels a 2x2x3 buffer for a 64x64x3 input.
TEST(EngineMetadata, InputMustBeSizeBySizeAsPreprocessSays) {
    Graph g = pool_classifier(64);
    EXPECT_EQ(load_error(g), "");
    g.metadata.size = g.metadata.resize_shorter = 2;
    const auto msg = load_error(g);
    EXPECT_NE(msg.find("m.fse: metadata disagrees with the graph"), std::string::npos) << msg;
    EXPECT_NE(msg.find("input 'input' is f32 1x64x64x3 but preprocess.size 2 needs f32 1x2x2x3"), std::string::npos) << msg;
}

TEST(EngineMetadata, InputMustBeOneRgbImageInNhwc) {
    const auto four_channels = load_error(pool_classifier(6, 4));
    EXPECT_NE(four_channels.find("is f32 1x6x6x4 but preprocess.size 6 needs f32 1x6x6x3 (NHWC, RGB)"), std::string::npos)
        << four_channels;
    {
        GraphMaker m(3);  // channels first: 3x6x6 taken as an image of 3 rows of 6 pixels with 6 channels
        auto logits = m.fc(m.pool(m.input({1, 3, 6, 6})), 2);
        m.g.outputs = {m.softmax(logits)};
        m.g.metadata.size = m.g.metadata.resize_shorter = 6;
        const auto msg = load_error(m.g);
        EXPECT_NE(msg.find("is f32 1x3x6x6 but preprocess.size 6"), std::string::npos) << msg;
    }
    {
        GraphMaker m(4);  // a flat vector, not an image
        auto logits = m.fc(m.input({1, 108}), 2);
        m.g.outputs = {m.softmax(logits)};
        m.g.metadata.size = m.g.metadata.resize_shorter = 6;
        const auto msg = load_error(m.g);
        EXPECT_NE(msg.find("is f32 1x108 but"), std::string::npos) << msg;
    }
    {
        GraphMaker m(6);  // two inputs: the runtime feeds one image
        auto a = m.input({1, 6, 6, 3});
        auto b = m.input({1, 6, 6, 3});
        auto logits = m.fc(m.pool(m.add(a, b)), 2);
        m.g.outputs = {m.softmax(logits)};
        m.g.metadata.size = m.g.metadata.resize_shorter = 6;
        const auto msg = load_error(m.g);
        EXPECT_NE(msg.find("the graph has 2 inputs, an engine takes exactly one"), std::string::npos) << msg;
    }
}

TEST(EngineMetadata, ClassNamesMustNameEveryClassOfTheOutput) {
    Graph g = pool_classifier(6, 3, 3);
    EXPECT_EQ(load_error(g), "");
    g.metadata.class_names = {"fire", "smoke"};
    const auto msg = load_error(g);
    EXPECT_NE(msg.find("class_names has 2 names but output 0 'probabilities' (1x3) has 3 classes"), std::string::npos) << msg;
    g.metadata.class_names.clear();  // unnamed classes are allowed: predict prints indices
    EXPECT_EQ(load_error(g), "");
}

TEST(EngineMetadata, LogitsOutputMustHaveTheClassesOfOutputZero) {
    GraphMaker m(8);
    auto pooled = m.pool(m.input({1, 6, 6, 3}));
    auto logits = m.fc(pooled, 2);
    m.g.outputs = {m.softmax(logits), pooled};  // output 1 has 3 values, not the 2 classes
    m.g.metadata.class_names = {"fire", "neutral"};
    m.g.metadata.size = m.g.metadata.resize_shorter = 6;
    const auto msg = load_error(m.g);
    EXPECT_NE(msg.find("output 1 '" + m.g.tensors[static_cast<std::size_t>(pooled)].name + "' (the logits) is f32 1x3"),
              std::string::npos)
        << msg;
}

TEST(EngineMetadata, PreprocessValuesMustBeFiniteAndSane) {
    const Graph g = pool_classifier(6);
    EXPECT_EQ(parse_error(with_preprocess(g, "size", "6")), "");  // the helper alone changes nothing the loader sees
    const std::vector<std::pair<std::string, std::string>> cases = {
        {"size", "0"},
        {"size", "-3"},
        {"size", "2.5"},
        {"size", "\"6\""},
        {"resize_shorter", "5"},
        {"scale", "0"},
        {"scale", "1e39"},
        {"scale", "null"},
        {"mean", "null"},
        {"mean", "-1e300"},
    };
    const std::vector<std::string> expect = {
        "preprocess.size 0 is out of range (1 to 8192)",
        "preprocess.size -3 is not an integer",
        "preprocess.size 2.5 is not an integer",
        "preprocess.size \"6\" is not an integer",
        "preprocess.resize_shorter 5 must be at least preprocess.size 6",
        "preprocess.scale is 0",
        "preprocess.scale 1e+39 is not a finite number",
        "preprocess.scale null is not a finite number",
        "preprocess.mean null is not a finite number",
        "preprocess.mean -1e+300 is not a finite number",
    };
    for (std::size_t i = 0; i < cases.size(); ++i) {
        const auto msg = parse_error(with_preprocess(g, cases[i].first, cases[i].second));
        EXPECT_NE(msg.find("x.fse: metadata section: " + expect[i]), std::string::npos) << cases[i].first << " = " << cases[i].second << ": " << msg;
    }
    // NaN and infinity from the writer (which stores them as null) are refused the same way.
    Graph nan_mean = g;
    nan_mean.metadata.mean = std::numeric_limits<float>::quiet_NaN();
    EXPECT_NE(load_error(nan_mean).find("preprocess.mean null is not a finite number"), std::string::npos) << load_error(nan_mean);
    Graph inf_scale = g;
    inf_scale.metadata.scale = std::numeric_limits<float>::infinity();
    EXPECT_NE(load_error(inf_scale).find("preprocess.scale null is not a finite number"), std::string::npos) << load_error(inf_scale);
}

// small_graph() in int8: its conv filter is given clustered values so that it has one scale
// (stored replicated per channel), and every filter has all-zero zero points.
Graph small_int8_graph() {
    Graph g = small_graph();
    for (auto& t : g.tensors)
        if (t.constant && t.shape.size() == 4 && t.shape[1] == 3 && t.shape[3] == 3) {  // the 3x3 conv filter
            const float levels[4] = {-0.5f, -0.25f, 0.25f, 0.5f};
            for (std::size_t i = 0; i < t.owned.size(); ++i) t.owned[i] = levels[i % 4];
        }
    std::map<std::string, TensorRange> ranges;
    for (const auto& t : g.tensors)
        if (!t.constant) ranges[t.name] = {-4.f, 4.f};
    quantize_int8(g, ranges);
    return g;
}

// The byte offset of tensor 0's flags in a serialized graph section.
std::size_t first_tensor_flags(const std::string& b) {
    const auto s = section(b, 0);
    return s.offset + 4 + 4 + read_at<std::uint32_t>(b, s.offset + 4) + 1;
}

TEST(EngineFormat, UniformQuantizationArraysAreStoredOnceAndReadBackWhole) {
    const Graph g = small_int8_graph();
    std::size_t replicated_scales = 0, replicated_zero_points = 0;
    for (const auto& t : g.tensors) {
        if (t.quant.scale.size() < 2) continue;
        bool same_scale = true, same_zero = true;
        for (std::size_t c = 0; c < t.quant.scale.size(); ++c) {
            same_scale = same_scale && t.quant.scale[c] == t.quant.scale[0];
            same_zero = same_zero && t.quant.zero_point[c] == t.quant.zero_point[0];
        }
        replicated_scales += same_scale;
        replicated_zero_points += same_zero;
    }
    ASSERT_GE(replicated_scales, 1u) << "the clustered conv filter should have one scale, replicated";
    ASSERT_GE(replicated_zero_points, 2u);
    const std::string bytes = serialize(g);
    auto owner = std::make_shared<std::string>(bytes);
    const Graph back = parse_engine(reinterpret_cast<const std::uint8_t*>(owner->data()), owner->size(), owner);
    ASSERT_EQ(back.tensors.size(), g.tensors.size());
    for (std::size_t i = 0; i < g.tensors.size(); ++i) {
        EXPECT_EQ(back.tensors[i].quant.scale, g.tensors[i].quant.scale) << g.tensors[i].name;
        EXPECT_EQ(back.tensors[i].quant.zero_point, g.tensors[i].quant.zero_point) << g.tensors[i].name;
        EXPECT_EQ(back.tensors[i].quant.axis, g.tensors[i].quant.axis) << g.tensors[i].name;
        EXPECT_EQ(back.tensors[i].dtype, g.tensors[i].dtype) << g.tensors[i].name;
    }
    EXPECT_EQ(serialize(back), bytes);
    // Bias scales are input scale x filter scale and are not stored: nudging one bias's scales off
    // that product (within the validator's tolerance) makes the writer store them.
    Graph nudged = g;
    std::size_t bias_scales = 0;
    for (auto& t : nudged.tensors)
        if (t.dtype == DType::I32 && t.quant.scale.size() >= 2) {
            for (std::size_t c = 0; c < t.quant.scale.size(); ++c) t.quant.scale[c] *= (c % 2 ? 1.000001f : 0.999999f);
            bias_scales = t.quant.scale.size();
            break;
        }
    ASSERT_GE(bias_scales, 2u);
    EXPECT_EQ(section(serialize(nudged), 0).size, section(bytes, 0).size + 4 * bias_scales);
    // Both engines compute the same bytes.
    SessionOptions ref;
    ref.backend = Backend::Reference;
    Session a(Engine::from_graph(g), ref);
    Session b(Engine::from_graph(back), ref);
    std::vector<float> x(6 * 6 * 3);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 7) - 3.f;
    EXPECT_EQ(a.logits(x), b.logits(x));
}

TEST(EngineFormat, Version2FilesStillReadAndUniformFlagsNeedVersion3) {
    const std::string bytes = serialize(small_graph());  // f32: no quantization arrays, so also a valid version 2 file
    {
        std::string b = bytes;
        write_at<std::uint32_t>(b, 8, 2);
        reseal(b);
        EXPECT_EQ(parse_error(b), "");
        const auto flags = first_tensor_flags(b);
        write_at<std::uint8_t>(b, flags, static_cast<std::uint8_t>(read_at<std::uint8_t>(b, flags) | 2));
        reseal(b);
        EXPECT_NE(parse_error(b).find("flags has unknown bits"), std::string::npos) << parse_error(b);
    }
    {
        // Version 3 knows the bit, but a uniform array needs at least two entries.
        std::string b = bytes;
        const auto flags = first_tensor_flags(b);
        write_at<std::uint8_t>(b, flags, static_cast<std::uint8_t>(read_at<std::uint8_t>(b, flags) | 2));
        reseal(b);
        EXPECT_NE(parse_error(b).find("uniform quantization array of 0 entries"), std::string::npos) << parse_error(b);
        // Derived scales belong to i32 biases only.
        write_at<std::uint8_t>(b, flags, static_cast<std::uint8_t>((read_at<std::uint8_t>(b, flags) & ~2) | 8));
        reseal(b);
        EXPECT_NE(parse_error(b).find("derived scales on a tensor that is not an i32 bias"), std::string::npos) << parse_error(b);
    }
}

TEST(EngineFormat, LoadNamesTheFileForMissingAndEmptyFiles) {
    test::TempDir dir;
    try {
        Engine::load(dir / "none.fse");
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("none.fse"), std::string::npos);
    }
    std::ofstream(dir / "empty.fse").close();
    try {
        Engine::load(dir / "empty.fse");
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("empty"), std::string::npos);
    }
}

}  // namespace
}  // namespace firesight::engine
