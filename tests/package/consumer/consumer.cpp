// Loads an engine with the installed C++ API and prints its classes and input size.
#include <cstdio>

#include "firesight/engine/session.h"

int main(int argc, char** argv) {
    if (argc != 2) return 2;
    auto engine = firesight::engine::Engine::load(argv[1]);
    firesight::engine::Session session(engine);
    std::printf("c++: %zu classes, input %d, backend %s\n", engine->metadata().class_names.size(), engine->metadata().size,
                firesight::engine::backend_name(session.backend()));
    return 0;
}
