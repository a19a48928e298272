// The .fse engine file: writer and a loader that checks every length, offset and checksum before
// it follows it (docs/engine-format.md describes the layout byte by byte).
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>
#include <nlohmann/json.hpp>

#include "firesight/engine/ir.h"
#include "firesight/builder/quantize.h"
#include "firesight/engine/format.h"
#include "firesight/common/error.h"
#include "firesight/common/fileio.h"
#include "firesight/engine/weight_codec.h"

namespace firesight::engine {

static_assert(std::endian::native == std::endian::little, "the engine file is little-endian; add byte swapping");

namespace {

constexpr char kMagic[8] = {'F', 'S', 'E', 'N', 'G', 'I', 'N', 'E'};
// Version 2 adds an encoding per constant (dense, palette, sparse, sparse + palette); version 3
// stores a per-channel scale or zero-point array whose entries are all equal as one value (int8
// engines repeat the same zero point, and clustered layers the same scale, thousands of times)
// and leaves out int8 bias scales, which follow from the layer. Versions 1 (all dense f32) and 2
// are still read.
constexpr std::uint32_t kVersion = 3;
constexpr std::uint32_t kOldestVersion = 1;
constexpr std::size_t kHeaderSize = 64;
constexpr std::size_t kSectionEntrySize = 32;
constexpr std::size_t kAlign = 64;
enum SectionKind : std::uint32_t { kGraph = 1, kWeights = 2, kMetadata = 3 };
constexpr std::uint32_t kSectionCount = 3;
// tensor.flags bits
constexpr std::uint8_t kFlagConstant = 1;
constexpr std::uint8_t kFlagUniformScale = 2;      // version 3: one scale stands for all quant_count
constexpr std::uint8_t kFlagUniformZeroPoint = 4;  // version 3: one zero point likewise
constexpr std::uint8_t kFlagDerivedScale = 8;      // version 3: an int8 layer's bias; scales not stored

bool has_bias(const Op& op) {
    return (op.kind == OpKind::Conv2D || op.kind == OpKind::DepthwiseConv2D || op.kind == OpKind::FullyConnected) &&
           op.inputs.size() > 2 && op.inputs[2] >= 0;
}

// The scales an int8 layer's i32 bias must have: input scale x filter scale, per filter scale.
// Empty when the op's tensors do not make that product (a float layer, a malformed graph).
std::vector<float> derived_bias_scales(const std::vector<Tensor>& tensors, const Op& op) {
    const auto n = static_cast<std::int32_t>(tensors.size());
    if (!has_bias(op) || op.inputs[0] < 0 || op.inputs[0] >= n || op.inputs[1] < 0 || op.inputs[1] >= n) return {};
    const auto& x = tensors[static_cast<std::size_t>(op.inputs[0])].quant.scale;
    const auto& w = tensors[static_cast<std::size_t>(op.inputs[1])].quant.scale;
    if (x.size() != 1 || w.empty()) return {};
    std::vector<float> out;
    for (float s : w) out.push_back(x[0] * s);  // exactly how quantize_int8 computes them
    return out;
}

// More than one entry, every one bitwise equal to the first.
template <typename T>
bool uniform(const std::vector<T>& v) {
    if (v.size() < 2) return false;
    for (const auto& x : v)
        if (std::memcmp(&x, &v[0], sizeof(T)) != 0) return false;
    return true;
}

std::size_t align_up(std::size_t v) { return (v + kAlign - 1) / kAlign * kAlign; }

class Writer {
public:
    std::string bytes;
    template <class T>
    void put(T v) {
        char b[sizeof(T)];
        std::memcpy(b, &v, sizeof(T));
        bytes.append(b, sizeof(T));
    }
    void put_str(const std::string& s) {
        put<std::uint32_t>(static_cast<std::uint32_t>(s.size()));
        bytes += s;
    }
    void put_ints(const std::vector<std::int32_t>& v) {
        put<std::uint32_t>(static_cast<std::uint32_t>(v.size()));
        for (auto x : v) put<std::int32_t>(x);
    }
};

// Bounds-checked little-endian reader over one section; every failure names the field.
class Reader {
public:
    Reader(const std::uint8_t* p, std::size_t n, std::string where) : p_(p), n_(n), where_(std::move(where)) {}
    template <class T>
    T get(const char* field) {
        need(sizeof(T), field);
        T v;
        std::memcpy(&v, p_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }
    // A count of items that each take at least `min_item_bytes`, so a huge count is refused
    // before anything is allocated for it.
    std::uint32_t count(const char* field, std::size_t min_item_bytes, std::uint32_t max) {
        const auto c = get<std::uint32_t>(field);
        if (c > max || static_cast<std::uint64_t>(c) * min_item_bytes > remaining())
            fail(std::string(field) + " = " + std::to_string(c) + " is larger than the data that follows");
        return c;
    }
    std::string get_str(const char* field) {
        const auto len = count(field, 1, 1u << 20);
        std::string s(reinterpret_cast<const char*>(p_ + pos_), len);
        pos_ += len;
        return s;
    }
    std::vector<std::int32_t> get_ints(const char* field, std::uint32_t max) {
        const auto c = count(field, 4, max);
        std::vector<std::int32_t> v(c);
        for (auto& x : v) x = get<std::int32_t>(field);
        return v;
    }
    std::size_t remaining() const { return n_ - pos_; }
    std::size_t pos() const { return pos_; }
    [[noreturn]] void fail(const std::string& msg) const {
        throw Error(where_ + " at byte " + std::to_string(pos_) + ": " + msg);
    }

private:
    void need(std::size_t k, const char* field) {
        if (k > remaining()) fail(std::string("truncated while reading ") + field);
    }
    const std::uint8_t* p_;
    std::size_t n_;
    std::size_t pos_ = 0;
    std::string where_;
};

std::string metadata_json(const Metadata& m) {
    nlohmann::json build = nlohmann::json::parse(m.build_json, nullptr, false);
    if (build.is_discarded()) build = nlohmann::json::object();
    nlohmann::json j = {{"class_names", m.class_names},
                        {"preprocess", {{"size", m.size}, {"resize_shorter", m.resize_shorter}, {"mean", m.mean}, {"scale", m.scale}}},
                        {"build", build}};
    return j.dump();
}

// preprocess.size and resize_shorter: JSON integers, read without a float-to-int conversion
// (out of range it would be undefined behaviour, and 2.5 would silently become 2).
int preprocess_int(const nlohmann::json& pre, const char* key, const std::string& where) {
    const auto& v = pre.at(key);
    if (!v.is_number_integer() || v.get<std::int64_t>() < 0 || v.get<std::int64_t>() > 1'000'000)
        throw Error(where + ": preprocess." + key + " " + v.dump() + " is not an integer from 0 to 1000000");
    return static_cast<int>(v.get<std::int64_t>());
}

// preprocess.mean and scale: finite numbers. The writer stores NaN and infinity as null.
float preprocess_float(const nlohmann::json& pre, const char* key, const std::string& where) {
    const auto& v = pre.at(key);
    const double d = v.is_number() ? v.get<double>() : NAN;
    if (!std::isfinite(d) || std::abs(d) > std::numeric_limits<float>::max())  // checked before the cast, which would be UB
        throw Error(where + ": preprocess." + key + " " + v.dump() + " is not a finite number");
    return static_cast<float>(d);
}

Metadata parse_metadata(const std::uint8_t* p, std::size_t n, const std::string& name) {
    const std::string where = name + ": metadata section";
    const auto j = nlohmann::json::parse(p, p + n, nullptr, false);
    if (j.is_discarded() || !j.is_object()) throw Error(where + ": not valid JSON");
    Metadata m;
    try {
        for (const auto& c : j.at("class_names")) m.class_names.push_back(c.get<std::string>());
        const auto& pre = j.at("preprocess");
        m.size = preprocess_int(pre, "size", where);
        m.resize_shorter = preprocess_int(pre, "resize_shorter", where);
        m.mean = preprocess_float(pre, "mean", where);
        m.scale = preprocess_float(pre, "scale", where);
        m.build_json = j.contains("build") ? j.at("build").dump() : "{}";
    } catch (const nlohmann::json::exception& e) {
        throw Error(where + ": " + e.what());
    }
    if (m.size < 1 || m.size > 8192) throw Error(where + ": preprocess.size " + std::to_string(m.size) + " is out of range (1 to 8192)");
    if (m.resize_shorter < m.size || m.resize_shorter > 16384)
        throw Error(where + ": preprocess.resize_shorter " + std::to_string(m.resize_shorter) + " must be at least preprocess.size " +
                    std::to_string(m.size) + " (and at most 16384)");
    if (m.scale == 0.f) throw Error(where + ": preprocess.scale is 0 (every pixel would become 0)");
    return m;
}

std::string shape_str(const std::vector<std::int32_t>& s) {
    std::string r;
    for (std::size_t i = 0; i < s.size(); ++i) r += (i ? "x" : "") + std::to_string(s[i]);
    return r.empty() ? "a scalar" : r;
}

std::int64_t per_item(const std::vector<std::int32_t>& s) {
    std::int64_t n = 1;
    for (std::size_t i = 1; i < s.size(); ++i) n *= s[i];
    return n;
}

// The metadata must describe the graph it ships with: predict and firesight-run size the input
// buffer from preprocess.size and name classes from class_names, so a file where they disagree
// with the graph would have the kernels read past the input or the names index past the output.
void check_metadata_against_graph(const Graph& g, const std::string& name) {
    const std::string where = name + ": metadata disagrees with the graph: ";
    const auto& m = g.metadata;
    if (g.inputs.size() != 1)
        throw Error(where + "the graph has " + std::to_string(g.inputs.size()) + " inputs, an engine takes exactly one (the image)");
    const auto& in = g.tensors[static_cast<std::size_t>(g.inputs[0])];
    const std::vector<std::int32_t> want = {1, m.size, m.size, 3};
    if (in.dtype != DType::F32 || in.shape != want)
        throw Error(where + "input '" + in.name + "' is " + dtype_name(in.dtype) + " " + shape_str(in.shape) + " but preprocess.size " +
                    std::to_string(m.size) + " needs f32 " + shape_str(want) + " (NHWC, RGB)");
    const auto& out = g.tensors[static_cast<std::size_t>(g.outputs[0])];
    if (out.dtype != DType::F32) throw Error(where + "output 0 '" + out.name + "' is " + dtype_name(out.dtype) + ", not f32 probabilities");
    const auto classes = per_item(out.shape);
    // No names is allowed (predict then prints class indices); a list must name every class.
    if (!m.class_names.empty() && static_cast<std::int64_t>(m.class_names.size()) != classes)
        throw Error(where + "class_names has " + std::to_string(m.class_names.size()) + " names but output 0 '" + out.name + "' (" +
                    shape_str(out.shape) + ") has " + std::to_string(classes) + " classes");
    if (g.outputs.size() > 1) {
        const auto& logits = g.tensors[static_cast<std::size_t>(g.outputs[1])];
        if (logits.dtype != DType::F32 || per_item(logits.shape) != classes)
            throw Error(where + "output 1 '" + logits.name + "' (the logits) is " + dtype_name(logits.dtype) + " " + shape_str(logits.shape) +
                        ", not f32 with the " + std::to_string(classes) + " classes of output 0");
    }
}

}  // namespace

std::uint32_t crc32(const void* data, std::size_t size) {
    // Slicing-by-8: eight bytes per step through eight derived tables, because the bytewise loop
    // was most of an engine's load time (docs/architecture.md, "Constants chosen by measurement").
    using Tables = std::array<std::array<std::uint32_t, 256>, 8>;
    static const Tables t = [] {
        Tables tb{};
        for (std::uint32_t i = 0; i < 256; ++i) {
            std::uint32_t c = i;
            for (int k = 0; k < 8; ++k) c = (c & 1) ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            tb[0][i] = c;
        }
        for (std::size_t k = 1; k < 8; ++k)
            for (std::size_t i = 0; i < 256; ++i) tb[k][i] = (tb[k - 1][i] >> 8) ^ tb[0][tb[k - 1][i] & 0xFF];
        return tb;
    }();
    std::uint32_t c = 0xFFFFFFFFu;
    const auto* p = static_cast<const std::uint8_t*>(data);
    while (size >= 8) {
        std::uint32_t one, two;
        std::memcpy(&one, p, 4);
        std::memcpy(&two, p + 4, 4);
        one ^= c;
        c = t[7][one & 0xFF] ^ t[6][(one >> 8) & 0xFF] ^ t[5][(one >> 16) & 0xFF] ^ t[4][one >> 24] ^ t[3][two & 0xFF] ^
            t[2][(two >> 8) & 0xFF] ^ t[1][(two >> 16) & 0xFF] ^ t[0][two >> 24];
        p += 8;
        size -= 8;
    }
    while (size--) c = t[0][(c ^ *p++) & 0xFF] ^ (c >> 8);
    return c ^ 0xFFFFFFFFu;
}

namespace {

// The weights section: each constant in its smallest encoding (weight_codec.h), 64-byte aligned;
// dense ones stay usable in place when the file is mapped.
struct PackedWeights {
    std::string bytes;
    std::vector<std::pair<std::uint64_t, std::uint64_t>> where;  // offset, size per tensor
    std::vector<WeightEncoding> encoding;
};

PackedWeights pack_weights(const Graph& g) {
    PackedWeights p;
    p.where.resize(g.tensors.size());
    p.encoding.assign(g.tensors.size(), WeightEncoding::Dense);
    for (std::size_t i = 0; i < g.tensors.size(); ++i) {
        const auto& t = g.tensors[i];
        if (!t.constant) continue;
        p.bytes.resize(align_up(p.bytes.size()), '\0');
        const auto enc = encode_weights(t.bytes(), static_cast<std::size_t>(t.element_count()), dtype_size(t.dtype));
        p.encoding[i] = enc.encoding;
        p.where[i] = {p.bytes.size(), enc.bytes.size()};
        p.bytes.append(reinterpret_cast<const char*>(enc.bytes.data()), enc.bytes.size());
    }
    return p;
}

// An i32 bias whose scales are bitwise its layer's input scale x filter scales (every bias
// quantize_int8 makes) is marked, and its scales are recomputed at load instead of stored.
std::vector<bool> derived_bias_tensors(const Graph& g) {
    std::vector<bool> derived(g.tensors.size(), false);
    std::vector<int> uses(g.tensors.size(), 0);
    for (const auto& op : g.ops)
        for (auto k : op.inputs)
            if (k >= 0) ++uses[static_cast<std::size_t>(k)];
    for (const auto& op : g.ops) {
        if (!has_bias(op)) continue;
        const auto b = static_cast<std::size_t>(op.inputs[2]);
        const auto& bt = g.tensors[b];
        const auto want = derived_bias_scales(g.tensors, op);
        derived[b] = bt.dtype == DType::I32 && uses[b] == 1 && !want.empty() && want.size() == bt.quant.scale.size() &&
                     std::memcmp(want.data(), bt.quant.scale.data(), want.size() * sizeof(float)) == 0;
    }
    return derived;
}

void write_tensor(Writer& w, const Tensor& t, bool derived, std::pair<std::uint64_t, std::uint64_t> where, WeightEncoding encoding) {
    w.put_str(t.name);
    w.put<std::uint8_t>(static_cast<std::uint8_t>(t.dtype));
    const bool one_scale = !derived && uniform(t.quant.scale), one_zero = uniform(t.quant.zero_point);
    w.put<std::uint8_t>(static_cast<std::uint8_t>((t.constant ? kFlagConstant : 0) | (one_scale ? kFlagUniformScale : 0) |
                                                  (one_zero ? kFlagUniformZeroPoint : 0) | (derived ? kFlagDerivedScale : 0)));
    w.put<std::uint8_t>(static_cast<std::uint8_t>(t.shape.size()));
    w.put<std::uint8_t>(0);
    for (auto d : t.shape) w.put<std::int32_t>(d);
    if (t.quant.zero_point.size() != t.quant.scale.size())
        throw Error("tensor '" + t.name + "' has " + std::to_string(t.quant.scale.size()) + " scales and " +
                    std::to_string(t.quant.zero_point.size()) + " zero points");
    w.put<std::uint32_t>(static_cast<std::uint32_t>(t.quant.scale.size()));
    if (one_scale)
        w.put<float>(t.quant.scale[0]);
    else if (!derived)
        for (auto s : t.quant.scale) w.put<float>(s);
    if (one_zero)
        w.put<std::int32_t>(t.quant.zero_point[0]);
    else
        for (auto z : t.quant.zero_point) w.put<std::int32_t>(z);
    w.put<std::int32_t>(t.quant.axis);
    if (t.constant) {
        w.put<std::uint64_t>(where.first);
        w.put<std::uint64_t>(where.second);
        w.put<std::uint8_t>(static_cast<std::uint8_t>(encoding));
        for (int k = 0; k < 3; ++k) w.put<std::uint8_t>(0);
    }
}

void write_op(Writer& w, const Op& op) {
    w.put<std::uint16_t>(static_cast<std::uint16_t>(op.kind));
    w.put<std::uint8_t>(static_cast<std::uint8_t>(op.activation));
    w.put<std::uint8_t>(0);
    w.put_ints(op.inputs);
    w.put_ints(op.outputs);
    for (auto v : {op.stride_h, op.stride_w, op.dilation_h, op.dilation_w, op.pad_top, op.pad_left, op.pad_bottom, op.pad_right,
                   op.groups, op.depth_multiplier, op.keep_dims})
        w.put<std::int32_t>(v);
    w.put<float>(op.beta);
    w.put<float>(op.epsilon);
    w.put_ints(op.new_shape);
}

// Header, section table (with each section's checksum), then the sections at aligned offsets.
std::string assemble_file(const std::array<std::pair<std::uint32_t, const std::string*>, kSectionCount>& sections) {
    Writer table;
    std::size_t offset = align_up(kHeaderSize + kSectionCount * kSectionEntrySize);
    std::vector<std::size_t> offsets;
    for (const auto& [kind, data] : sections) {
        offsets.push_back(offset);
        table.put<std::uint32_t>(kind);
        table.put<std::uint32_t>(0);
        table.put<std::uint64_t>(offset);
        table.put<std::uint64_t>(data->size());
        table.put<std::uint32_t>(crc32(data->data(), data->size()));
        table.put<std::uint32_t>(0);
        offset = align_up(offset + data->size());
    }
    const std::size_t file_size = offsets.back() + sections.back().second->size();
    Writer head;
    head.bytes.append(kMagic, 8);
    head.put<std::uint32_t>(kVersion);
    head.put<std::uint32_t>(kSectionCount);
    head.put<std::uint64_t>(file_size);
    const std::string covered = head.bytes + table.bytes;
    head.put<std::uint32_t>(crc32(covered.data(), covered.size()));
    head.bytes.resize(kHeaderSize, '\0');

    std::string out = head.bytes + table.bytes;
    for (std::size_t i = 0; i < sections.size(); ++i) {
        out.resize(offsets[i], '\0');
        out += *sections[i].second;
    }
    return out;
}

}  // namespace

std::string serialize(const Graph& g) {
    validate(g);
    // Weights first, so the graph section can record where each constant lies.
    const PackedWeights weights = pack_weights(g);
    const std::vector<bool> derived = derived_bias_tensors(g);
    Writer w;
    w.put<std::uint32_t>(static_cast<std::uint32_t>(g.tensors.size()));
    for (std::size_t i = 0; i < g.tensors.size(); ++i) write_tensor(w, g.tensors[i], derived[i], weights.where[i], weights.encoding[i]);
    w.put<std::uint32_t>(static_cast<std::uint32_t>(g.ops.size()));
    for (const auto& op : g.ops) write_op(w, op);
    w.put_ints(g.inputs);
    w.put_ints(g.outputs);
    const std::string meta = metadata_json(g.metadata);
    return assemble_file({std::pair{kGraph, &w.bytes}, std::pair{kWeights, &weights.bytes}, std::pair{kMetadata, &meta}});
}

void save_engine(const Graph& g, const std::filesystem::path& path) { write_file_atomic(path, serialize(g)); }

namespace {

struct Section {
    std::uint64_t offset = 0, size = 0;
};
struct FileLayout {
    std::uint32_t version = 0;
    std::array<Section, kSectionCount + 1> sections{};  // indexed by section kind (1-based)
};

// The header and the section table: magic, version, sizes, checksums, alignment, zero padding.
FileLayout read_layout(const std::uint8_t* bytes, std::size_t size, const std::string& name) {
    const std::size_t table_end = kHeaderSize + kSectionCount * kSectionEntrySize;
    if (size < table_end)
        throw Error(name + ": " + std::to_string(size) + " bytes is too small for an engine file header (" +
                    std::to_string(table_end) + " bytes)");
    if (std::memcmp(bytes, kMagic, 8) != 0) throw Error(name + ": not a firesight engine file (magic is not FSENGINE)");
    FileLayout layout;
    Reader h(bytes, kHeaderSize, name + ": header");
    h.get<std::uint64_t>("magic");
    layout.version = h.get<std::uint32_t>("format_version");
    if (layout.version < kOldestVersion || layout.version > kVersion)
        throw Error(name + ": header.format_version is " + std::to_string(layout.version) + ", this firesight reads versions " +
                    std::to_string(kOldestVersion) + " to " + std::to_string(kVersion));
    const auto nsec = h.get<std::uint32_t>("section_count");
    if (nsec != kSectionCount) throw Error(name + ": header.section_count is " + std::to_string(nsec) + ", expected " + std::to_string(kSectionCount));
    const auto file_size = h.get<std::uint64_t>("file_size");
    if (file_size != size)
        throw Error(name + ": header.file_size says " + std::to_string(file_size) + " bytes but the file has " + std::to_string(size) +
                    (size < file_size ? " (truncated)" : ""));
    const auto header_crc = h.get<std::uint32_t>("header_crc");
    std::string covered(reinterpret_cast<const char*>(bytes), 24);
    covered.append(reinterpret_cast<const char*>(bytes + kHeaderSize), kSectionCount * kSectionEntrySize);
    if (crc32(covered.data(), covered.size()) != header_crc) throw Error(name + ": header_crc does not match (header or section table corrupted)");
    for (std::size_t i = 28; i < kHeaderSize; ++i)
        if (bytes[i] != 0) throw Error(name + ": header.reserved bytes are not zero");

    Reader t(bytes + kHeaderSize, kSectionCount * kSectionEntrySize, name + ": section table");
    std::uint64_t prev_end = table_end;
    for (std::uint32_t i = 0; i < kSectionCount; ++i) {
        const std::string field = "section[" + std::to_string(i) + "]";
        const auto kind = t.get<std::uint32_t>("kind");
        if (kind != i + 1) throw Error(name + ": " + field + ".kind is " + std::to_string(kind) + ", expected " + std::to_string(i + 1));
        t.get<std::uint32_t>("flags");
        const auto off = t.get<std::uint64_t>("offset");
        const auto len = t.get<std::uint64_t>("size");
        const auto crc = t.get<std::uint32_t>("crc32");
        t.get<std::uint32_t>("reserved");
        if (off % kAlign != 0) throw Error(name + ": " + field + ".offset " + std::to_string(off) + " is not 64-byte aligned");
        if (off < prev_end || off > size || len > size - off)
            throw Error(name + ": " + field + " (offset " + std::to_string(off) + ", size " + std::to_string(len) +
                        ") lies outside the file or overlaps the previous section");
        if (crc32(bytes + off, len) != crc) throw Error(name + ": " + field + ".crc32 does not match (section corrupted)");
        // Padding is covered by no checksum, so it must be zero: then every byte of a valid
        // file is checked by something.
        for (std::uint64_t b = prev_end; b < off; ++b)
            if (bytes[b] != 0) throw Error(name + ": padding before " + field + " is not zero");
        layout.sections[i + 1] = {off, len};
        prev_end = off + len;
    }
    if (prev_end != size) throw Error(name + ": " + std::to_string(size - prev_end) + " unexpected bytes after the last section");
    return layout;
}

// Where the constants of the graph section point: the weights section, and the budget that keeps
// encoded constants from expanding without bound.
struct WeightsView {
    const std::uint8_t* bytes;
    std::uint64_t size;
    std::shared_ptr<const void> keep_alive;
    std::string file_name;
    // Apart from a palette of one value (0 bits an element), no encoding expands more than 32x,
    // so a few bytes claiming gigabytes of constants are refused before anything is allocated;
    // the slack covers legitimate all-equal tensors (zero biases, fully pruned layers).
    std::uint64_t expansion_budget() const { return 32 * size + (std::uint64_t{16} << 20); }
    std::uint64_t expanded = 0;
};

// A constant's data: points into the file when dense, expanded into the tensor when encoded.
void read_constant_data(Reader& r, std::uint32_t version, Tensor& ten, const std::string& what, WeightsView& w) {
    const auto off = r.get<std::uint64_t>("tensor.weight_offset");
    const auto len = r.get<std::uint64_t>("tensor.weight_bytes");
    auto encoding = WeightEncoding::Dense;
    if (version >= 2) {
        const auto e = r.get<std::uint8_t>("tensor.weight_encoding");
        if (e > static_cast<std::uint8_t>(WeightEncoding::SparsePalette)) r.fail(what + ".weight_encoding " + std::to_string(e) + " is unknown");
        encoding = static_cast<WeightEncoding>(e);
        for (int k = 0; k < 3; ++k)
            if (r.get<std::uint8_t>("tensor.weight_reserved") != 0) r.fail(what + ".weight_reserved bytes are not zero");
    }
    if (off % kAlign != 0) r.fail(what + ".weight_offset is not 64-byte aligned");
    if (off > w.size || len > w.size - off) r.fail(what + ".weight_offset/weight_bytes lie outside the weights section");
    std::int64_t n = 1;
    for (auto d : ten.shape) {
        if (d < 1 || d > (1 << 24)) r.fail(what + ".dims has " + std::to_string(d));
        n *= d;
        if (n > (std::int64_t{1} << 31)) r.fail(what + " is too large");
    }
    if (encoding == WeightEncoding::Dense) {
        if (static_cast<std::uint64_t>(n) * dtype_size(ten.dtype) != len) r.fail(what + ".weight_bytes " + std::to_string(len) + " does not match its shape");
        ten.external = w.bytes + off;
        ten.storage = w.keep_alive;
        return;
    }
    w.expanded += static_cast<std::uint64_t>(n) * dtype_size(ten.dtype);
    if (w.expanded > w.expansion_budget())
        r.fail(what + " would expand the encoded constants to " + std::to_string(w.expanded) + " bytes, more than " +
               std::to_string(w.expansion_budget()) + " (32x the weights section + 16 MiB): corrupt or hostile file");
    void* out = ten.allocate_owned();
    decode_weights(encoding, w.bytes + off, static_cast<std::size_t>(len), static_cast<std::size_t>(n), dtype_size(ten.dtype), out,
                   w.file_name + ": " + what);
}

// One tensor record. Returns whether its scales are derived from its layer (set later).
bool read_tensor(Reader& r, std::uint32_t version, std::uint32_t i, Tensor& ten, WeightsView& w) {
    ten.name = r.get_str("tensor.name");
    const auto dtype = r.get<std::uint8_t>("tensor.dtype");
    if (dtype > 2) r.fail("tensor " + std::to_string(i) + ".dtype " + std::to_string(dtype) + " is unknown");
    ten.dtype = static_cast<DType>(dtype);
    const auto flags = r.get<std::uint8_t>("tensor.flags");
    const std::uint8_t known = version >= 3 ? (kFlagConstant | kFlagUniformScale | kFlagUniformZeroPoint | kFlagDerivedScale) : kFlagConstant;
    if ((flags & ~known) != 0) r.fail("tensor " + std::to_string(i) + ".flags has unknown bits");
    ten.constant = (flags & kFlagConstant) != 0;
    const bool one_scale = (flags & kFlagUniformScale) != 0, one_zero = (flags & kFlagUniformZeroPoint) != 0;
    const bool derived = (flags & kFlagDerivedScale) != 0;
    if (derived && (one_scale || dtype != static_cast<std::uint8_t>(DType::I32)))
        r.fail("tensor " + std::to_string(i) + ".flags mark derived scales on a tensor that is not an i32 bias with its own scales");
    const auto rank = r.get<std::uint8_t>("tensor.rank");
    if (rank > 6) r.fail("tensor " + std::to_string(i) + ".rank " + std::to_string(rank) + " is over 6");
    r.get<std::uint8_t>("tensor.reserved");
    ten.shape.resize(rank);
    for (auto& d : ten.shape) d = r.get<std::int32_t>("tensor.dims");
    // A uniform array is one stored value however long it is; the limit keeps a corrupt count
    // from allocating much (a channel axis is at most 2^24 by the dims check, real ones far less).
    const std::size_t stored_scale_bytes = one_scale || derived ? 0 : 4, stored_zero_bytes = one_zero ? 0 : 4;
    const auto nq = r.count("tensor.quant_count", stored_scale_bytes + stored_zero_bytes, 1u << 20);
    if ((one_scale || one_zero) && nq < 2) r.fail("tensor " + std::to_string(i) + ".flags mark a uniform quantization array of " + std::to_string(nq) + " entries");
    if (derived && nq == 0) r.fail("tensor " + std::to_string(i) + ".flags mark derived scales of a tensor without quantization");
    if (one_scale)
        ten.quant.scale.assign(nq, r.get<float>("tensor.quant.scale"));
    else if (derived)
        ten.quant.scale.assign(nq, 0.f);  // computed once the ops are read
    else {
        ten.quant.scale.resize(nq);
        for (auto& s : ten.quant.scale) s = r.get<float>("tensor.quant.scale");
    }
    if (one_zero)
        ten.quant.zero_point.assign(nq, r.get<std::int32_t>("tensor.quant.zero_point"));
    else {
        ten.quant.zero_point.resize(nq);
        for (auto& z : ten.quant.zero_point) z = r.get<std::int32_t>("tensor.quant.zero_point");
    }
    ten.quant.axis = r.get<std::int32_t>("tensor.quant.axis");
    if (ten.constant) read_constant_data(r, version, ten, "tensor " + std::to_string(i) + " '" + ten.name + "'", w);
    return derived;
}

void read_op(Reader& r, Op& op) {
    const auto kind = r.get<std::uint16_t>("op.kind");
    if (kind < 1 || kind > kOpKindCount) r.fail("op.kind " + std::to_string(kind) + " is unknown");
    op.kind = static_cast<OpKind>(kind);
    const auto act = r.get<std::uint8_t>("op.activation");
    if (act > 2) r.fail("op.activation " + std::to_string(act) + " is unknown");
    op.activation = static_cast<Activation>(act);
    r.get<std::uint8_t>("op.reserved");
    op.inputs = r.get_ints("op.input_count", 16);
    op.outputs = r.get_ints("op.output_count", 16);
    for (auto* v : {&op.stride_h, &op.stride_w, &op.dilation_h, &op.dilation_w, &op.pad_top, &op.pad_left, &op.pad_bottom,
                    &op.pad_right, &op.groups, &op.depth_multiplier, &op.keep_dims})
        *v = r.get<std::int32_t>("op.attributes");
    op.beta = r.get<float>("op.beta");
    op.epsilon = r.get<float>("op.epsilon");
    op.new_shape = r.get_ints("op.new_shape_count", 6);
}

// Derived bias scales, from the one op whose bias each is.
void derive_bias_scales(Graph& g, const std::vector<std::uint32_t>& derived_tensors, const Reader& r) {
    std::vector<int> derived_uses(g.tensors.size(), 0);
    for (const auto& op : g.ops) {
        if (!has_bias(op) || op.inputs[2] >= static_cast<std::int32_t>(g.tensors.size())) continue;
        const auto b = static_cast<std::size_t>(op.inputs[2]);
        if (std::find(derived_tensors.begin(), derived_tensors.end(), b) == derived_tensors.end()) continue;
        auto& bt = g.tensors[b];
        const auto want = derived_bias_scales(g.tensors, op);
        if (want.size() != bt.quant.scale.size())
            r.fail("tensor " + std::to_string(b) + " '" + bt.name + "' has derived scales, but its layer's input and filter give " +
                   std::to_string(want.size()) + " scales for its " + std::to_string(bt.quant.scale.size()));
        bt.quant.scale = want;
        ++derived_uses[b];
    }
    for (auto b : derived_tensors)
        if (derived_uses[b] != 1)
            r.fail("tensor " + std::to_string(b) + " '" + g.tensors[b].name + "' has derived scales but is the bias of " +
                   std::to_string(derived_uses[b]) + " int8 layers, not one");
}

}  // namespace

Graph parse_engine(const std::uint8_t* bytes, std::size_t size, std::shared_ptr<const void> keep_alive,
                   const std::string& name) {
    const FileLayout layout = read_layout(bytes, size, name);
    const Section& graph_sec = layout.sections[kGraph];
    const Section& weights_sec = layout.sections[kWeights];
    const Section& meta_sec = layout.sections[kMetadata];
    Graph g;
    g.metadata = parse_metadata(bytes + meta_sec.offset, meta_sec.size, name);
    WeightsView weights{bytes + weights_sec.offset, weights_sec.size, std::move(keep_alive), name};

    Reader r(bytes + graph_sec.offset, graph_sec.size, name + ": graph section");
    // The smallest tensor record is 16 bytes and the smallest op 72, which bounds the counts.
    const auto ntensors = r.count("tensor_count", 16, 1u << 20);
    g.tensors.resize(ntensors);
    std::vector<std::uint32_t> derived_tensors;  // i32 biases whose scales follow from their layer
    for (std::uint32_t i = 0; i < ntensors; ++i)
        if (read_tensor(r, layout.version, i, g.tensors[i], weights)) derived_tensors.push_back(i);
    const auto nops = r.count("op_count", 72, 1u << 20);
    g.ops.resize(nops);
    for (auto& op : g.ops) read_op(r, op);
    g.inputs = r.get_ints("input_count", 16);
    g.outputs = r.get_ints("output_count", 16);
    if (r.remaining() != 0) r.fail(std::to_string(r.remaining()) + " unexpected bytes after the outputs");
    derive_bias_scales(g, derived_tensors, r);
    try {
        validate(g);
    } catch (const Error& e) {
        throw Error(name + ": inconsistent graph: " + e.what());
    }
    check_metadata_against_graph(g, name);
    return g;
}

Graph load_graph(const std::filesystem::path& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) throw Error(path.string() + ": cannot open engine file: " + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd);
        throw Error(path.string() + ": not a regular file");
    }
    const auto size = static_cast<std::size_t>(st.st_size);
    if (size == 0) {
        ::close(fd);
        throw Error(path.string() + ": empty file, not an engine");
    }
    void* p = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    ::close(fd);
    if (p == MAP_FAILED) throw Error(path.string() + ": cannot map engine file: " + std::strerror(errno));
    std::shared_ptr<const void> mapping(p, [size](const void* q) { ::munmap(const_cast<void*>(q), size); });
    return parse_engine(static_cast<const std::uint8_t*>(p), size, mapping, path.string());
}

}  // namespace firesight::engine
