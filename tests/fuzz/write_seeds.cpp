// Writes small valid seed inputs for the fuzz targets: an engine file with every op kind the
// loader knows about, a small .tflite, codec streams and (built with OpenCV) small images in each
// format OpenCV encodes here, so fuzzing starts past the magic numbers.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>

#include "firesight/engine/ir.h"
#include "firesight/builder/quantize.h"
#include "firesight/engine/format.h"
#include "firesight/engine/weight_codec.h"
#include "import/tflite_writer.h"

#ifdef FIRESIGHT_SEED_IMAGES
#include <opencv2/imgcodecs.hpp>
#endif

using namespace firesight;

namespace {

#ifdef FIRESIGHT_SEED_IMAGES
// A 16x12 colour gradient (the decoder refuses images under 8x8, so seeds must be larger) in
// each format, plus a grey PNG and one with alpha, which the decoder turns into 3 channels.
void write_image_seeds(const std::filesystem::path& dir) {
    std::filesystem::create_directories(dir);
    cv::Mat bgr(12, 16, CV_8UC3);
    for (int y = 0; y < bgr.rows; ++y)
        for (int x = 0; x < bgr.cols; ++x) bgr.at<cv::Vec3b>(y, x) = cv::Vec3b(static_cast<uchar>(16 * x), static_cast<uchar>(20 * y), 200);
    cv::Mat grey, bgra;
    cv::extractChannel(bgr, grey, 1);
    cv::merge(std::vector<cv::Mat>{bgr, grey}, bgra);
    const std::vector<std::pair<std::string, const cv::Mat*>> files = {
        {"seed.jpg", &bgr}, {"seed.png", &bgr}, {"seed.bmp", &bgr}, {"seed.ppm", &bgr}, {"seed.tiff", &bgr},
        {"seed.webp", &bgr}, {"grey.png", &grey}, {"alpha.png", &bgra}};
    for (const auto& [name, img] : files) {
        std::vector<uchar> bytes;
        try {
            if (!cv::imencode(std::filesystem::path(name).extension().string(), *img, bytes)) bytes.clear();
        } catch (const cv::Exception&) {
            bytes.clear();  // a codec this OpenCV lacks: the others still make seeds
        }
        if (bytes.empty()) {
            std::fprintf(stderr, "write_seeds: this OpenCV cannot encode %s, skipped\n", name.c_str());
            continue;
        }
        std::ofstream(dir / name, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    }
}
#endif

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3 || argc > 5) {
        std::fprintf(stderr, "usage: write_seeds ENGINE_DIR TFLITE_DIR [CODEC_DIR [IMAGE_DIR]]\n");
        return 2;
    }
    std::filesystem::create_directories(argv[1]);
    std::filesystem::create_directories(argv[2]);
    engine::Graph g;
    engine::Tensor x;
    x.name = "input";
    x.shape = {1, 4, 4, 3};
    g.inputs = {g.add_tensor(x)};
    engine::Op conv;
    conv.kind = engine::OpKind::Conv2D;
    conv.stride_h = conv.stride_w = 2;
    conv.pad_bottom = conv.pad_right = 1;
    conv.activation = engine::Activation::Relu6;
    conv.inputs = {g.inputs[0], g.add_constant("w", {2, 3, 3, 3}, std::vector<float>(54, 0.1f)), g.add_constant("b", {2}, {0.f, 1.f})};
    engine::Tensor y;
    y.name = "conv";
    y.shape = {1, 2, 2, 2};
    conv.outputs = {g.add_tensor(y)};
    g.ops.push_back(conv);
    engine::Op pool;
    pool.kind = engine::OpKind::GlobalAveragePool;
    pool.inputs = conv.outputs;
    engine::Tensor p;
    p.name = "pooled";
    p.shape = {1, 2};
    pool.outputs = {g.add_tensor(p)};
    g.ops.push_back(pool);
    engine::Op sm;
    sm.kind = engine::OpKind::Softmax;
    sm.inputs = pool.outputs;
    engine::Tensor s;
    s.name = "probabilities";
    s.shape = {1, 2};
    sm.outputs = {g.add_tensor(s)};
    g.ops.push_back(sm);
    g.outputs = {sm.outputs[0], pool.outputs[0]};
    g.metadata.class_names = {"fire", "no fire"};
    g.metadata.size = g.metadata.resize_shorter = 4;
    std::ofstream(std::filesystem::path(argv[1]) / "seed.fse", std::ios::binary) << engine::serialize(g);
    // The same graph in int8, so the fuzzer also starts from quantization arrays stored once
    // (uniform scales and zero points) and bias scales derived at load.
    {
        engine::Graph q = g;
        std::map<std::string, engine::TensorRange> ranges;
        for (const auto& t : q.tensors)
            if (!t.constant) ranges[t.name] = {-1.f, 6.f};
        engine::quantize_int8(q, ranges);
        std::ofstream(std::filesystem::path(argv[1]) / "seed_int8.fse", std::ios::binary) << engine::serialize(q);
    }

