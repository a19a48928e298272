// compress_bench: applies each compression of src/compress to the pretrained ImageNet MobileNetV2
// (no fine-tuning) and prints a variant table: weight storage, top-1 agreement with fp32 on real
// photos, and the time each step took. The figures the `optimize` search starts from.
//
// usage: compress_bench [ASSETS_DIR] [--calibration N] [--eval N] [--ranges]   (--ranges: per-tensor table)
#include <chrono>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <string>

#include "firesight/compress/compress_torch.h"
#include "firesight/common/error.h"
#include "firesight/compress/prune.h"

using namespace firesight;
using namespace firesight::compress;
using Clock = std::chrono::steady_clock;

namespace {

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

struct Row {
    std::string variant;
    double weight_mb;
    double agreement;
    double step_s;
};

torch::Tensor images_to_batch(const CalibrationSet& set, std::size_t begin, std::size_t count) {
    const auto s = static_cast<std::int64_t>(set.image_size());
    auto batch = torch::empty({static_cast<std::int64_t>(count), 3, s, s});
    for (std::size_t i = 0; i < count; ++i) {
        const auto img = set.image(begin + i);
        std::memcpy(batch.data_ptr<float>() + i * img.size(), img.data(), img.size() * sizeof(float));
    }
    return batch;
}

torch::Tensor top1(model::MobileNetV2& net, const torch::Tensor& x) {
    torch::NoGradGuard g;
    net->eval();
    std::vector<torch::Tensor> out;
    for (std::int64_t b = 0; b < x.size(0); b += 16) out.push_back(net->forward(x.slice(0, b, std::min(b + 16, x.size(0)))).argmax(1));
    return torch::cat(out);
}

double agreement(const torch::Tensor& a, const torch::Tensor& b) { return 100.0 * (a == b).sum().item<double>() / static_cast<double>(a.numel()); }

// MobileNetV2Impl is not a torch::nn::Cloneable; removing no channels is an exact deep copy.
model::MobileNetV2 clone_net(model::MobileNetV2& net) {
    ChannelPruneOptions none;
    none.fraction = 0.0;
    none.min_channels = 1;
    return prune_hidden_channels(net, none);
}

std::vector<std::string> all_weights(torch::nn::Module& net) {
    PruneScope all;
    all.spatial_convs = true;
    return prunable_weights(net, all);
}

}  // namespace

