#include <array>
#include <cmath>

#include "firesight/common/error.h"
#include "firesight/common/fileio.h"
#include "firesight/import/tflite.h"
#include "flatbuffer_reader.h"

namespace firesight::tflite {
namespace {

// Builtin operator names in schema order (code = index), used to name unsupported operators.
constexpr std::array<const char*, 146> kOpNames = {
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE",
    "DEQUANTIZE", "EMBEDDING_LOOKUP", "FLOOR", "FULLY_CONNECTED", "HASHTABLE_LOOKUP",
    "L2_NORMALIZATION", "L2_POOL_2D", "LOCAL_RESPONSE_NORMALIZATION", "LOGISTIC", "LSH_PROJECTION",
    "LSTM", "MAX_POOL_2D", "MUL", "RELU", "RELU_N1_TO_1", "RELU6", "RESHAPE", "RESIZE_BILINEAR",
    "RNN", "SOFTMAX", "SPACE_TO_DEPTH", "SVDF", "TANH", "CONCAT_EMBEDDINGS", "SKIP_GRAM", "CALL",
    "CUSTOM", "EMBEDDING_LOOKUP_SPARSE", "PAD", "UNIDIRECTIONAL_SEQUENCE_RNN", "GATHER",
    "BATCH_TO_SPACE_ND", "SPACE_TO_BATCH_ND", "TRANSPOSE", "MEAN", "SUB", "DIV", "SQUEEZE",
    "UNIDIRECTIONAL_SEQUENCE_LSTM", "STRIDED_SLICE", "BIDIRECTIONAL_SEQUENCE_RNN", "EXP", "TOPK_V2",
    "SPLIT", "LOG_SOFTMAX", "DELEGATE", "BIDIRECTIONAL_SEQUENCE_LSTM", "CAST", "PRELU", "MAXIMUM",
    "ARG_MAX", "MINIMUM", "LESS", "NEG", "PADV2", "GREATER", "GREATER_EQUAL", "LESS_EQUAL", "SELECT",
    "SLICE", "SIN", "TRANSPOSE_CONV", "SPARSE_TO_DENSE", "TILE", "EXPAND_DIMS", "EQUAL", "NOT_EQUAL",
    "LOG", "SUM", "SQRT", "RSQRT", "SHAPE", "POW", "ARG_MIN", "FAKE_QUANT", "REDUCE_PROD",
    "REDUCE_MAX", "PACK", "LOGICAL_OR", "ONE_HOT", "LOGICAL_AND", "LOGICAL_NOT", "UNPACK",
    "REDUCE_MIN", "FLOOR_DIV", "REDUCE_ANY", "SQUARE", "ZEROS_LIKE", "FILL", "FLOOR_MOD", "RANGE",
    "RESIZE_NEAREST_NEIGHBOR", "LEAKY_RELU", "SQUARED_DIFFERENCE", "MIRROR_PAD", "ABS", "SPLIT_V",
    "UNIQUE", "CEIL", "REVERSE_V2", "ADD_N", "GATHER_ND", "COS", "WHERE", "RANK", "ELU",
    "REVERSE_SEQUENCE", "MATRIX_DIAG", "QUANTIZE", "MATRIX_SET_DIAG", "ROUND", "HARD_SWISH", "IF",
    "WHILE", "NON_MAX_SUPPRESSION_V4", "NON_MAX_SUPPRESSION_V5", "SCATTER_ND", "SELECT_V2",
    "DENSIFY", "SEGMENT_SUM", "BATCH_MATMUL", "PLACEHOLDER_FOR_GREATER_OP_CODES", "CUMSUM",
    "CALL_ONCE", "BROADCAST_TO", "RFFT2D", "CONV_3D", "IMAG", "REAL", "COMPLEX_ABS", "HASHTABLE",
    "HASHTABLE_FIND", "HASHTABLE_IMPORT", "HASHTABLE_SIZE", "REDUCE_ALL", "CONV_3D_TRANSPOSE",
    "VAR_HANDLE", "READ_VARIABLE", "ASSIGN_VARIABLE", "BROADCAST_ARGS",
};

std::size_t type_size(TensorType t) {
    switch (t) {
        case TensorType::Float32: case TensorType::Int32: return 4;
        case TensorType::Float16: case TensorType::Int16: return 2;
        case TensorType::UInt8: case TensorType::Int8: case TensorType::Bool: return 1;
        case TensorType::Int64: case TensorType::Float64: case TensorType::Complex64: return 8;
        default: return 0;
    }
}

// Reads one constant tensor's buffer and turns it into float (and integer) values.
void load_constant(Tensor& t, const std::uint8_t* bytes, std::size_t len, const std::string& ctx) {
    const std::size_t esize = type_size(t.type);
    if (!esize) throw Error(ctx + ": constant of type " + tensor_type_name(t.type) + " is not supported");
    const std::int64_t n = t.element_count();
    if (n < 0 || static_cast<std::uint64_t>(n) * esize != len)
        throw Error(ctx + ": buffer holds " + std::to_string(len) + " bytes but shape needs " +
                    std::to_string(n) + " x " + std::to_string(esize));
    t.is_constant = true;
    const auto& q = t.quant;
    const std::size_t nch = q.scale.size();
    std::size_t axis_stride = 1, axis_len = 1;
    if (nch > 1) {
        const auto d = static_cast<std::size_t>(q.quantized_dimension);
        if (d >= t.shape.size() || static_cast<std::size_t>(t.shape[d]) != nch)
            throw Error(ctx + ": per-channel quantization has " + std::to_string(nch) +
                        " scales but dimension " + std::to_string(d) + " does not match");
        axis_len = nch;
        for (std::size_t i = d + 1; i < t.shape.size(); ++i) axis_stride *= static_cast<std::size_t>(t.shape[i]);
    }
    if (!q.zero_point.empty() && q.zero_point.size() != nch)
        throw Error(ctx + ": " + std::to_string(q.scale.size()) + " scales but " +
                    std::to_string(q.zero_point.size()) + " zero points");
    const auto count = static_cast<std::size_t>(n);
    std::vector<double> raw(count);
    const bool integer = t.type != TensorType::Float32 && t.type != TensorType::Float16 && t.type != TensorType::Float64;
    for (std::size_t i = 0; i < count; ++i) {
        const std::uint8_t* p = bytes + i * esize;
        switch (t.type) {
            case TensorType::Float32: { float v; std::memcpy(&v, p, 4); raw[i] = v; break; }
            case TensorType::Float64: { double v; std::memcpy(&v, p, 8); raw[i] = v; break; }
            case TensorType::Int32: { std::int32_t v; std::memcpy(&v, p, 4); raw[i] = v; break; }
            case TensorType::Int64: { std::int64_t v; std::memcpy(&v, p, 8); raw[i] = static_cast<double>(v); break; }
            case TensorType::Int16: { std::int16_t v; std::memcpy(&v, p, 2); raw[i] = v; break; }
            case TensorType::UInt8: raw[i] = *p; break;
            case TensorType::Int8: raw[i] = static_cast<std::int8_t>(*p); break;
            case TensorType::Bool: raw[i] = *p ? 1 : 0; break;
            default: throw Error(ctx + ": constant of type " + tensor_type_name(t.type) + " is not supported");
        }
    }
    t.values.resize(count);
    if (integer && nch == 0) {
        t.int_values.resize(count);
        for (std::size_t i = 0; i < count; ++i) {
            t.int_values[i] = static_cast<std::int64_t>(raw[i]);
            t.values[i] = static_cast<float>(raw[i]);
        }
        return;
    }
    for (std::size_t i = 0; i < count; ++i) {
        if (nch == 0) {
            t.values[i] = static_cast<float>(raw[i]);
            continue;
        }
        const std::size_t c = nch > 1 ? (i / axis_stride) % axis_len : 0;
        const double zp = q.zero_point.empty() ? 0.0 : static_cast<double>(q.zero_point[c]);
        t.values[i] = static_cast<float>(q.scale[c] * (raw[i] - zp));
    }
}

void read_options(const flatbuf::Table& op, Operator& o, const std::string& ctx) {
    const flatbuf::Table opt = op.table(4, "builtin_options");
    auto act = [&](int idx) {
        const auto a = opt.scalar<std::int8_t>(idx, 0, "fused_activation_function");
        if (a < 0 || a > 5) throw Error(ctx + ": fused activation " + std::to_string(a) + " is unknown");
        return static_cast<Activation>(a);
    };
    auto padding = [&]() {
        const auto p = opt.scalar<std::int8_t>(0, 0, "padding");
        if (p != 0 && p != 1) throw Error(ctx + ": padding " + std::to_string(p) + " is unknown");
        return static_cast<Padding>(p);
    };
    switch (o.code) {
        case OpCode::Conv2D:
            o.padding = padding();
            o.stride_w = opt.scalar<std::int32_t>(1, 1, "stride_w");
            o.stride_h = opt.scalar<std::int32_t>(2, 1, "stride_h");
            o.activation = act(3);
            o.dilation_w = opt.scalar<std::int32_t>(4, 1, "dilation_w_factor");
            o.dilation_h = opt.scalar<std::int32_t>(5, 1, "dilation_h_factor");
            break;
        case OpCode::DepthwiseConv2D:
            o.padding = padding();
            o.stride_w = opt.scalar<std::int32_t>(1, 1, "stride_w");
            o.stride_h = opt.scalar<std::int32_t>(2, 1, "stride_h");
            o.depth_multiplier = opt.scalar<std::int32_t>(3, 1, "depth_multiplier");
            o.activation = act(4);
            o.dilation_w = opt.scalar<std::int32_t>(5, 1, "dilation_w_factor");
            o.dilation_h = opt.scalar<std::int32_t>(6, 1, "dilation_h_factor");
            break;
        case OpCode::AveragePool2D:
        case OpCode::MaxPool2D:
            o.padding = padding();
            o.stride_w = opt.scalar<std::int32_t>(1, 1, "stride_w");
            o.stride_h = opt.scalar<std::int32_t>(2, 1, "stride_h");
            o.filter_w = opt.scalar<std::int32_t>(3, 1, "filter_width");
            o.filter_h = opt.scalar<std::int32_t>(4, 1, "filter_height");
            o.activation = act(5);
            break;
        case OpCode::FullyConnected:
        case OpCode::Add:
            o.activation = act(0);
            break;
        case OpCode::Softmax: o.softmax_beta = opt.scalar<float>(0, 1.0f, "beta"); break;
        case OpCode::Mean: o.keep_dims = opt.scalar<std::uint8_t>(0, 0, "keep_dims") != 0; break;
        case OpCode::Reshape: o.new_shape = opt.vector<std::int32_t>(0, "new_shape"); break;
        default: break;
    }
    if (o.stride_w < 1 || o.stride_h < 1 || o.dilation_w < 1 || o.dilation_h < 1 || o.depth_multiplier < 1 ||
        o.filter_w < 1 || o.filter_h < 1)
        throw Error(ctx + ": stride, dilation, window and depth multiplier must be positive");
}

}  // namespace

const char* tensor_type_name(TensorType t) {
    static const char* names[] = {"FLOAT32", "FLOAT16", "INT32", "UINT8", "INT64", "STRING",
                                  "BOOL", "INT16", "COMPLEX64", "INT8", "FLOAT64"};
    const auto i = static_cast<int>(t);
    return i >= 0 && i <= 10 ? names[i] : "UNKNOWN";
}

const char* activation_name(Activation a) {
    static const char* names[] = {"NONE", "RELU", "RELU_N1_TO_1", "RELU6", "TANH", "SIGN_BIT"};
    const auto i = static_cast<int>(a);
    return i >= 0 && i <= 5 ? names[i] : "UNKNOWN";
}

std::string op_code_name(std::int32_t code) {
    if (code >= 0 && static_cast<std::size_t>(code) < kOpNames.size()) return kOpNames[static_cast<std::size_t>(code)];
    return "BUILTIN_" + std::to_string(code);
}

bool op_code_supported(std::int32_t code) {
    switch (static_cast<OpCode>(code)) {
        case OpCode::Add: case OpCode::AveragePool2D: case OpCode::Conv2D: case OpCode::DepthwiseConv2D:
        case OpCode::Dequantize: case OpCode::FullyConnected: case OpCode::MaxPool2D: case OpCode::Relu:
        case OpCode::Relu6: case OpCode::Reshape: case OpCode::Softmax: case OpCode::Pad: case OpCode::Mean:
        case OpCode::Squeeze: case OpCode::Quantize: case OpCode::HardSwish:
            return true;
    }
    return false;
}

std::int64_t Tensor::element_count() const {
    std::int64_t n = 1;
    for (auto d : shape) {
        if (d < 0) return -1;
        n *= d;
        if (n > (std::int64_t{1} << 40)) return -1;
    }
    return n;
}

Model parse_model(const std::uint8_t* data, std::size_t size, const std::string& name);

Model parse_model(const std::uint8_t* data, std::size_t size) { return parse_model(data, size, "tflite"); }

namespace {

// One tensor: shape, type, quantization, and its constant data (inside the FlatBuffer, or outside
// it in models over 2 GB).
Tensor read_tensor(const flatbuf::Table& tt, std::size_t i, const std::vector<flatbuf::Table>& buffers, const flatbuf::Reader& r,
                   const std::uint8_t* data, const std::string& name) {
    Tensor t;
    t.shape = tt.vector<std::int32_t>(0, "shape");
    const auto type = tt.scalar<std::int8_t>(1, 0, "type");
    t.type = static_cast<TensorType>(type);
    t.buffer = tt.scalar<std::uint32_t>(2, 0, "buffer");
    t.name = tt.string(3, "name");
    const std::string ctx = name + ": tensor " + std::to_string(i) + " '" + t.name + "'";
    for (auto d : t.shape)
        if (d < 0) throw Error(ctx + ": negative dimension " + std::to_string(d));
    const flatbuf::Table q = tt.table(4, "quantization");
    if (q.valid()) {
        t.quant.min = q.vector<float>(0, "min");
        t.quant.max = q.vector<float>(1, "max");
        t.quant.scale = q.vector<float>(2, "scale");
        t.quant.zero_point = q.vector<std::int64_t>(3, "zero_point");
        t.quant.quantized_dimension = q.scalar<std::int32_t>(6, 0, "quantized_dimension");
        for (float s : t.quant.scale)
            if (!std::isfinite(s) || s <= 0) throw Error(ctx + ": quantization scale " + std::to_string(s) + " is not positive");
    }
    if (t.buffer >= buffers.size() && !(t.buffer == 0 && buffers.empty()))
        throw Error(ctx + ": buffer index " + std::to_string(t.buffer) + " >= " + std::to_string(buffers.size()));
    if (t.buffer == 0) return t;
    const auto& b = buffers[t.buffer];
    std::size_t pos = 0, len = 0;
    if (!b.byte_vector(0, "data", pos, len)) {
        // Models over 2 GB keep data outside the FlatBuffer: offset/size from file start.
        const auto off = b.scalar<std::uint64_t>(1, 0, "offset");
        const auto sz = b.scalar<std::uint64_t>(2, 0, "size");
        if (off > 1) {
            // Compare in 64 bits before narrowing, so a 32-bit size_t cannot wrap a huge offset.
            if (off > r.size() || sz > r.size() - off)
                throw Error(ctx + ": external buffer at offset " + std::to_string(off) + " + " + std::to_string(sz) +
                            " bytes is past the end of the file (" + std::to_string(r.size()) + " bytes)");
            pos = static_cast<std::size_t>(off);
            len = static_cast<std::size_t>(sz);
        }
    }
    if (len) load_constant(t, data + pos, len, ctx);
    return t;
}

void check_tensor_index(std::int32_t idx, std::int32_t ntensors, const std::string& ctx, bool allow_absent) {
    if (idx == -1 && allow_absent) return;
    if (idx < 0 || idx >= ntensors)
        throw Error(ctx + ": tensor index " + std::to_string(idx) + " is out of range (" + std::to_string(ntensors) + " tensors)");
}

Operator read_operator(const flatbuf::Table& ot, std::size_t i, const std::vector<std::int32_t>& codes, std::int32_t ntensors,
                       const std::string& name) {
    const auto opcode_index = ot.scalar<std::uint32_t>(0, 0, "opcode_index");
    std::string ctx = name + ": operator " + std::to_string(i);
    if (opcode_index >= codes.size()) throw Error(ctx + ": opcode index " + std::to_string(opcode_index) + " >= " + std::to_string(codes.size()));
    const std::int32_t code = codes[opcode_index];
    ctx += " (" + op_code_name(code) + ")";
    if (!op_code_supported(code)) throw Error(ctx + ": unsupported operator " + op_code_name(code));
    Operator o;
    o.code = static_cast<OpCode>(code);
    o.inputs = ot.vector<std::int32_t>(1, "inputs");
    o.outputs = ot.vector<std::int32_t>(2, "outputs");
    for (auto t : o.inputs) check_tensor_index(t, ntensors, ctx + " input", true);
    for (auto t : o.outputs) check_tensor_index(t, ntensors, ctx + " output", false);
    if (o.outputs.empty()) throw Error(ctx + ": has no output");
    read_options(ot, o, ctx);
    return o;
}

}  // namespace

Model parse_model(const std::uint8_t* data, std::size_t size, const std::string& name) {
    if (size < 8) throw Error(name + ": file is " + std::to_string(size) + " bytes, too short for a TFLite model");
    if (std::memcmp(data + 4, "TFL3", 4) != 0) {
        std::string got;
        for (int i = 4; i < 8; ++i) got += (data[i] >= 32 && data[i] < 127) ? static_cast<char>(data[i]) : '?';
        throw Error(name + ": file identifier is '" + got + "', expected 'TFL3' (not a TFLite model)");
    }
    flatbuf::Reader r(data, size, name);
    const flatbuf::Table root = r.root("model");
    Model m;
    m.version = root.scalar<std::uint32_t>(0, 0, "version");
    if (m.version != 3) throw Error(name + ": schema version " + std::to_string(m.version) + ", expected 3");
    m.description = root.string(3, "description");

    std::vector<std::int32_t> codes;
    for (const auto& oc : root.table_vector(1, "operator_codes")) {
        const auto deprecated = oc.scalar<std::int8_t>(0, 0, "deprecated_builtin_code");
        const auto builtin = oc.scalar<std::int32_t>(3, 0, "builtin_code");
        codes.push_back(std::max<std::int32_t>(deprecated, builtin));
    }
    const auto buffers = root.table_vector(4, "buffers");
    const auto subgraphs = root.table_vector(2, "subgraphs");
    if (subgraphs.empty()) throw Error(name + ": model has no subgraph");
    const flatbuf::Table& sg = subgraphs[0];

    const auto tensors = sg.table_vector(0, "tensors");
    m.tensors.reserve(tensors.size());
    for (std::size_t i = 0; i < tensors.size(); ++i) m.tensors.push_back(read_tensor(tensors[i], i, buffers, r, data, name));
    const auto ntensors = static_cast<std::int32_t>(m.tensors.size());
    m.inputs = sg.vector<std::int32_t>(1, "inputs");
    m.outputs = sg.vector<std::int32_t>(2, "outputs");
    for (auto i : m.inputs) check_tensor_index(i, ntensors, name + ": subgraph input", false);
    for (auto i : m.outputs) check_tensor_index(i, ntensors, name + ": subgraph output", false);
    const auto ops = sg.table_vector(3, "operators");
    for (std::size_t i = 0; i < ops.size(); ++i) m.operators.push_back(read_operator(ops[i], i, codes, ntensors, name));
    return m;
}

Model load_model(const std::filesystem::path& path) {
    const auto bytes = read_file_bytes(path);
    return parse_model(bytes.data(), bytes.size(), path.string());
}

}  // namespace firesight::tflite
