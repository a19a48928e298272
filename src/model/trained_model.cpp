// model.pt is a libtorch archive: the network's parameters by name (features.N..., classifier)
// plus one string entry holding JSON metadata (classes, preprocessing, block and embedding widths), so a
// pruned or retrained network can be rebuilt with the right shapes before its weights load.
#include "firesight/model/trained_model.h"

#include <sstream>

#include <nlohmann/json.hpp>

#include "firesight/common/error.h"
#include "firesight/common/fileio.h"

namespace fs = std::filesystem;

namespace firesight::model {

namespace {

constexpr const char* kMetaKey = "firesight_meta";
constexpr const char* kFormat = "firesight-trained-model";

std::vector<int> hidden_widths(const MobileNetV2& net) {
    std::vector<int> widths;
    const auto params = net->named_parameters();
    for (int b = 1; b <= MobileNetV2Impl::kFeatureBlocks - 2; ++b) {
        const auto* w = params.find("features." + std::to_string(b) + ".depthwise.conv.weight");
        if (!w) throw Error("save_trained_model: network has no features." + std::to_string(b) + ".depthwise");
        widths.push_back(static_cast<int>(w->size(0)));
    }
    return widths;
}

// Archive keys become attribute names of a TorchScript module, which must not contain dots.
std::string archive_key(const std::string& name) {
    std::string k;
    for (char c : name) k += c == '.' ? std::string("__") : std::string(1, c);
    return k;
}

}  // namespace

void save_trained_model(const TrainedModel& m, const fs::path& model_pt) {
    if (!m.net) throw Error("save_trained_model: no network");
    if (static_cast<int>(m.class_names.size()) != m.net->num_classes())
        throw Error("save_trained_model: " + std::to_string(m.class_names.size()) + " class names for a network with " +
                    std::to_string(m.net->num_classes()) + " outputs");
    nlohmann::json meta;
    meta["format"] = kFormat;
    meta["version"] = 1;
    meta["classes"] = m.class_names;
    meta["preprocess"] = {{"size", m.preprocess.size}, {"resize_shorter", m.preprocess.resize_shorter},
                          {"mean", m.preprocess.mean}, {"scale", m.preprocess.scale}};
    meta["hidden_channels"] = hidden_widths(m.net);
    meta["embedding_channels"] = m.net->embedding_channels();
    try {
        meta["info"] = nlohmann::json::parse(m.info_json);
    } catch (const nlohmann::json::exception&) {
        meta["info"] = m.info_json;
    }
    torch::serialize::OutputArchive archive;
    archive.write(kMetaKey, c10::IValue(meta.dump()));
    {
        torch::NoGradGuard no_grad;
        for (const auto& p : m.net->named_parameters()) archive.write(archive_key(p.key()), p.value().detach().clone(), false);
    }
    std::ostringstream os;
    archive.save_to(os);
    write_file_atomic(model_pt, os.str());
}

TrainedModel load_trained_model(const fs::path& path) {
    std::error_code ec;
    const fs::path file = fs::is_directory(path, ec) ? path / "model.pt" : path;
    if (!fs::exists(file, ec)) throw Error(file.string() + ": no such file (expected a run folder or model.pt from `firesight train`)");
    torch::serialize::InputArchive archive;
    try {
        archive.load_from(file.string());
    } catch (const c10::Error& e) {
        throw Error(file.string() + ": not a firesight model.pt (cannot read the archive)");
    }
    c10::IValue meta_value;
    if (!archive.try_read(kMetaKey, meta_value) || !meta_value.isString())
        throw Error(file.string() + ": no firesight metadata (not written by `firesight train`)");
    TrainedModel m;
    MobileNetV2Options opt;
    try {
        const auto meta = nlohmann::json::parse(meta_value.toStringRef());
        if (meta.at("format").get<std::string>() != kFormat) throw Error(file.string() + ": unknown format");
        if (meta.at("version").get<int>() != 1)
            throw Error(file.string() + ": model format version " + meta["version"].dump() + " is not supported (expected 1)");
        m.class_names = meta.at("classes").get<std::vector<std::string>>();
        const auto& p = meta.at("preprocess");
        m.preprocess.size = p.at("size").get<int>();
        m.preprocess.resize_shorter = p.at("resize_shorter").get<int>();
        m.preprocess.mean = p.at("mean").get<float>();
        m.preprocess.scale = p.at("scale").get<float>();
        opt.hidden_channels = meta.at("hidden_channels").get<std::vector<int>>();
        // Written since the tail's embedding could be pruned; older files have the full width.
        opt.embedding_channels = meta.value("embedding_channels", 0);
        m.info_json = meta.contains("info") ? meta["info"].dump() : "{}";
    } catch (const nlohmann::json::exception& e) {
        throw Error(file.string() + ": bad metadata: " + e.what());
    }
    if (m.class_names.empty()) throw Error(file.string() + ": metadata lists no classes");
    if (m.preprocess.size < 16 || m.preprocess.resize_shorter < m.preprocess.size)
        throw Error(file.string() + ": metadata: preprocess size " + std::to_string(m.preprocess.size) + " is invalid");
    opt.num_classes = static_cast<int>(m.class_names.size());
    m.net = MobileNetV2(opt);
    torch::NoGradGuard no_grad;
    for (auto& p : m.net->named_parameters()) {
        torch::Tensor t;
        if (!archive.try_read(archive_key(p.key()), t)) throw Error(file.string() + ": missing weight " + p.key());
        if (t.sizes() != p.value().sizes())
            throw Error(file.string() + ": weight " + p.key() + " has shape " + c10::str(t.sizes()) + ", expected " +
                        c10::str(p.value().sizes()));
        p.value().copy_(t);
    }
    m.net->eval();
    return m;
}

}  // namespace firesight::model
