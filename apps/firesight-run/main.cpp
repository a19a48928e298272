// firesight-run: classify images with an engine file, using only the runtime (no libtorch, no
// OpenCV), as it would run on a board. Inputs are binary PPM images or raw float32 tensors
// (size x size x 3, already preprocessed, with --raw).
#include <CLI/CLI.hpp>

#include <cstring>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <numeric>

#include "firesight/engine.h"
#include "firesight/error.h"
#include "firesight/fileio.h"
#include "ppm.h"

int main(int argc, char** argv) {
    using namespace firesight;
    CLI::App app{"firesight-run: classify images with a firesight engine file (.fse)"};
    std::string model, backend = engine::backend_available(engine::Backend::Xnnpack) ? "xnnpack" : "reference";
    std::vector<std::string> inputs;
    int threads = 1, top = 3;
    bool raw = false;
    app.add_option("--model,-m", model, "Engine file (.fse)")->required();
    app.add_option("--backend", backend, "reference or xnnpack");
    app.add_option("--threads", threads, "Worker threads")->check(CLI::Range(1, 256));
    app.add_option("--top,-k", top, "Classes to print per input")->check(CLI::PositiveNumber);
    app.add_flag("--raw", raw, "Inputs are raw float32 NHWC tensors, already preprocessed");
    app.add_option("inputs", inputs, "PPM (P6) images, or raw tensors with --raw")->required();
    CLI11_PARSE(app, argc, argv);
    try {
        const auto t0 = std::chrono::steady_clock::now();
        auto e = engine::Engine::load(model);
        engine::Session session(e, {engine::parse_backend(backend), threads});
        const auto load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        const auto& meta = e->metadata();
        const std::size_t per = static_cast<std::size_t>(meta.size) * meta.size * 3;
        int failures = 0;
        std::fprintf(stderr, "loaded %s in %.1f ms (%s, %d threads)\n", model.c_str(), load_ms, backend.c_str(), threads);
        for (const auto& path : inputs) {
            try {
                const auto bytes = read_file_bytes(path);
                std::vector<float> x;
                if (raw) {
                    if (bytes.size() != per * sizeof(float))
                        throw Error(path + ": raw tensor has " + std::to_string(bytes.size()) + " bytes, expected " +
                                    std::to_string(per * sizeof(float)));
                    x.resize(per);
                    std::memcpy(x.data(), bytes.data(), bytes.size());
                } else {
                    x = run::preprocess(run::decode_ppm(bytes, path), meta);
                }
                const auto probs = session.probabilities(x.data())[0];
                std::vector<std::size_t> order(probs.size());
                std::iota(order.begin(), order.end(), 0);
                const auto k = std::min<std::size_t>(static_cast<std::size_t>(top), order.size());
                std::partial_sort(order.begin(), order.begin() + static_cast<long>(k), order.end(),
                                  [&](auto a, auto b) { return probs[a] > probs[b]; });
                std::printf("%s", std::filesystem::path(path).filename().c_str());
                for (std::size_t i = 0; i < k; ++i) {
                    const auto c = order[i];
                    const std::string name = c < meta.class_names.size() ? meta.class_names[c] : std::to_string(c);
                    std::printf("  %s %.1f%%", name.c_str(), 100.0 * probs[c]);
                }
                std::printf("\n");
            } catch (const Error& err) {
                std::fprintf(stderr, "firesight-run: error: %s\n", err.what());
                ++failures;
            }
        }
        return failures ? 1 : 0;
    } catch (const std::exception& err) {
        std::fprintf(stderr, "firesight-run: error: %s\n", err.what());
        return 1;
    }
}
