// The C API (include/firesight_runtime.h) over Engine and Session: exceptions become a status and
// a per-thread message, nothing C++ crosses the boundary.
#include "firesight_runtime.h"

#include <algorithm>
#include <exception>
#include <memory>
#include <new>
#include <string>

#include "firesight/common/error.h"
#include "firesight/engine/preprocess.h"
#include "firesight/engine/session.h"

struct firesight_engine {
    std::shared_ptr<const firesight::engine::Engine> engine;
    std::unique_ptr<firesight::engine::Session> session;
};

namespace {

thread_local std::string g_last_error;

firesight_status fail(firesight_status status, std::string message) {
    g_last_error = std::move(message);
    return status;
}

// Runs `body`, turning any exception into FIRESIGHT_ERROR with its message.
template <class Body>
firesight_status guarded(const char* what, Body&& body) {
    try {
        return body();
    } catch (const std::bad_alloc&) {
        return fail(FIRESIGHT_ERROR, std::string(what) + ": out of memory");
    } catch (const std::exception& e) {
        return fail(FIRESIGHT_ERROR, std::string(what) + ": " + e.what());
    } catch (...) {
        return fail(FIRESIGHT_ERROR, std::string(what) + ": unknown error");
    }
}

firesight_status copy_probabilities(firesight_engine* e, std::span<const float> input, float* probabilities, int capacity) {
    const auto classes = e->session->output_size(0);
    if (!probabilities || capacity < classes)
        return fail(FIRESIGHT_INVALID_ARGUMENT, "room for " + std::to_string(capacity) + " probabilities, the engine has " +
                                                    std::to_string(classes) + " classes");
    const auto& out = e->session->run(input, 1);
    std::copy(out[0], out[0] + classes, probabilities);
    return FIRESIGHT_OK;
}

}  // namespace

extern "C" {

const char* firesight_version(void) { return FIRESIGHT_VERSION; }

const char* firesight_last_error(void) { return g_last_error.c_str(); }

firesight_status firesight_open(const char* path, const firesight_options* options, firesight_engine** engine) {
    if (!path || !engine) return fail(FIRESIGHT_INVALID_ARGUMENT, "firesight_open: path and engine must not be NULL");
    *engine = nullptr;
    return guarded("firesight_open", [&] {
        firesight::engine::SessionOptions o;
        if (options && options->backend) o.backend = firesight::engine::parse_backend(options->backend);
        if (options && options->threads > 0) o.threads = options->threads;
        auto e = std::make_unique<firesight_engine>();
        e->engine = firesight::engine::Engine::load(path);
        e->session = std::make_unique<firesight::engine::Session>(e->engine, o);
        *engine = e.release();
        return FIRESIGHT_OK;
    });
}

void firesight_close(firesight_engine* engine) { delete engine; }

int firesight_class_count(const firesight_engine* engine) {
    return engine ? static_cast<int>(engine->session->output_size(0)) : 0;
}

const char* firesight_class_name(const firesight_engine* engine, int index) {
    if (!engine || index < 0) return nullptr;
    const auto& names = engine->engine->metadata().class_names;
    return static_cast<std::size_t>(index) < names.size() ? names[static_cast<std::size_t>(index)].c_str() : nullptr;
}

const char* firesight_backend(const firesight_engine* engine) {
    return engine ? firesight::engine::backend_name(engine->session->backend()) : nullptr;
}

int firesight_input_size(const firesight_engine* engine) { return engine ? engine->engine->metadata().size : 0; }

firesight_status firesight_classify_rgb(firesight_engine* engine, const uint8_t* rgb, int width, int height, size_t stride,
                                        float* probabilities, int capacity) {
    if (!engine || !rgb) return fail(FIRESIGHT_INVALID_ARGUMENT, "firesight_classify_rgb: engine and rgb must not be NULL");
    return guarded("firesight_classify_rgb", [&] {
        const auto x = firesight::engine::preprocess_rgb(rgb, width, height, stride, engine->engine->metadata());
        return copy_probabilities(engine, x, probabilities, capacity);
    });
}

firesight_status firesight_classify_tensor(firesight_engine* engine, const float* input, size_t count, float* probabilities,
                                           int capacity) {
    if (!engine || !input) return fail(FIRESIGHT_INVALID_ARGUMENT, "firesight_classify_tensor: engine and input must not be NULL");
    return guarded("firesight_classify_tensor", [&] {
        const auto want = static_cast<std::size_t>(engine->session->input_size());
        if (count != want)
            return fail(FIRESIGHT_INVALID_ARGUMENT, "firesight_classify_tensor: " + std::to_string(count) + " floats given, the engine takes " +
                                                        std::to_string(want));
        return copy_probabilities(engine, std::span<const float>(input, count), probabilities, capacity);
    });
}

}  // extern "C"
