// libFuzzer target: the engine-file loader on arbitrary bytes. Any input must either load into
// a graph that validates or be refused with firesight::Error; crashes, hangs and sanitizer
// reports are bugs.
#include <cstddef>
#include <cstdint>

#include "firesight/engine_ir.h"
#include "firesight/error.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    try {
        auto g = firesight::engine::parse_engine(data, size, nullptr, "fuzz.fse");
        // A file that loads must be runnable: plan it for batch 1 (shape inference over the graph).
        (void)firesight::engine::infer_shapes(g, 1);
    } catch (const firesight::Error&) {
    }
    return 0;
}
