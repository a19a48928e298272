// int8_bench: int8 vs fp32 latency of the same MobileNetV2-sized engine on XNNPACK (batch 1,
// one thread by default), and of the int8 engine on the native-int8 backend (AVX512-VNNI), with the int8 engine calibrated min-max on sample images, and how often
// the two agree on the top-1 class. Usage:
//   int8_bench [MODEL.tflite] [IMAGE_DIR] [RUNS] [THREADS] [SAVE_PREFIX]
// (THREADS for xnnpack and native-int8 alike)
// (with SAVE_PREFIX it also writes SAVE_PREFIX-fp32.fse and SAVE_PREFIX-int8.fse, e.g. for
// `firesight-run --bench`)
// defaults: ../shared/assets/mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite (its weights
// dequantized to float), ../shared/assets/imagenet-samples, 50 runs, 1 thread.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <random>
#include <vector>

#include "firesight/engine/session.h"
#include "firesight/engine/ir.h"
#include "firesight/builder/passes.h"
#include "firesight/builder/quantize.h"
#include "firesight/builder/tflite_graph.h"
#include "firesight/engine/format.h"
#include "firesight/engine/reference.h"
#include "firesight/common/error.h"
#include "firesight/data/image.h"
#include "firesight/common/progress.h"

namespace {

using namespace firesight;
using Clock = std::chrono::steady_clock;

std::filesystem::path asset(const char* rel) {
    for (const char* base : {"../shared/assets", "/work/shared/assets", "../../shared/assets"})
        if (std::filesystem::exists(std::filesystem::path(base) / rel)) return std::filesystem::path(base) / rel;
    return std::filesystem::path("../shared/assets") / rel;
}

std::size_t argmax(const float* p, std::int64_t n) { return static_cast<std::size_t>(std::max_element(p, p + n) - p); }

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

// One layer alone (input -> layer -> output), f32 and int8, so the whole-network ratio can be
// traced to the kinds of layers XNNPACK speeds up or not.
struct LayerTiming {
    double fp32_ms, int8_ms, native_ms;
};

LayerTiming time_layer(engine::OpKind kind, int hw, int c, int out, int runs, int threads) {
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    auto values = [&](std::size_t n, float r) {
        std::vector<float> v(n);
        for (auto& x : v) x = u(rng) * r;
        return v;
    };
    engine::Graph g;
    engine::Tensor x;
    x.name = "input";
    x.shape = {1, hw, hw, c};
    g.inputs = {g.add_tensor(x)};
    engine::Op op;
    op.kind = kind;
    op.activation = engine::Activation::Relu6;
    const int oc = kind == engine::OpKind::Conv2D ? out : c;
    if (kind == engine::OpKind::Conv2D) {
        op.inputs = {g.inputs[0], g.add_constant("w", {out, 1, 1, c}, values(static_cast<std::size_t>(out * c), 0.2f)),
                     g.add_constant("b", {out}, values(static_cast<std::size_t>(out), 0.1f))};
    } else {
        op.pad_top = op.pad_left = op.pad_bottom = op.pad_right = 1;
        op.inputs = {g.inputs[0], g.add_constant("w", {1, 3, 3, c}, values(static_cast<std::size_t>(9 * c), 0.5f)),
                     g.add_constant("b", {c}, values(static_cast<std::size_t>(c), 0.1f))};
    }
    engine::Tensor y;
    y.name = "output";
    y.shape = {1, hw, hw, oc};
    op.outputs = {g.add_tensor(y)};
    g.ops = {op};
    g.outputs = {op.outputs[0]};
    const auto input = values(static_cast<std::size_t>(hw * hw * c), 1.f);
    const auto all = engine::run_reference_all(g, {input.data()}, 1);
    std::map<std::string, engine::TensorRange> ranges;
    for (std::size_t t : {static_cast<std::size_t>(g.inputs[0]), static_cast<std::size_t>(g.outputs[0])}) {
        const auto [lo, hi] = std::minmax_element(all[t].begin(), all[t].end());
        ranges[g.tensors[t].name] = {*lo, *hi};
    }
    engine::Graph q = g;
    engine::quantize_int8(q, ranges);
    engine::Session s32(engine::Engine::from_graph(std::move(g)), {engine::Backend::Xnnpack, threads});
    auto e8 = engine::Engine::from_graph(std::move(q));
    engine::Session s8(e8, {engine::Backend::Xnnpack, threads});
    engine::Session sn(e8, {engine::Backend::NativeInt8, threads});
    std::vector<double> a, b, n8;
    for (int r = 0; r < runs + 5; ++r) {
        const auto t0 = Clock::now();
        s32.run(input, 1);
        const auto t1 = Clock::now();
        s8.run(input, 1);
        const auto t2 = Clock::now();
        sn.run(input, 1);
        const auto t3 = Clock::now();
        if (r < 5) continue;
        a.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
        b.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
        n8.push_back(std::chrono::duration<double, std::milli>(t3 - t2).count());
    }
    return {median(a), median(b), median(n8)};
}

}  // namespace

