// Engine (a loaded graph + metadata) and Session (buffers + a backend's executor).
#include <algorithm>
#include <cmath>
#include <cstring>

#include "backend_registry.h"
#include "buffer_plan.h"
#include "executor.h"
#include "firesight/engine/session.h"
#include "firesight/engine/ir.h"
#include "firesight/engine/format.h"
#include "firesight/engine/reference.h"
#include "firesight/common/error.h"
#include "kernels/reference/kernels.h"
#include "linear_head.h"

namespace firesight::engine {

Engine::Engine() = default;
Engine::~Engine() = default;

std::shared_ptr<const Engine> Engine::load(const std::filesystem::path& path) {
    std::shared_ptr<Engine> e(new Engine());
    e->graph_ = std::make_unique<Graph>(load_graph(path));
    return e;
}

std::shared_ptr<const Engine> Engine::from_graph(Graph g) {
    validate(g);
    std::shared_ptr<Engine> e(new Engine());
    e->graph_ = std::make_unique<Graph>(std::move(g));
    return e;
}

const Metadata& Engine::metadata() const { return graph_->metadata; }

namespace {
std::vector<TensorDesc> describe(const Graph& g, const std::vector<std::int32_t>& ids) {
    std::vector<TensorDesc> r;
    for (auto i : ids) {
        const auto& t = g.tensors[static_cast<std::size_t>(i)];
        r.push_back({t.name, t.shape, t.dtype});
    }
    return r;
}
}  // namespace

std::vector<TensorDesc> Engine::inputs() const { return describe(*graph_, graph_->inputs); }
std::vector<TensorDesc> Engine::outputs() const { return describe(*graph_, graph_->outputs); }
std::int64_t Engine::macs() const { return count_macs(*graph_); }

// ---- reference executor ---------------------------------------------------------------------

namespace {

class ReferenceExecutor : public Executor {
public:
    explicit ReferenceExecutor(const Graph& g) : g_(g) {
        if (g.inputs.size() != 1) throw Error("reference backend: graphs with " + std::to_string(g.inputs.size()) + " inputs are not supported");
    }
    void plan(int batch) override {
        auto p = detail::plan_buffers(g_, batch);
        shapes_ = std::move(p.shapes);
        buffers_ = std::move(p.storage);  // moving keeps every buffer where data_ points
        data_ = std::move(p.data);
    }
    void run(const float* input, std::vector<const float*>& outputs) override {
        data_[static_cast<std::size_t>(g_.inputs[0])] = const_cast<float*>(input);
        for (const auto& op : g_.ops) ref::run_op(g_, op, shapes_, data_);
        outputs.clear();
        for (auto o : g_.outputs) outputs.push_back(static_cast<const float*>(data_[static_cast<std::size_t>(o)]));
    }

private:
    const Graph& g_;
    std::vector<std::vector<std::int32_t>> shapes_;
    std::vector<std::vector<float>> buffers_;
    std::vector<void*> data_;
};

}  // namespace

std::unique_ptr<Executor> make_reference_executor(const Graph& g) { return std::make_unique<ReferenceExecutor>(g); }

void run_reference_op(const Graph& g, const Op& op, const std::vector<std::vector<std::int32_t>>& shapes,
                      const std::vector<void*>& data) {
    ref::run_op(g, op, shapes, data);
}

std::vector<std::vector<float>> run_reference_all(const Graph& g, const std::vector<const float*>& inputs, int batch) {
    const auto shapes = infer_shapes(g, batch);
    // Every tensor in its own dtype while running; i8 and i32 ones are turned into floats at the end.
    std::vector<std::vector<float>> values(g.tensors.size());
    std::vector<void*> data(g.tensors.size(), nullptr);
    if (inputs.size() != g.inputs.size()) throw Error("run_reference_all: wrong number of inputs");
    for (std::size_t i = 0; i < g.tensors.size(); ++i) {
        const auto& t = g.tensors[i];
        std::int64_t n = 1;
        for (auto d : shapes[i]) n *= d;
        const auto bytes = static_cast<std::size_t>(n) * dtype_size(t.dtype);
        values[i].resize((bytes + sizeof(float) - 1) / sizeof(float));
        if (t.constant) std::memcpy(values[i].data(), t.bytes(), bytes);
        data[i] = values[i].data();
    }
    for (std::size_t k = 0; k < inputs.size(); ++k) {
        const auto i = static_cast<std::size_t>(g.inputs[k]);
        std::copy(inputs[k], inputs[k] + values[i].size(), values[i].begin());
    }
    for (const auto& op : g.ops) ref::run_op(g, op, shapes, data);
    for (std::size_t i = 0; i < g.tensors.size(); ++i) {
        const auto& t = g.tensors[i];
        if (t.dtype == DType::F32) continue;
        std::int64_t n = 1;
        for (auto d : shapes[i]) n *= d;
        std::vector<float> f(static_cast<std::size_t>(n));
        for (std::int64_t k = 0; k < n; ++k) {
            const std::int32_t q = t.dtype == DType::I8 ? static_cast<const std::int8_t*>(data[i])[k] : static_cast<const std::int32_t*>(data[i])[k];
            // Non-constant i8 tensors are activations with one scale; constants keep their integers.
            f[static_cast<std::size_t>(k)] = !t.constant && t.quant.scale.size() == 1
                                                  ? t.quant.scale[0] * static_cast<float>(q - t.quant.zero_point[0])
                                                  : static_cast<float>(q);
        }
        values[i] = std::move(f);
    }
    return values;
}

// ---- session --------------------------------------------------------------------------------

Session::Session(std::shared_ptr<const Engine> engine, SessionOptions options)
    : engine_(std::move(engine)), options_(options) {
    if (!engine_) throw Error("session: no engine");
    if (options_.threads < 1) throw Error("session: threads must be at least 1");
    backend_ = resolve_backend(options_.backend, engine_->graph(), options_.threads);
    if (options_.class_activation_maps) {
        // Every backend keeps its own buffers, so the feature map is asked for as an output: one
        // mechanism for all of them, and the executors need not know about maps.
        auto head = std::make_shared<LinearHead>(find_linear_head(engine_->graph()));
        cam_engine_ = Engine::from_graph(with_feature_output(engine_->graph(), head->features, engine_));
        head_ = std::move(head);
    }
    const Graph& g = cam_engine_ ? cam_engine_->graph() : engine_->graph();
    check_backend_takes(backend_, g);
    executor_ = backend_info(backend_).make(g, options_);
}

Session::~Session() = default;

void Session::prepare(int batch) {
    if (batch < 1) throw Error("session: batch must be at least 1");
    if (batch != planned_batch_) {
        planned_batch_ = 0;  // stays unplanned if plan() throws
        executor_->plan(batch);
        planned_batch_ = batch;
    }
}

const std::vector<const float*>& Session::run(std::span<const float> input, int batch) {
    if (batch < 1) throw Error("session: batch must be at least 1");
    // The kernels read batch x input_size() floats from wherever input points: a shorter buffer
    // would be read past its end, a longer one means the caller's layout is not what it thinks.
    const std::int64_t want = static_cast<std::int64_t>(batch) * input_size();
    if (static_cast<std::int64_t>(input.size()) != want) {
        const auto& in = engine_->graph().tensors[static_cast<std::size_t>(engine_->graph().inputs[0])];
        std::string dims;
        for (std::size_t k = 1; k < in.shape.size(); ++k) dims += "x" + std::to_string(in.shape[k]);
        throw Error("session: input has " + std::to_string(input.size()) + " floats, expected " + std::to_string(want) + " (batch " +
                    std::to_string(batch) + dims + " for input '" + in.name + "')");
    }
    prepare(batch);
    features_ = nullptr;
    executor_->run(input.data(), outputs_);
    if (head_) {  // the feature map is the executor's last output; callers see the engine's outputs
        features_ = outputs_.back();
        features_batch_ = batch;
        outputs_.pop_back();
    }
    return outputs_;
}

ActivationMap Session::class_activation_map(int cls, int item) const {
    if (!head_) throw Error("session: class activation maps were not asked for (SessionOptions::class_activation_maps)");
    if (!features_) throw Error("session: class_activation_map() needs a run first");
    if (cls < 0 || cls >= head_->classes)
        throw Error("session: no class " + std::to_string(cls) + " (the model has " + std::to_string(head_->classes) + ")");
    if (item < 0 || item >= features_batch_)
        throw Error("session: no batch item " + std::to_string(item) + " in the last run of " + std::to_string(features_batch_));
    const auto& s = engine_->graph().tensors[static_cast<std::size_t>(head_->features)].shape;
    ActivationMap m;
    m.height = s[1];
    m.width = s[2];
    const auto positions = static_cast<std::size_t>(m.height) * static_cast<std::size_t>(m.width);
    const auto c = static_cast<std::size_t>(head_->channels);
    const float* f = features_ + static_cast<std::size_t>(item) * positions * c;
    const float* w = head_->weights.data() + static_cast<std::size_t>(cls) * c;
    m.values.resize(positions);
    for (std::size_t p = 0; p < positions; ++p) {
        double sum = 0;  // in double: the maps of all backends then differ only by their feature maps
        for (std::size_t k = 0; k < c; ++k) sum += static_cast<double>(w[k]) * f[p * c + k];
        m.values[p] = static_cast<float>(sum);
    }
    return m;
}

namespace {
std::int64_t per_item(const std::vector<std::int32_t>& s) {
    std::int64_t n = 1;
    for (std::size_t k = 1; k < s.size(); ++k) n *= s[k];
    return n;
}
}  // namespace

std::int64_t Session::input_size() const {
    const auto& g = engine_->graph();
    return per_item(g.tensors[static_cast<std::size_t>(g.inputs.at(0))].shape);
}

std::int64_t Session::output_size(int i) const {
    const auto& g = engine_->graph();
    if (i < 0 || i >= static_cast<int>(g.outputs.size())) throw Error("session: no output " + std::to_string(i));
    return per_item(g.tensors[static_cast<std::size_t>(g.outputs[static_cast<std::size_t>(i)])].shape);
}

namespace {
std::vector<std::vector<float>> split(const float* p, int batch, std::int64_t n) {
    std::vector<std::vector<float>> r(static_cast<std::size_t>(batch));
    for (int b = 0; b < batch; ++b) r[static_cast<std::size_t>(b)].assign(p + b * n, p + (b + 1) * n);
    return r;
}
}  // namespace

std::vector<std::vector<float>> Session::probabilities(std::span<const float> input, int batch) {
    const auto& out = run(input, batch);
    return split(out[0], batch, output_size(0));
}

std::vector<std::vector<float>> Session::logits(std::span<const float> input, int batch) {
    const auto& out = run(input, batch);
    const int i = out.size() > 1 ? 1 : 0;
    return split(out[static_cast<std::size_t>(i)], batch, output_size(i));
}

}  // namespace firesight::engine
