// The runtime's backends: their names, which are built and usable on this CPU, and what Auto picks.
#pragma once
#include <string>

namespace firesight::engine {

// NativeInt8: firesight's own AVX512-VNNI kernels for int8 graphs, byte-identical to the
// reference (and so to XNNPACK's int8) on any number of threads. On CPUs without AVX512-VNNI, and
// for f32 ops, it runs the slow reference kernels: choose it for int8 engines on VNNI CPUs only.
// XnnpackFused: XNNPACK with each f32 inverted-residual block (1x1 expand, 3x3 depthwise, 1x1
// project, residual add) whose expanded tensor is 1 MiB or more run fused in strips of rows, so
// that tensor stays in cache; everything else as on Xnnpack (docs/fused-blocks.md).
// Auto: the session picks for the engine and this CPU (see resolve_backend); a Session never
// runs on Auto itself.
enum class Backend { Reference, Xnnpack, NativeInt8, XnnpackFused, Auto };
Backend parse_backend(const std::string& name);  // "auto" | "reference" | "xnnpack" | "native-int8" | "xnnpack-fused"
const char* backend_name(Backend b);
bool backend_available(Backend b);
// The CPU has the instructions native-int8's fast kernels need (AVX512F/BW/VL/DQ and VNNI).
bool native_int8_fast();

struct Graph;
// What Auto means for this graph here: native-int8 for a graph with any int8 tensor on a CPU where
// native_int8_fast(), otherwise xnnpack (Debian's has no VNNI kernels, but it is still faster than
// the reference kernels native-int8 would fall back to), and reference where xnnpack is not built.
// On x86-64, an f32 graph run on `threads` >= 2 gets xnnpack-fused (docs/peers.md: 2.76 against
// 3.35 ms for MobileNetV2 at 2 threads; at 1 thread fusion gains nothing). Any other backend is
// returned unchanged.
Backend resolve_backend(Backend b, const Graph& g, int threads = 1);

struct Op;
// Whether backend `b` runs `op` of `g` (each backend declares the ops it takes); when it does not,
// `why` (if given) says what it lacks. A Session refuses a graph with an op its backend does not
// take, naming the op, before it builds anything. `b` must not be Auto.
bool backend_supports(Backend b, const Graph& g, const Op& op, std::string* why = nullptr);

}  // namespace firesight::engine