int main(int argc, char** argv) {
    const std::filesystem::path model = argc > 1 ? argv[1] : asset("mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite");
    const std::filesystem::path images = argc > 2 ? argv[2] : asset("imagenet-samples");
    const int runs = argc > 3 ? std::max(1, std::atoi(argv[3])) : 50;
    const int threads = argc > 4 ? std::max(1, std::atoi(argv[4])) : 1;
    const bool native_vnni = engine::native_int8_fast();
    try {
        if (!engine::backend_available(engine::Backend::Xnnpack)) throw Error("int8_bench: this build has no xnnpack backend");
        engine::Graph fp32 = engine::graph_from_tflite_file(model);
        engine::optimize(fp32);
        const auto& md = fp32.metadata;
        data::Preprocess pre{md.size, md.resize_shorter, md.mean, md.scale};
        std::vector<std::filesystem::path> files;
        for (const auto& e : std::filesystem::directory_iterator(images))
            if (e.is_regular_file() && e.path().filename() != "LICENSE") files.push_back(e.path());
        std::sort(files.begin(), files.end());
        if (files.empty()) throw Error(images.string() + ": no images");
        std::vector<std::vector<float>> inputs;
        for (const auto& f : files) {
            const cv::Mat x = data::preprocess(data::decode_image(f), pre);
            inputs.emplace_back(reinterpret_cast<const float*>(x.data), reinterpret_cast<const float*>(x.data) + x.total() * 3);
        }

        // Min-max calibration with the reference kernels on every sample image.
        std::map<std::string, engine::TensorRange> ranges;
        {
            ProgressBar bar("calibrating", inputs.size());
            for (std::size_t i = 0; i < inputs.size(); ++i) {
                const auto values = engine::run_reference_all(fp32, {inputs[i].data()}, 1);
                for (std::size_t t = 0; t < fp32.tensors.size(); ++t) {
                    if (fp32.tensors[t].constant) continue;
                    const auto [lo, hi] = std::minmax_element(values[t].begin(), values[t].end());
                    auto [it, fresh] = ranges.try_emplace(fp32.tensors[t].name, engine::TensorRange{*lo, *hi});
                    if (!fresh) it->second = {std::min(it->second.min, *lo), std::max(it->second.max, *hi)};
                }
                bar.update(i + 1);
            }
            bar.finish();
        }
        engine::Graph int8 = fp32;
        engine::quantize_int8(int8, ranges);
        const auto fp32_bytes = engine::serialize(fp32).size(), int8_bytes = engine::serialize(int8).size();
        if (argc > 5) {
            engine::save_engine(fp32, std::string(argv[5]) + "-fp32.fse");
            engine::save_engine(int8, std::string(argv[5]) + "-int8.fse");
        }

        auto e32 = engine::Engine::from_graph(std::move(fp32));
        auto e8 = engine::Engine::from_graph(std::move(int8));
        engine::Session s32(e32, {engine::Backend::Xnnpack, threads});
        engine::Session s8(e8, {engine::Backend::Xnnpack, threads});
        engine::Session sn(e8, {engine::Backend::NativeInt8, threads});
        s32.prepare(1);
        s8.prepare(1);
        sn.prepare(1);

        int agree = 0, native_same = 0;
        for (std::size_t i = 0; i < inputs.size(); ++i) {
            const auto a = argmax(s32.run(inputs[i], 1)[0], s32.output_size(0));
            const float* xo = s8.run(inputs[i], 1)[1];
            const std::vector<float> xnn_logits(xo, xo + s8.output_size(1));
            const auto b = argmax(s8.run(inputs[i], 1)[0], s8.output_size(0));
            native_same += std::memcmp(sn.run(inputs[i], 1)[1], xnn_logits.data(), xnn_logits.size() * sizeof(float)) == 0;
            const auto& names = e32->metadata().class_names;
            std::printf("%-20s fp32 %-24s int8 %-24s\n", files[i].filename().string().c_str(),
                        a < names.size() ? names[a].c_str() : std::to_string(a).c_str(),
                        b < names.size() ? names[b].c_str() : std::to_string(b).c_str());
            agree += a == b;
        }

        // Interleaved timing so that load from other processes hits both alike; one input buffer
        // per session so XNNPACK's setup is paid once, as a steady camera loop does.
        const auto& x = inputs.front();
        for (int w = 0; w < 5; ++w) {
            s32.run(x, 1);
            s8.run(x, 1);
            sn.run(x, 1);
        }
        std::vector<double> t32, t8, tn;
        ProgressBar bar("timing", static_cast<std::size_t>(runs));
        for (int r = 0; r < runs; ++r) {
            auto t0 = Clock::now();
            s32.run(x, 1);
            auto t1 = Clock::now();
            s8.run(x, 1);
            auto t2 = Clock::now();
            sn.run(x, 1);
            auto t3 = Clock::now();
            t32.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
            t8.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
            tn.push_back(std::chrono::duration<double, std::milli>(t3 - t2).count());
            bar.update(static_cast<std::size_t>(r + 1));
        }
        bar.finish();
        // native-int8 once more, back to back: in the interleaved loop its workers fall asleep
        // while XNNPACK runs (and XNNPACK's own workers still poll a core), which a camera loop on
        // one backend does not see.
        std::vector<double> tn_alone;
        for (int r = 0; r < runs; ++r) {
            const auto t0 = Clock::now();
            sn.run(x, 1);
            tn_alone.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
        }
        std::printf("\nmodel %s, batch 1, %d thread(s), %d runs, MACs %lld\n", model.filename().string().c_str(), threads, runs,
                    static_cast<long long>(e32->macs()));
        auto min_of = [](const std::vector<double>& v) { return *std::min_element(v.begin(), v.end()); };
        std::printf("%-20s %12s %12s %14s\n", "engine", "median ms", "min ms", "file bytes");
        std::printf("%-20s %12.2f %12.2f %14zu\n", "fp32 xnnpack", median(t32), min_of(t32), fp32_bytes);
        std::printf("%-20s %12.2f %12.2f %14zu\n", "int8 xnnpack", median(t8), min_of(t8), int8_bytes);
        std::printf("%-20s %12.2f %12.2f %14zu\n", "int8 native-int8", median(tn), min_of(tn), int8_bytes);
        std::printf("%-20s %12.2f %12.2f %14zu\n", "  same, runs alone", median(tn_alone), min_of(tn_alone), int8_bytes);
        std::printf("int8/fp32 latency (xnnpack) %.3f, top-1 agreement %d/%zu\n", median(t8) / median(t32), agree, inputs.size());
        std::printf("int8 native-int8/fp32 xnnpack latency: median %.3f, min %.3f (AVX512-VNNI kernels %s)\n",
                    median(tn) / median(t32), min_of(tn) / min_of(t32), native_vnni ? "in use" : "NOT available: reference kernels");
        std::printf("native-int8 logits byte-identical to xnnpack int8: %d/%zu images\n", native_same, inputs.size());

        std::printf("\nsingle layers (relu6, median of %d runs, the int8 times include the f32<->int8 converts; ratios to fp32):\n", runs * 4);
        std::printf("%-34s %10s %10s %10s %8s %8s\n", "layer", "fp32 ms", "int8 ms", "native ms", "ratio", "native");
        struct Layer {
            const char* name;
            engine::OpKind kind;
            int hw, c, out;
        };
        const Layer layers[] = {{"1x1 conv 56x56 24->144", engine::OpKind::Conv2D, 56, 24, 144},
                                {"1x1 conv 14x14 384->64", engine::OpKind::Conv2D, 14, 384, 64},
                                {"1x1 conv 7x7 960->320", engine::OpKind::Conv2D, 7, 960, 320},
                                {"depthwise 3x3 56x56x144", engine::OpKind::DepthwiseConv2D, 56, 144, 0},
                                {"depthwise 3x3 14x14x576", engine::OpKind::DepthwiseConv2D, 14, 576, 0}};
        for (const auto& l : layers) {
            const auto t = time_layer(l.kind, l.hw, l.c, l.out, runs * 4, threads);
            std::printf("%-34s %10.3f %10.3f %10.3f %8.3f %8.3f\n", l.name, t.fp32_ms, t.int8_ms, t.native_ms, t.int8_ms / t.fp32_ms,
                        t.native_ms / t.fp32_ms);
        }
    } catch (const Error& e) {
        std::fprintf(stderr, "int8_bench: error: %s\n", e.what());
        return 1;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "int8_bench: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
