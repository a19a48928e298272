// backend_interleave_bench: one engine on several backends in one process, their runs alternated
// one by one, so every backend sees the same moments of load (a shared 2-core machine swings
// between one and two free cores within seconds, which rounds of separate processes average
// only coarsely). Usage:
//   backend_interleave_bench ENGINE.fse THREADS RUNS BACKEND...      e.g. m.fse 2 500 xnnpack xnnpack-fused
// Prints per backend the median, the 10th percentile and the lowest run in ms, and the median of
// the per-run ratios to the first backend (run i of each backend ran back to back).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "firesight/common/error.h"
#include "firesight/engine/session.h"

namespace {

double quantile(std::vector<double> v, double q) {
    std::sort(v.begin(), v.end());
    return v[static_cast<std::size_t>(q * static_cast<double>(v.size() - 1))];
}

}  // namespace

int main(int argc, char** argv) try {
    using namespace firesight;
    if (argc < 5) {
        std::fprintf(stderr, "usage: backend_interleave_bench ENGINE.fse THREADS RUNS BACKEND...\n");
        return 2;
    }
    const auto engine = engine::Engine::load(argv[1]);
    const int threads = std::atoi(argv[2]), runs = std::atoi(argv[3]);
    std::vector<std::unique_ptr<engine::Session>> sessions;
    for (int i = 4; i < argc; ++i)
        sessions.push_back(std::make_unique<engine::Session>(engine, engine::SessionOptions{engine::parse_backend(argv[i]), threads}));
    const auto in = engine->inputs().at(0);  // inputs() returns a copy
    std::size_t n = 1;
    for (std::size_t i = 1; i < in.shape.size(); ++i) n *= static_cast<std::size_t>(in.shape[i]);
    std::vector<float> x(n);
    for (std::size_t i = 0; i < n; ++i) x[i] = static_cast<float>(std::sin(0.37 * static_cast<double>(i % 1009)));  // as firesight-run --bench
    std::vector<std::vector<double>> ms(sessions.size());
    for (int r = -runs / 10 - 2; r < runs; ++r)
        for (std::size_t k = 0; k < sessions.size(); ++k) {
            const auto t0 = std::chrono::steady_clock::now();
            sessions[k]->run(x, 1);
            const double t = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
            if (r >= 0) ms[k].push_back(t);
        }
    std::printf("%s, %d threads, %d alternated runs each\n%-16s %9s %9s %9s %14s\n", argv[1], threads, runs, "backend", "median", "p10",
                "min", "ratio median");
    for (std::size_t k = 0; k < sessions.size(); ++k) {
        std::vector<double> ratio;
        for (std::size_t i = 0; i < ms[k].size(); ++i) ratio.push_back(ms[k][i] / ms[0][i]);
        std::printf("%-16s %9.3f %9.3f %9.3f %14.3f\n", argv[4 + k], quantile(ms[k], 0.5), quantile(ms[k], 0.1), quantile(ms[k], 0.0),
                    quantile(ratio, 0.5));
    }
    return 0;
} catch (const firesight::Error& e) {
    std::fprintf(stderr, "backend_interleave_bench: %s\n", e.what());
    return 1;
}
