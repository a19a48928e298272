// block_profile: where the time of one inference goes, block by block, on any backend. The engine
// has no per-op timer inside its executors (XNNPACK runs a whole subgraph, native-int8 fuses), so
// this times the network cut after each block: the graph up to block N's output (dequantized when
// int8), every cut timed in interleaved rounds, and a block's time is its cut's median minus the
// previous cut's. Each cut carries one extra output copy (a Dequantize in int8 graphs), so the
// difference of neighbouring cuts is exact up to that small, shifting term and timing noise.
// Usage:
//   block_profile ENGINE.fse [--backend native-int8|xnnpack|reference] [--threads 1] [--runs 30] [--rounds 5]
//                 [--compare REF.fse --images DIR_OR_FILE...]
// Prints one line per block: cumulative ms, block ms, share of the whole, MACs, output shape. With
// --compare (e.g. the fp32 engine of an int8 one), also each block output's relative error
// ||out - ref|| / ||ref|| against REF's same block on the given photos (preprocessed as ENGINE's
// metadata says), to see where quantization or pruning error grows.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "firesight/builder/passes.h"
#include "firesight/common/error.h"
#include "firesight/common/stats.h"
#include "firesight/engine/backend.h"
#include "firesight/engine/format.h"
#include "firesight/engine/ir.h"
#include "firesight/engine/session.h"
#include "firesight/data/engine_classifier.h"
#include "firesight/data/image.h"
#include <filesystem>
#include <cmath>

namespace {

using namespace firesight;
using Clock = std::chrono::steady_clock;

// "features.12.expand" -> "features.12"; "classifier/weights" -> "classifier"; the group an op
// belongs to is the group of its output tensor's name.
std::string group_of(const std::string& name) {
    if (name.rfind("features.", 0) == 0) {
        const auto dot = name.find_first_of("./", 9);
        return name.substr(0, dot);
    }
    return name.substr(0, name.find_first_of("./"));
}

struct Cut {
    std::string group;
    std::shared_ptr<const engine::Engine> engine;
    std::int64_t macs = 0;
    std::string shape;
};

}  // namespace

