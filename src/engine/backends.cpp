// The backend registry and the choices made from it: names, availability, and what Auto picks.
#include <algorithm>

#include "backend_registry.h"
#include "firesight/engine/session.h"
#include "firesight/common/error.h"
#include "firesight/engine/ir.h"
#include "ops/op_def.h"
#ifdef FIRESIGHT_HAVE_VNNI_KERNELS
#include "kernels/native_int8/vnni_kernels.h"
#endif

namespace firesight::engine {

namespace {

bool always() { return true; }

// Every op in the table, in float, and in int8 where it has an int8 kernel. native-int8 takes the
// same: what its VNNI kernels do not cover runs on the reference kernels.
bool reference_supports(const Graph& g, const Op& op, std::string& why) {
    const ops::OpDef* def = ops::find_op(op.kind);
    if (!def) {
        why = "unknown op kind " + std::to_string(static_cast<int>(op.kind));
        return false;
    }
    if (ops::runs_int8(g, op) && !def->reference_q8) {
        why = "no int8 kernel";
        return false;
    }
    return true;
}

std::unique_ptr<Executor> make_reference(const Graph& g, const SessionOptions&) { return make_reference_executor(g); }
std::unique_ptr<Executor> make_native_int8(const Graph& g, const SessionOptions& o) {
    return make_native_int8_executor(g, o.threads);
}

#ifdef FIRESIGHT_HAVE_XNNPACK
std::unique_ptr<Executor> make_xnnpack(const Graph& g, const SessionOptions& o) {
    return make_xnnpack_executor(g, o.threads, o.sparse);
}
// The blocks whose expanded tensor is at least this big (per image) run fused: on MobileNetV2's
// blocks fusion won where that tensor is 1.2 MiB or more and lost at 600 KiB and less, which fit
// in L2 anyway (docs/fused-blocks.md).
constexpr std::size_t kFuseMinBytes = std::size_t(1) << 20;
std::unique_ptr<Executor> make_xnnpack_fused(const Graph& g, const SessionOptions& o) {
    return make_xnnpack_executor(g, o.threads, o.sparse, kFuseMinBytes);
}
bool xnnpack_built() { return true; }
bool xnnpack_takes(const Graph& g, const Op& op, std::string& why) { return xnnpack_supports(g, op, why); }
#else
std::unique_ptr<Executor> make_xnnpack(const Graph&, const SessionOptions&) {
    throw Error("session: this firesight was built without the xnnpack backend");
}
std::unique_ptr<Executor> make_xnnpack_fused(const Graph& g, const SessionOptions& o) { return make_xnnpack(g, o); }
bool xnnpack_built() { return false; }
bool xnnpack_takes(const Graph&, const Op&, std::string& why) {
    why = "this firesight was built without the xnnpack backend";
    return false;
}
#endif

}  // namespace

const std::vector<BackendInfo>& backend_registry() {
    static const std::vector<BackendInfo> table = {
        {Backend::Reference, "reference", always, make_reference, reference_supports},
        {Backend::Xnnpack, "xnnpack", xnnpack_built, make_xnnpack, xnnpack_takes},
        // Runs everywhere: its VNNI kernels where the CPU has them, the reference kernels elsewhere.
        {Backend::NativeInt8, "native-int8", always, make_native_int8, reference_supports},
        // XNNPACK with the large inverted-residual blocks fused; auto's choice for f32 on 2+ threads (x86-64).
        {Backend::XnnpackFused, "xnnpack-fused", xnnpack_built, make_xnnpack_fused, xnnpack_takes},
    };
    return table;
}

const BackendInfo& backend_info(Backend b) {
    for (const auto& row : backend_registry())
        if (row.id == b) return row;
    throw Error("backend 'auto' must be resolved (resolve_backend) before it is used");
}

bool backend_supports(Backend b, const Graph& g, const Op& op, std::string* why) {
    std::string reason;
    const bool ok = backend_info(b).supports(g, op, reason);
    if (why) *why = reason;
    return ok;
}

void check_backend_takes(Backend b, const Graph& g) {
    const BackendInfo& row = backend_info(b);
    for (std::size_t i = 0; i < g.ops.size(); ++i) {
        std::string why;
        if (!row.supports(g, g.ops[i], why))
            throw Error(std::string("session: the ") + row.name + " backend cannot run op " + std::to_string(i) + " (" +
                        op_kind_name(g.ops[i].kind) + "): " + why);
    }
}

Backend parse_backend(const std::string& name) {
    if (name == "auto") return Backend::Auto;
    std::string known = "auto";
    for (const auto& row : backend_registry()) {
        if (name == row.name) return row.id;
        known += std::string(", ") + row.name;
    }
    throw Error("unknown backend '" + name + "' (expected one of: " + known + ")");
}

const char* backend_name(Backend b) { return b == Backend::Auto ? "auto" : backend_info(b).name; }

bool backend_available(Backend b) { return b == Backend::Auto || backend_info(b).available(); }

bool native_int8_fast() {
#ifdef FIRESIGHT_HAVE_VNNI_KERNELS
    static const bool fast = native::cpu_has_vnni();
    return fast;
#else
    return false;  // not x86-64: native-int8 has only the reference kernels here
#endif
}

Backend resolve_backend(Backend b, const Graph& g, int threads) {
    if (b != Backend::Auto) return b;
    const bool int8 = std::any_of(g.tensors.begin(), g.tensors.end(), [](const Tensor& t) { return t.dtype == DType::I8; });
    // Without VNNI native-int8 would run the reference kernels, far slower than XNNPACK; with it,
    // it was the faster of the two on int8 MobileNetV2 (the README's backend section has the measurement).
    if (int8 && native_int8_fast()) return Backend::NativeInt8;
    if (!backend_available(Backend::Xnnpack)) return Backend::Reference;
#if defined(__x86_64__)
    // Fusion pays where the workers split each block's strips (one join per block instead of one
    // per operator); measured on x86-64 only, so other CPUs keep the plain subgraph.
    if (!int8 && threads >= 2) return Backend::XnnpackFused;
#else
    (void)threads;
#endif
    return Backend::Xnnpack;
}

}  // namespace firesight::engine
