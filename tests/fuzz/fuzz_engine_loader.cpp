// libFuzzer target: the engine-file loader on arbitrary bytes. Any input must either be refused
// with firesight::Error, or load into a graph that runs as firesight-run runs it: an input of
// preprocess.size x size x 3 floats (sized from the metadata, not the graph), giving one value per
// class name. A file that loads but cannot run that way breaks the loader's promise and aborts;
// crashes, hangs and sanitizer reports are bugs too.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "firesight/engine/session.h"
#include "firesight/engine/ir.h"
#include "firesight/engine/format.h"
#include "firesight/common/error.h"

namespace {

using namespace firesight::engine;

// Every checksum recomputed, and the file size and the last section's size made to match the
// input, so mutations reach the graph and metadata parsers behind the CRCs (offsets as in
// docs/engine-format.md). Bytes the fix-up cannot make sense of are left for the loader to refuse.
std::vector<std::uint8_t> reseal(const std::uint8_t* data, std::size_t size) {
    std::vector<std::uint8_t> b(data, data + size);
    if (size < 160) return b;
    auto u64 = [&](std::size_t at) { std::uint64_t v; std::memcpy(&v, b.data() + at, 8); return v; };
    const std::uint64_t n = size;
    std::memcpy(b.data() + 16, &n, 8);
    const std::size_t meta = 64 + 2 * 32;
    if (u64(meta + 8) <= n) {
        const std::uint64_t rest = n - u64(meta + 8);
        std::memcpy(b.data() + meta + 16, &rest, 8);
    }
    for (std::size_t e = 64; e < 160; e += 32) {
        const auto off = u64(e + 8), len = u64(e + 16);
        if (off > n || len > n - off) continue;
        const std::uint32_t c = crc32(b.data() + off, len);
        std::memcpy(b.data() + e + 24, &c, 4);
    }
    std::vector<std::uint8_t> covered(b.begin(), b.begin() + 24);
    covered.insert(covered.end(), b.begin() + 64, b.begin() + 160);
    const std::uint32_t h = crc32(covered.data(), covered.size());
    std::memcpy(b.data() + 24, &h, 4);
    return b;
}

[[noreturn]] void accepted_but_broken(const std::string& why) {
    std::fprintf(stderr, "the loader accepted a file that cannot run as firesight-run runs it: %s\n", why.c_str());
    std::abort();
}

// A small valid graph can still describe a big network; running one would only make the fuzzer
// slow, not find memory errors, so graphs over this much work are loaded but not run.
constexpr std::int64_t kMaxMacs = 20'000'000, kMaxActivationFloats = 4'000'000;

bool small_enough(const Graph& g) {
    if (count_macs(g) > kMaxMacs) return false;
    std::int64_t floats = 0;
    for (const auto& s : infer_shapes(g, 1)) {
        std::int64_t n = 1;
        for (auto d : s) n *= d;
        floats += n;
    }
    return floats <= kMaxActivationFloats;
}

void load_and_run(const std::uint8_t* data, std::size_t size) {
    Graph g;
    try {
        g = parse_engine(data, size, nullptr, "fuzz.fse");
    } catch (const firesight::Error&) {
        return;  // refused: what the loader should do with a bad file
    }
    if (!small_enough(g)) return;
    const Metadata meta = g.metadata;
    std::vector<float> x(static_cast<std::size_t>(meta.size) * static_cast<std::size_t>(meta.size) * 3, 0.25f);
    try {
        Session s(Engine::from_graph(std::move(g)), {Backend::Reference, 1});
        const auto probs = s.probabilities(x).at(0);
        if (!meta.class_names.empty() && probs.size() != meta.class_names.size())
            accepted_but_broken(std::to_string(probs.size()) + " outputs for " + std::to_string(meta.class_names.size()) + " class names");
    } catch (const firesight::Error& e) {
        accepted_but_broken(e.what());
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    load_and_run(data, size);  // as given: exercises the checksum and framing checks
    const auto sealed = reseal(data, size);  // and with valid checksums: everything behind them
    load_and_run(sealed.data(), sealed.size());
    return 0;
}
