// engine_load_bench: how long an engine file takes to become a session ready to run, split into
// the file load (mmap + checks + validation) and the backend's preparation (xnnpack packs its
// weights), median of repeated loads. Usage: engine_load_bench MODEL.fse [REPEATS] [THREADS]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include "firesight/engine/session.h"
#include "firesight/common/error.h"

int main(int argc, char** argv) {
    using namespace firesight;
    using Clock = std::chrono::steady_clock;
    if (argc < 2) {
        std::fprintf(stderr, "usage: engine_load_bench MODEL.fse [REPEATS] [THREADS]\n");
        return 2;
    }
    const int repeats = argc > 2 ? std::max(1, std::atoi(argv[2])) : 30;
    const int threads = argc > 3 ? std::max(1, std::atoi(argv[3])) : 2;
    auto median = [](std::vector<double> v) {
        std::sort(v.begin(), v.end());
        return v[v.size() / 2];
    };
    try {
        std::printf("%-12s %12s %14s %12s\n", "backend", "load ms", "prepare ms", "total ms");
        for (auto b : {engine::Backend::Reference, engine::Backend::Xnnpack}) {
            if (!engine::backend_available(b)) continue;
            std::vector<double> load, prep;
            for (int i = 0; i < repeats; ++i) {
                const auto t0 = Clock::now();
                auto e = engine::Engine::load(argv[1]);
                const auto t1 = Clock::now();
                engine::Session s(e, {b, threads});
                s.prepare(1);
                const auto t2 = Clock::now();
                load.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
                prep.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
            }
            std::printf("%-12s %12.2f %14.2f %12.2f\n", engine::backend_name(b), median(load), median(prep),
                        median(load) + median(prep));
        }
    } catch (const Error& e) {
        std::fprintf(stderr, "engine_load_bench: error: %s\n", e.what());
        return 1;
    }
    return 0;
}
