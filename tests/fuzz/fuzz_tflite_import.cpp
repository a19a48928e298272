// libFuzzer target: the bounds-checked .tflite reader, and the engine builder on whatever it
// accepts. Both must refuse bad input with firesight::Error and never crash.
#include <cstddef>
#include <cstdint>

#include "firesight/engine/ir.h"
#include "firesight/builder/tflite_graph.h"
#include "firesight/common/error.h"
#include "firesight/import/tflite.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    try {
        const auto model = firesight::tflite::parse_model(data, size);
        (void)firesight::engine::graph_from_tflite(model);
    } catch (const firesight::Error&) {
    }
    return 0;
}
