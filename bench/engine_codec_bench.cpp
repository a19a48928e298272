// engine_codec_bench: what the compact weight encodings save on a real MobileNetV2 and what
// XNNPACK's sparse hint does to its latency. From a .tflite (weights dequantized to f32) or an
// f32 engine file (.fse, e.g. a trained fire model from `firesight build`) it makes variants with
// magnitude-pruned 1x1 convs (50 / 75 / 90% zeros per layer), 16-level k-means palettes on every
// conv / fc filter, and both; prints each variant's engine file size against the same file with
// every constant dense (what format version 1 stored), its load time, and the XNNPACK batch-1
// latency with sparse=false and sparse=true (median of interleaved runs), then the peak RSS.
// Usage: engine_codec_bench [MODEL.tflite|MODEL.fse] [RUNS] [THREADS]
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "firesight/compress/cluster.h"
#include "firesight/engine/session.h"
#include "firesight/engine/ir.h"
#include "firesight/builder/passes.h"
#include "firesight/builder/tflite_graph.h"
#include "firesight/engine/format.h"
#include "firesight/common/error.h"
#include "firesight/engine/weight_codec.h"

namespace {

using namespace firesight;
using Clock = std::chrono::steady_clock;

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.empty() ? 0.0 : v[v.size() / 2];
}

bool is_1x1(const engine::Graph& g, const engine::Op& op) {
    if (op.kind != engine::OpKind::Conv2D) return false;
    const auto& s = g.tensors[static_cast<std::size_t>(op.inputs[1])].shape;
    return s[1] == 1 && s[2] == 1;
}

// The f32 filter of an op as an owned vector (a loaded graph's weights may point into the file).
std::vector<float>& owned_filter(engine::Graph& g, const engine::Op& op) {
    auto& t = g.tensors[static_cast<std::size_t>(op.inputs[1])];
    if (t.owned.empty()) {
        t.owned.assign(t.data(), t.data() + t.element_count());
        t.external = nullptr;
        t.storage.reset();
    }
    return t.owned;
}

// Per layer: the smallest-magnitude share of each 1x1 conv's weights becomes exactly zero.
void prune_1x1(engine::Graph& g, double sparsity) {
    for (const auto& op : g.ops) {
        if (!is_1x1(g, op)) continue;
        auto& w = owned_filter(g, op);
        std::vector<float> mag(w.size());
        for (std::size_t i = 0; i < w.size(); ++i) mag[i] = std::fabs(w[i]);
        const auto cut = static_cast<std::size_t>(sparsity * static_cast<double>(w.size()));
        if (cut == 0) continue;
        std::nth_element(mag.begin(), mag.begin() + static_cast<std::ptrdiff_t>(cut - 1), mag.end());
        const float threshold = mag[cut - 1];
        std::size_t zeroed = 0;
        for (auto& x : w)
            if (std::fabs(x) < threshold) x = 0.f, ++zeroed;
        for (auto& x : w)  // ties at the threshold, until the share is exact
            if (zeroed < cut && x != 0.f && std::fabs(x) == threshold) x = 0.f, ++zeroed;
    }
}

// Per layer k-means (density init) on every conv / depthwise / fc filter; zeros from pruning keep
// their own fixed centroid.
void cluster(engine::Graph& g, int k) {
    for (const auto& op : g.ops) {
        if (op.kind != engine::OpKind::Conv2D && op.kind != engine::OpKind::DepthwiseConv2D && op.kind != engine::OpKind::FullyConnected)
            continue;
        auto& w = owned_filter(g, op);
        compress::KMeansOptions o;
        o.k = k;
        o.preserve_zeros = std::count(w.begin(), w.end(), 0.f) > 0;
        w = compress::kmeans_1d(w, o).values();
    }
}

