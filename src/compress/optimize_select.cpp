// The torch-free half of `firesight optimize`: the choice among measured variants, the
// fingerprint that decides whether a finished variant may be reused, and the resume files.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <limits>

#include "firesight/common/error.h"
#include "firesight/common/fileio.h"
#include "firesight/compress/optimize.h"

namespace fs = std::filesystem;

namespace firesight::compress {

OptimizeTarget parse_optimize_target(const std::string& s) {
    if (s == "latency") return OptimizeTarget::Latency;
    if (s == "size") return OptimizeTarget::Size;
    throw Error("--target: '" + s + "' is not one of latency, size");
}

const char* optimize_target_name(OptimizeTarget t) { return t == OptimizeTarget::Size ? "size" : "latency"; }

std::string choose_variant(const std::vector<VariantRecord>& v, double max_drop, OptimizeTarget target, double latency_tie) {
    const bool use_val = !v.empty() && std::all_of(v.begin(), v.end(), [](const VariantRecord& r) { return r.val_images > 0; });
    std::vector<const VariantRecord*> ok;
    for (const auto& r : v) {
        const double drop = use_val ? r.val_accuracy_drop : r.result.accuracy_drop;
        // A tiny tolerance: drops are differences of image counts divided by a count, and a drop of
        // exactly the budget must qualify despite rounding.
        if (r.result.name == "fp32" || drop <= max_drop + 1e-9) ok.push_back(&r);
    }
    if (ok.empty()) return {};
    double fastest = std::numeric_limits<double>::infinity();
    for (const auto* r : ok) fastest = std::min(fastest, r->result.latency_ms);
    const VariantRecord* best = nullptr;
    for (const auto* r : ok) {
        const auto& x = r->result;
        if (target == OptimizeTarget::Latency && x.latency_ms > fastest * (1.0 + latency_tie)) continue;
        if (!best) {
            best = r;
            continue;
        }
        const auto& y = best->result;
        // Latency: the tied set, by size, then latency. Size: by size, then latency.
        if (x.size_bytes != y.size_bytes ? x.size_bytes < y.size_bytes : x.latency_ms < y.latency_ms) best = r;
    }
    return best->result.name;
}

void set_drops(std::vector<VariantRecord>& v) {
    const VariantRecord* ref = nullptr;
    for (const auto& r : v)
        if (r.result.name == "fp32") ref = &r;
    if (!ref) throw Error("optimize: no fp32 variant to measure accuracy drops against");
    const double test_acc = ref->result.metrics.accuracy, val_acc = ref->val_accuracy;
    for (auto& r : v) {
        r.result.accuracy_drop = 100.0 * (test_acc - r.result.metrics.accuracy);
        r.val_accuracy_drop = 100.0 * (val_acc - r.val_accuracy);
    }
}

namespace {

// FNV-1a, 64 bits: enough to tell two model files apart; not a security measure.
struct Fnv1a {
    std::uint64_t h = 1469598103934665603ull;
    void add(const void* data, std::size_t n) {
        const auto* p = static_cast<const unsigned char*>(data);
        for (std::size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 1099511628211ull;
    }
};

}  // namespace

std::string optimize_fingerprint(const fs::path& model_pt, const OptimizeOptions& opt) {
    Fnv1a f;
    std::ifstream in(model_pt, std::ios::binary);
    if (!in) throw Error(model_pt.string() + ": cannot be read");
    std::vector<char> buf(1 << 20);
    while (in) {
        in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
        f.add(buf.data(), static_cast<std::size_t>(in.gcount()));
    }
    const nlohmann::json o = {{"sparsities", opt.sparsities},       {"clusters", opt.clusters},
                              {"methods", opt.methods},             {"channel_fraction", opt.channel_fraction}, {"structured_fraction", opt.structured_fraction},
                              {"structured_tail_fraction", opt.structured_tail_fraction}, {"structured_embedding_fraction", opt.structured_embedding_fraction},
                              {"structured_stem_fraction", opt.structured_stem_fraction},
                              {"calibration", opt.calibration},     {"finetune_steps", opt.finetune_steps},
                              {"finetune_batch", opt.finetune_batch}, {"finetune_lr", opt.finetune_lr},
                              {"finetune_from", opt.finetune_from}, {"bench_runs", opt.bench_runs},
                              {"prune_prefix", opt.prune_prefix},
                              {"seed", opt.seed},                   {"format", 1}};
    const auto s = o.dump();
    f.add(s.data(), s.size());
    char hex[17];
    std::snprintf(hex, sizeof hex, "%016llx", static_cast<unsigned long long>(f.h));
    return hex;
}

nlohmann::json record_to_json(const VariantRecord& r) {
    return {{"result", eval::variant_to_json(r.result)},
            {"val_accuracy", r.val_accuracy},
            {"val_accuracy_drop", r.val_accuracy_drop},
            {"val_images", r.val_images}};
}

VariantRecord record_from_json(const nlohmann::json& j) {
    VariantRecord r;
    r.result = eval::variant_from_json(j.at("result"));
    r.val_accuracy = j.at("val_accuracy").get<double>();
    r.val_accuracy_drop = j.value("val_accuracy_drop", 0.0);
    r.val_images = j.at("val_images").get<int>();
    return r;
}

bool load_finished_variant(const fs::path& out, const std::string& name, const std::string& fingerprint, VariantRecord& r) {
    const auto json_path = out / "variants" / (name + ".json");
    const auto engine_path = out / "variants" / (name + ".fse");
    std::error_code ec;
    if (!fs::exists(json_path, ec) || !fs::exists(engine_path, ec)) return false;
    try {
        const auto j = nlohmann::json::parse(read_file_text(json_path));
        if (j.value("fingerprint", std::string()) != fingerprint) return false;
        r = record_from_json(j.at("record"));
        r.result.engine = engine_path;  // the folder may have moved since
        return r.result.name == name;
    } catch (const std::exception&) {
        return false;  // unreadable or from another version: measured again
    }
}

void save_finished_variant(const fs::path& out, const VariantRecord& r, const std::string& fingerprint) {
    fs::create_directories(out / "variants");
    const nlohmann::json j = {{"fingerprint", fingerprint}, {"record", record_to_json(r)}};
    write_file_atomic(out / "variants" / (r.result.name + ".json"), j.dump(2));
}

}  // namespace firesight::compress