int main(int argc, char** argv) try {
    if (argc < 2) {
        std::fprintf(stderr, "usage: block_profile ENGINE.fse [--backend B] [--threads N] [--runs N] [--rounds N]\n");
        return 2;
    }
    std::string backend = "native-int8";
    int threads = 1, runs = 30, rounds = 5;
    std::string compare;
    std::vector<std::filesystem::path> images;
    for (int i = 2; i + 1 < argc; i += 2) {
        const std::string k = argv[i];
        if (k == "--images") {
            for (int j = i + 1; j < argc && std::strncmp(argv[j], "--", 2) != 0; ++j, ++i) {
                if (std::filesystem::is_directory(argv[j])) {
                    for (const auto& f : std::filesystem::recursive_directory_iterator(argv[j]))
                        if (f.is_regular_file()) images.push_back(f.path());
                } else {
                    images.push_back(argv[j]);
                }
            }
            --i;
            continue;
        }
        if (k == "--compare") {
            compare = argv[i + 1];
            continue;
        }
        if (k == "--backend") backend = argv[i + 1];
        else if (k == "--threads") threads = std::atoi(argv[i + 1]);
        else if (k == "--runs") runs = std::atoi(argv[i + 1]);
        else if (k == "--rounds") rounds = std::atoi(argv[i + 1]);
        else throw Error("unknown option " + k);
    }
    const auto full = engine::load_graph(argv[1]);
    const auto shapes = engine::infer_shapes(full, 1);
    // The last op of each group, in graph order.
    std::vector<std::pair<std::string, std::int32_t>> ends;
    for (const auto& op : full.ops) {
        if (op.outputs.empty()) continue;
        const auto t = op.outputs[0];
        const std::string grp = group_of(full.tensors[static_cast<std::size_t>(t)].name);
        if (!ends.empty() && ends.back().first == grp) ends.back().second = t;
        else ends.emplace_back(grp, t);
    }
    std::vector<Cut> cuts;
    for (const auto& [grp, t] : ends) {
        Cut c;
        c.group = grp;
        auto g = engine::cut_after(full, t);
        c.macs = engine::count_macs(g);
        std::string s;
        for (auto d : shapes[static_cast<std::size_t>(t)]) s += (s.empty() ? "" : "x") + std::to_string(d);
        c.shape = s;
        c.engine = engine::Engine::from_graph(std::move(g));
        cuts.push_back(std::move(c));
    }
    engine::SessionOptions so;
    so.backend = engine::parse_backend(backend);
    so.threads = threads;
    std::vector<std::unique_ptr<engine::Session>> sessions;
    for (const auto& c : cuts) {
        sessions.push_back(std::make_unique<engine::Session>(c.engine, so));
        sessions.back()->prepare(1);
    }
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    std::vector<float> input(static_cast<std::size_t>(sessions[0]->input_size()));
    for (auto& x : input) x = u(rng);
    std::vector<std::vector<double>> round_medians(cuts.size());
    for (int r = 0; r < rounds; ++r)
        for (std::size_t k = 0; k < cuts.size(); ++k) {
            const std::size_t i = (k + static_cast<std::size_t>(r)) % cuts.size();  // rotated order
            auto& s = *sessions[i];
            for (int w = 0; w < 3; ++w) s.run(input, 1);
            std::vector<double> ms;
            for (int n = 0; n < runs; ++n) {
                const auto t0 = Clock::now();
                s.run(input, 1);
                ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
            }
            round_medians[i].push_back(percentile(ms, 0.5));
        }
    std::vector<double> cum;
    for (auto& v : round_medians) cum.push_back(percentile(v, 0.5));
    const double total = cum.back();
    std::printf("%s on %s, %d thread(s), %d rounds x %d runs: whole network %.3f ms, %.1f MMACs\n", argv[1],
                engine::backend_name(sessions[0]->backend()), threads, rounds, runs, total, cuts.back().macs / 1e6);
    std::printf("%-14s %10s %9s %7s %9s  %s\n", "block", "cum_ms", "block_ms", "share", "MMACs", "output");
    for (std::size_t i = 0; i < cuts.size(); ++i) {
        const double prev = i ? cum[i - 1] : 0.0;
        const std::int64_t pm = i ? cuts[i - 1].macs : 0;
        std::printf("%-14s %10.3f %9.3f %6.1f%% %9.2f  %s\n", cuts[i].group.c_str(), cum[i], cum[i] - prev,
                    100.0 * (cum[i] - prev) / total, (cuts[i].macs - pm) / 1e6, cuts[i].shape.c_str());
    }
    if (!compare.empty()) {
        if (images.empty()) throw Error("--compare needs --images");
        std::sort(images.begin(), images.end());
        if (images.size() > 32) images.resize(32);
        const auto ref = engine::load_graph(compare);
        std::map<std::string, std::int32_t> ref_end;
        for (const auto& op : ref.ops)
            if (!op.outputs.empty()) ref_end[group_of(ref.tensors[static_cast<std::size_t>(op.outputs[0])].name)] = op.outputs[0];
        const auto pre = preprocessing_of(full.metadata);
        std::vector<cv::Mat> inputs;
        for (const auto& f : images) inputs.push_back(data::preprocess(data::decode_image(f), pre));
        std::printf("\nrelative error of each block's output against %s's, over %zu photos\n", compare.c_str(), inputs.size());
        for (std::size_t i = 0; i < cuts.size(); ++i) {
            auto it = ref_end.find(cuts[i].group);
            if (it == ref_end.end()) continue;
            engine::Session a(cuts[i].engine, {engine::Backend::Reference, 1});
            engine::Session b(engine::Engine::from_graph(engine::cut_after(ref, it->second)), {engine::Backend::Reference, 1});
            double e2 = 0, r2 = 0;
            for (const auto& x : inputs) {
                std::span<const float> in(x.ptr<float>(), x.total() * 3);
                const auto& oa = a.run(in, 1);
                const std::vector<float> va(oa[0], oa[0] + a.output_size(0));
                const auto& ob = b.run(in, 1);
                for (std::size_t k = 0; k < va.size(); ++k) {
                    e2 += (va[k] - ob[0][k]) * double(va[k] - ob[0][k]);
                    r2 += ob[0][k] * double(ob[0][k]);
                }
            }
            std::printf("%-14s %9.4f\n", cuts[i].group.c_str(), std::sqrt(e2 / std::max(r2, 1e-30)));
        }
    }
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "block_profile: %s\n", e.what());
    return 1;
}
