#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "firesight/common/error.h"
#include "firesight/model/mobilenet_v2_layout.h"
#include "firesight/train/train.h"

namespace fs = std::filesystem;

namespace firesight::train {

std::size_t parse_memory_size(const std::string& text) {
    std::size_t used = 0;
    double value = 0;
    try {
        value = std::stod(text, &used);
    } catch (const std::exception&) {
        throw Error("memory size '" + text + "' is not a number like 2G or 512M");
    }
    std::string unit = text.substr(used);
    for (auto& c : unit) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    if (!unit.empty() && unit.back() == 'B') unit.pop_back();
    if (!unit.empty() && unit.back() == 'I') unit.pop_back();  // GiB, MiB
    double mult = 1;
    if (unit == "K") mult = 1024.0;
    else if (unit == "M") mult = 1024.0 * 1024;
    else if (unit == "G") mult = 1024.0 * 1024 * 1024;
    else if (!unit.empty()) throw Error("memory size '" + text + "': unknown unit (use K, M or G)");
    if (value <= 0) throw Error("memory size '" + text + "' must be positive");
    return static_cast<std::size_t>(value * mult);
}

namespace {
std::size_t status_field_bytes(const char* field) {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(field, 0) == 0) {
            std::istringstream ss(line.substr(std::string(field).size()));
            std::size_t kb = 0;
            ss >> kb;
            return kb * 1024;
        }
    }
    return 0;
}
}  // namespace

std::size_t peak_rss_bytes() { return status_field_bytes("VmHWM:"); }
std::size_t current_rss_bytes() { return status_field_bytes("VmRSS:"); }

fs::path find_asset(const std::string& relative) {
    std::vector<fs::path> candidates;
    if (const char* env = std::getenv("FIRESIGHT_ASSETS"); env && *env) candidates.push_back(fs::path(env) / relative);
    candidates.push_back(fs::path("..") / "shared" / "assets" / relative);
    candidates.push_back(fs::path("assets") / relative);
    std::error_code ec;
    for (const auto& c : candidates)
        if (fs::exists(c, ec)) return c;
    return candidates[candidates.size() - 2];
}

std::size_t activation_bytes_per_image(int image_size, int from) {
    // (expansion t, output channels c, repeats n, first stride s), as in MobileNetV2.
    const int settings[7][4] = {{1, 16, 1, 1}, {6, 24, 2, 2}, {6, 32, 3, 2}, {6, 64, 4, 2},
                                {6, 96, 3, 1}, {6, 160, 3, 2}, {6, 320, 1, 1}};
    auto down = [](long r, int s) { return (r + s - 1) / s; };
    long res = down(image_size, 2);
    // Block 0: 3 -> 32 conv, stride 2.
    const long input = 3L * image_size * image_size;
    long stored = 0, prefix_peak = input + 2 * 32 * res * res;
    if (from <= 0) stored += input + 3 * 32 * res * res;
    int in = 32, block = 1;
    for (const auto& st : settings)
        for (int i = 0; i < st[2]; ++i, ++block) {
            const int stride = i == 0 ? st[3] : 1;
            const long hidden = static_cast<long>(in) * st[0];
            const long r_out = down(res, stride);
            const long in_el = in * res * res, hid_in = hidden * res * res, hid_out = hidden * r_out * r_out;
            const long out_el = static_cast<long>(st[1]) * r_out * r_out;
            // Kept for backward: block input, expand conv output and its ReLU6, a padded copy when
            // strided, depthwise output and its ReLU6, projection output (and the residual sum).
            const long kept = in_el + (st[0] != 1 ? 2 * hid_in : 0) + (stride == 2 ? hid_in : 0) + 2 * hid_out + 2 * out_el;
            const long transient = in_el + 2 * hid_in + 2 * hid_out + out_el;
            if (block >= from) stored += kept;
            else prefix_peak = std::max(prefix_peak, transient);
            in = st[1];
            res = r_out;
        }
    const long last = 1280L * res * res;
    stored += 3 * last + 1280;  // features.18 conv output, ReLU6, pooled embedding
    // Gradients of the kept values exist during backward at about the same size (x2); the network
    // input batch is held as a float tensor beside its OpenCV source (x2).
    // x1.5: libtorch's temporaries and allocator slack beyond these shapes. Measured on fire-cair
    // with --finetune-blocks all at 224: about 190 MB per image against 133 MB from shapes alone.
    return static_cast<std::size_t>(6 * (2 * stored + prefix_peak + 2 * input));
}

BatchPlan plan_batches(std::size_t budget, std::size_t fixed, int image_size, int from, int requested, int target) {
    BatchPlan p;
    p.per_image_bytes = activation_bytes_per_image(image_size, from);
    p.fixed_bytes = fixed;
    if (budget <= fixed + p.per_image_bytes) {
        std::ostringstream msg;
        msg << "memory budget " << (budget >> 20) << " MiB is too small: the process, weights and image cache need about "
            << (fixed >> 20) << " MiB and one training image about " << ((p.per_image_bytes >> 20) + 1)
            << " MiB more (raise --memory-budget, lower --image-size or --finetune-blocks)";
        throw Error(msg.str());
    }
    const auto fits = static_cast<int>(std::min<std::size_t>((budget - fixed) / p.per_image_bytes, 4096));
    if (requested > 0) {
        p.batch_size = requested;
        p.accumulation = 1;
    } else {
        target = std::max(1, target);
        p.batch_size = std::clamp(fits, 1, target);
        p.accumulation = (target + p.batch_size - 1) / p.batch_size;
    }
    p.estimated_peak_bytes = fixed + p.per_image_bytes * static_cast<std::size_t>(p.batch_size);
    return p;
}

int finetune_start_block(int finetune_blocks, int finetune_epochs) {
    constexpr int kBlocks = model::kFeatureBlocks;
    if (finetune_epochs <= 0 || finetune_blocks == 0) return kBlocks;
    if (finetune_blocks < 0 || finetune_blocks >= 17) return 0;
    return kBlocks - 1 - finetune_blocks;  // the final 1x1 conv (features.18) is always trained
}

}  // namespace firesight::train