// TF SAME padding of 3x3 stride-2 ops on even sizes (0 top/left, 1 bottom/right) made symmetric:
// the same output shapes, slightly different numbers, and the shape XNNPACK's sparse path needs.
void symmetric_padding(engine::Graph& g) {
    for (auto& op : g.ops)
        if ((op.kind == engine::OpKind::Conv2D || op.kind == engine::OpKind::DepthwiseConv2D) && op.stride_h == 2 &&
            op.pad_top == 0 && op.pad_left == 0 && op.pad_bottom == 1 && op.pad_right == 1)
            op.pad_top = op.pad_left = 1;
}

double zero_share_1x1(const engine::Graph& g) {
    std::size_t zeros = 0, total = 0;
    for (const auto& op : g.ops) {
        if (!is_1x1(g, op)) continue;
        const auto& t = g.tensors[static_cast<std::size_t>(op.inputs[1])];
        const auto n = static_cast<std::size_t>(t.element_count());
        zeros += static_cast<std::size_t>(std::count(t.data(), t.data() + n, 0.f));
        total += n;
    }
    return total ? static_cast<double>(zeros) / static_cast<double>(total) : 0.0;
}

std::map<engine::WeightEncoding, int> encodings_used(const engine::Graph& g) {
    std::map<engine::WeightEncoding, int> m;
    for (const auto& t : g.tensors)
        if (t.constant) m[engine::encode_weights(t.bytes(), static_cast<std::size_t>(t.element_count()), engine::dtype_size(t.dtype)).encoding]++;
    return m;
}

struct Variant {
    std::string name;
    engine::Graph graph;
    bool time_it = true;
};

}  // namespace