    // A second engine whose 1x1 convs take each compact weight encoding (palette, sparse,
    // sparse + palette), so the fuzzer starts inside the codec's decoder too.
    {
        engine::Graph c;
        engine::Tensor cx;
        cx.name = "input";
        cx.shape = {1, 2, 2, 3};  // an RGB image, as the loader requires of an engine's input
        c.inputs = {c.add_tensor(cx)};
        auto one_by_one = [&](std::int32_t in, int cin, int cout, const std::string& name, auto value_of) {
            std::vector<float> w(static_cast<std::size_t>(cin * cout));
            for (std::size_t i = 0; i < w.size(); ++i) w[i] = value_of(i);
            engine::Op op;
            op.kind = engine::OpKind::Conv2D;
            op.inputs = {in, c.add_constant(name, {cout, 1, 1, cin}, w)};
            engine::Tensor y;
            y.name = name + ".out";
            y.shape = {1, 2, 2, cout};
            op.outputs = {c.add_tensor(y)};
            c.ops.push_back(op);
            return op.outputs[0];
        };
        auto a1 = one_by_one(c.inputs[0], 3, 16, "palette", [](std::size_t i) { return 0.25f * static_cast<float>(i % 4) - 0.3f; });
        auto a2 = one_by_one(a1, 16, 16, "sparse", [](std::size_t i) { return i % 10 == 0 ? 0.01f * static_cast<float>(i) : 0.f; });
        auto a3 = one_by_one(a2, 16, 16, "sparse_palette", [](std::size_t i) { return i % 4 == 0 ? 0.5f * static_cast<float>(i % 3) + 0.5f : 0.f; });
        engine::Op cp;
        cp.kind = engine::OpKind::GlobalAveragePool;
        cp.inputs = {a3};
        engine::Tensor cpt;
        cpt.name = "pooled";
        cpt.shape = {1, 16};
        cp.outputs = {c.add_tensor(cpt)};
        c.ops.push_back(cp);
        c.outputs = {cp.outputs[0]};
        c.metadata.size = c.metadata.resize_shorter = 2;
        std::ofstream(std::filesystem::path(argv[1]) / "seed_encoded.fse", std::ios::binary) << engine::serialize(c);
    }

    test::FakeTensor in{"input", {1, 4, 4, 3}, 0, {}, {}, {}, 0};
    std::vector<std::uint8_t> wbytes(2 * 1 * 1 * 3 * 4, 0);
    test::FakeTensor w{"w", {2, 1, 1, 3}, 0, wbytes, {}, {}, 0};
    test::FakeTensor out{"out", {1, 4, 4, 2}, 0, {}, {}, {}, 0};
    const auto bytes = test::build_tflite({in, w, out}, {{3, {0, 1, -1}, {2}}});
    std::ofstream(std::filesystem::path(argv[2]) / "seed.tflite", std::ios::binary)
        .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));

    // Codec inputs (fuzz_weight_codec): encoding, element size, u16 count, then each encoding of
    // a small pruned and clustered tensor.
    if (argc >= 4) {
        std::filesystem::create_directories(argv[3]);
        std::vector<float> w(37, 0.f);
        for (std::size_t i = 0; i < w.size(); i += 3) w[i] = 0.5f * static_cast<float>(i % 4) - 0.75f;
        for (int e = 0; e < 4; ++e) {
            const auto enc = engine::encode_weights_as(static_cast<engine::WeightEncoding>(e), w.data(), w.size(), 4);
            std::string bytes = {static_cast<char>(e), 1, static_cast<char>(w.size()), 0};
            bytes.append(reinterpret_cast<const char*>(enc.bytes.data()), enc.bytes.size());
            std::ofstream(std::filesystem::path(argv[3]) / ("codec" + std::to_string(e)), std::ios::binary) << bytes;
        }
    }
    // Image seeds (fuzz_image_decode) need OpenCV's encoders; a runtime-only build has no image fuzzer.
    if (argc == 5) {
#ifdef FIRESIGHT_SEED_IMAGES
        write_image_seeds(argv[4]);
#else
        std::fprintf(stderr, "write_seeds: built without OpenCV, no image seeds written to %s\n", argv[4]);
#endif
    }
    return 0;
}