int main(int argc, char** argv) try {
    std::filesystem::path assets = "../shared/assets";
    std::size_t n_cal = 32, n_eval = 64;
    bool print_ranges = false;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--calibration" && i + 1 < argc) n_cal = std::stoul(argv[++i]);
        else if (a == "--eval" && i + 1 < argc) n_eval = std::stoul(argv[++i]);
        else if (a == "--ranges") print_ranges = true;
        else assets = a;
    }
    torch::set_num_threads(2);
    auto imported = model::import_mobilenet_v2(assets / "mobilenet_v2" / "mobilenet_v2_1.0_224_quant.tflite");
    auto& net = imported.net;

    CalibrationSetOptions copt;
    copt.count = n_cal + n_eval;
    copt.preprocess.mean = imported.input.mean;
    copt.preprocess.scale = imported.input.scale;
    CalibrationSet images(list_image_files(assets / "fire-cair"), copt);
    if (images.size() <= n_cal) throw Error("compress_bench: not enough decodable images for calibration and evaluation");
    n_eval = images.size() - n_cal;
    const auto eval_x = images_to_batch(images, n_cal, n_eval);
    const auto reference = top1(net, eval_x);
    const double fp32_mb = static_cast<double>(count_parameters(*net)) * 4 / 1e6;

    std::vector<Row> rows;
    rows.push_back({"fp32", fp32_mb, 100.0, 0.0});

    for (double s : {0.5, 0.75}) {
        auto t = Clock::now();
        auto m = clone_net(net);
        PruningState p(*m, prunable_weights(*m), SparsityGranularity::PerLayer);
        p.prune_to(s);
        const double secs = seconds_since(t);
        // Sparse storage: a float and a 16-bit column index per kept weight in the pruned layers.
        std::int64_t pruned_total = 0, zero = 0;
        for (const auto& [name, mask] : p.masks()) {
            pruned_total += mask.numel();
            zero += (mask == 0).sum().item<std::int64_t>();
        }
        const double mb = fp32_mb - static_cast<double>(pruned_total) * 4 / 1e6 + static_cast<double>(pruned_total - zero) * 6 / 1e6;
        rows.push_back({"magnitude prune " + std::to_string(static_cast<int>(s * 100)) + "% (1x1 + fc)", mb, agreement(reference, top1(m, eval_x)), secs});
    }

    {
        auto t = Clock::now();
        auto m = clone_net(net);
        ChannelPruneOptions o;
        o.fraction = 0.25;
        o.round_to = 8;
        auto smaller = prune_hidden_channels(m, o);
        const double secs = seconds_since(t);
        rows.push_back({"channel prune 25% hidden", static_cast<double>(count_parameters(*smaller)) * 4 / 1e6,
                        agreement(reference, top1(smaller, eval_x)), secs});
    }

    for (int k : {16, 64, 256}) {
        auto t = Clock::now();
        auto m = clone_net(net);
        KMeansOptions o;
        o.k = k;
        o.init = CentroidInit::Linear;
        double bytes = static_cast<double>(count_parameters(*m)) * 4;
        for (const auto& name : all_weights(*m)) {
            ClusteredLayer layer(name, m->named_parameters()[name], o);
            const auto pal = make_palette(layer.clustering());
            bytes -= static_cast<double>(pal.count) * 4;
            bytes += static_cast<double>(pal.packed.size() + pal.centroids.size() * 4);
        }
        const double secs = seconds_since(t);
        rows.push_back({"cluster k=" + std::to_string(k) + " (all weights, linear init)", bytes / 1e6, agreement(reference, top1(m, eval_x)), secs});
    }

    {
        auto t = Clock::now();
        const auto cal_x = images_to_batch(images, 0, n_cal);
        ActivationObserver obs;
        for (std::int64_t b = 0; b < cal_x.size(0); b += 8) obs.observe(net, cal_x.slice(0, b, std::min<std::int64_t>(b + 8, cal_x.size(0))));
        const double collect_s = seconds_since(t);
        // int8 weights + an fp32 scale per output channel; biases stay 32-bit.
        double bytes = 0;
        for (const auto& p : net->named_parameters())
            bytes += p.value().dim() >= 2 ? static_cast<double>(p.value().numel() + p.value().size(0) * 4) : static_cast<double>(p.value().numel()) * 4;
        if (print_ranges) {
            const auto mm = obs.ranges({CalibrationMethod::MinMax});
            const auto pc = obs.ranges({CalibrationMethod::Percentile, 99.99});
            const auto en = obs.ranges({CalibrationMethod::Entropy});
            const auto chosen = choose_calibrations(obs.histograms());
            std::printf("%-24s %21s %21s %21s  %s\n", "tensor", "minmax", "percentile 99.99", "entropy", "chosen");
            for (const auto& [name, r] : mm)
                std::printf("%-24s [%8.3f, %8.3f] [%8.3f, %8.3f] [%8.3f, %8.3f]  %s\n", name.c_str(), r.min, r.max, pc.at(name).min,
                            pc.at(name).max, en.at(name).min, en.at(name).max, calibration_method_name(chosen.at(name).method));
        }
        for (auto method : {CalibrationMethod::MinMax, CalibrationMethod::Percentile, CalibrationMethod::Entropy}) {
            auto t2 = Clock::now();
            const auto ranges = obs.ranges({method, 99.99});
            const double range_s = seconds_since(t2);
            torch::NoGradGuard g;
            std::vector<torch::Tensor> out;
            for (std::int64_t b = 0; b < eval_x.size(0); b += 16)
                out.push_back(simulate_int8_forward(net, eval_x.slice(0, b, std::min<std::int64_t>(b + 16, eval_x.size(0))), ranges).argmax(1));
            rows.push_back({std::string("int8 simulated, ") + calibration_method_name(method), bytes / 1e6,
                            agreement(reference, torch::cat(out)), collect_s + range_s});
        }
        auto t3 = Clock::now();
        std::map<std::string, ActivationRange> chosen;
        for (const auto& [name, c] : obs.chosen_ranges()) chosen[name] = c.range;
        const double choose_s = seconds_since(t3);
        torch::NoGradGuard g;
        std::vector<torch::Tensor> out;
        for (std::int64_t b = 0; b < eval_x.size(0); b += 16)
            out.push_back(simulate_int8_forward(net, eval_x.slice(0, b, std::min<std::int64_t>(b + 16, eval_x.size(0))), chosen).argmax(1));
        rows.push_back({"int8 simulated, method chosen per tensor", bytes / 1e6, agreement(reference, torch::cat(out)), collect_s + choose_s});
    }

    std::printf("\nMobileNetV2 1.0 (ImageNet, %s), no fine-tuning; agreement = top-1 equal to fp32 on %zu fire-cair photos;\n"
                "%zu calibration photos; 2 threads\n\n", "mobilenet_v2_1.0_224_quant.tflite", static_cast<std::size_t>(n_eval), n_cal);
    std::printf("| %-44s | %10s | %9s | %9s |\n", "variant", "weights MB", "agree %", "step s");
    std::printf("|%s|%s|%s|%s|\n", std::string(46, '-').c_str(), std::string(12, '-').c_str(), std::string(11, '-').c_str(), std::string(11, '-').c_str());
    for (const auto& r : rows) std::printf("| %-44s | %10.2f | %9.1f | %9.2f |\n", r.variant.c_str(), r.weight_mb, r.agreement, r.step_s);
    return 0;
} catch (const std::exception& e) {
    std::cerr << "compress_bench: " << e.what() << "\n";
    return 1;
}