int main(int argc, char** argv) {
    const std::filesystem::path model = argc > 1 ? argv[1] : "../shared/assets/mobilenet_v2/mobilenet_v2_1.0_224_quant.tflite";
    const int runs = argc > 2 ? std::max(3, std::atoi(argv[2])) : 30;
    const int threads = argc > 3 ? std::max(1, std::atoi(argv[3])) : 1;
    try {
        engine::Graph base = model.extension() == ".fse" ? engine::load_graph(model) : engine::graph_from_tflite_file(model);
        engine::optimize(base);
        for (const auto& t : base.tensors)
            if (t.constant && t.dtype != engine::DType::F32)
                throw Error(model.string() + ": an int8 engine; this bench prunes and clusters f32 weights, give it an f32 engine or a .tflite");
        for (auto& t : base.tensors)  // own the weights: the variants change them
            if (t.constant && t.dtype == engine::DType::F32 && t.owned.empty()) {
                t.owned.assign(t.data(), t.data() + t.element_count());
                t.external = nullptr;
                t.storage.reset();
            }
        std::vector<Variant> variants;
        variants.push_back({"dense", base});
        for (double s : {0.5, 0.75, 0.9}) {
            Variant v{"prune" + std::to_string(static_cast<int>(s * 100)), base};
            prune_1x1(v.graph, s);
            variants.push_back(std::move(v));
        }
        {
            Variant v{"k16", base, false};
            cluster(v.graph, 16);
            variants.push_back(std::move(v));
        }
        {
            Variant v{"prune75+k16", base, false};
            prune_1x1(v.graph, 0.75);
            cluster(v.graph, 16);
            variants.push_back(std::move(v));
        }
        {
            Variant v{"prune90+sympad", base};
            prune_1x1(v.graph, 0.9);
            symmetric_padding(v.graph);
            variants.push_back(std::move(v));
        }

        const std::filesystem::path dir = std::filesystem::temp_directory_path() / ("engine_codec_bench_" + std::to_string(::getpid()));
        std::filesystem::create_directories(dir);
        bool has_avx = false;
#if defined(__x86_64__) || defined(__i386__)
        has_avx = __builtin_cpu_supports("avx");
#endif
        std::printf("model %s, %d runs, %d thread(s); XNNPACK sparse kernels on this CPU: %s\n\n", model.c_str(), runs, threads,
                    has_avx ? "no (x86 with AVX: XNNPACK keeps them off)" : "available");
        std::printf("%-16s %8s %12s %12s %7s %12s %9s  %-20s %10s %10s\n", "variant", "1x1 zero", "all-dense B", "file bytes", "ratio",
                    "weights B", "load ms", "dense/pal/sp/sp+pal", "xnn dense", "xnn sparse");
        for (auto& v : variants) {
            const auto path = dir / (v.name + ".fse");
            engine::save_engine(v.graph, path);
            const auto size = std::filesystem::file_size(path);
            std::vector<double> load;
            for (int i = 0; i < std::max(3, runs / 3); ++i) {
                const auto t0 = Clock::now();
                auto e = engine::Engine::load(path);
                load.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
            }
            // The reloaded engine must be the same graph, bit for bit.
            auto e = engine::Engine::load(path);
            for (std::size_t i = 0; i < v.graph.tensors.size(); ++i) {
                const auto& a = v.graph.tensors[i];
                if (!a.constant) continue;
                const auto bytes = static_cast<std::size_t>(a.element_count()) * engine::dtype_size(a.dtype);
                if (std::memcmp(a.bytes(), e->graph().tensors[i].bytes(), bytes) != 0) throw Error(v.name + ": " + a.name + " did not reload exactly");
            }
            auto enc = encodings_used(v.graph);
            char encs[64];
            std::snprintf(encs, sizeof encs, "%d/%d/%d/%d", enc[engine::WeightEncoding::Dense], enc[engine::WeightEncoding::Palette],
                          enc[engine::WeightEncoding::Sparse], enc[engine::WeightEncoding::SparsePalette]);
            double lat_dense = 0, lat_sparse = 0;
            if (v.time_it) {
                engine::SessionOptions od{engine::Backend::Xnnpack, threads};
                od.sparse = false;
                engine::SessionOptions os{engine::Backend::Xnnpack, threads};
                os.sparse = true;
                engine::Session sd(e, od), ss(e, os);
                const auto in = e->inputs()[0].shape;
                std::vector<float> x(static_cast<std::size_t>(in[1] * in[2] * in[3]), 0.1f);
                for (int w = 0; w < 3; ++w) sd.run(x), ss.run(x);
                std::vector<double> td, ts;
                for (int r = 0; r < runs; ++r) {  // interleaved, so load bursts hit both alike
                    auto t0 = Clock::now();
                    sd.run(x);
                    td.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
                    t0 = Clock::now();
                    ss.run(x);
                    ts.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
                }
                lat_dense = median(td);
                lat_sparse = median(ts);
            }
            // The same file with every constant dense: only the weights section differs (each
            // constant 64-byte aligned, the section padded to 64 before the metadata).
            std::uint64_t weights_section = 0, dense_weights = 0;
            {
                const auto bytes = engine::serialize(v.graph);
                std::memcpy(&weights_section, bytes.data() + 64 + 32 + 16, 8);
                for (const auto& t : v.graph.tensors)
                    if (t.constant)
                        dense_weights = (dense_weights + 63) / 64 * 64 + static_cast<std::uint64_t>(t.element_count()) * engine::dtype_size(t.dtype);
            }
            const auto pad64 = [](std::uint64_t x) { return (x + 63) / 64 * 64; };
            const std::uint64_t all_dense = size - pad64(weights_section) + pad64(dense_weights);
            std::printf("%-16s %7.1f%% %12llu %12llu %6.2fx %12llu %9.2f  %-20s", v.name.c_str(), 100.0 * zero_share_1x1(v.graph),
                        static_cast<unsigned long long>(all_dense), static_cast<unsigned long long>(size),
                        static_cast<double>(all_dense) / static_cast<double>(size), static_cast<unsigned long long>(weights_section),
                        median(load), encs);
            if (v.time_it)
                std::printf(" %8.2fms %8.2fms\n", lat_dense, lat_sparse);
            else
                std::printf(" %10s %10s\n", "-", "-");
        }
        std::filesystem::remove_all(dir);
        rusage ru{};
        getrusage(RUSAGE_SELF, &ru);
        std::printf("\npeak RSS %.1f MB\n", static_cast<double>(ru.ru_maxrss) / 1024.0);
    } catch (const Error& e) {
        std::fprintf(stderr, "engine_codec_bench: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
