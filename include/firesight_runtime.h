/* firesight_runtime.h: the firesight runtime's C API.
 *
 * Load an engine file (.fse, made by `firesight build` or `firesight optimize`), classify RGB
 * images with it, read class probabilities, close it. For C programs and for bindings (Python
 * ctypes, Go cgo, Rust FFI) that should not need C++. Link with -lfiresight_runtime (pkg-config
 * or CMake: find_package(firesight) and target firesight::runtime).
 *
 *     firesight_engine* e = NULL;
 *     if (firesight_open("model.fse", NULL, &e) != FIRESIGHT_OK) {
 *         fprintf(stderr, "%s\n", firesight_last_error());
 *         return 1;
 *     }
 *     float p[16];
 *     if (firesight_classify_rgb(e, pixels, width, height, width * 3, p, 16) == FIRESIGHT_OK)
 *         for (int c = 0; c < firesight_class_count(e); ++c)
 *             printf("%s %.1f%%\n", firesight_class_name(e, c), 100.0 * p[c]);
 *     firesight_close(e);
 *
 * Errors: every call that can fail returns a firesight_status; firesight_last_error() then says
 * why, in words, for the calling thread. Threads: one firesight_engine may be used by one thread
 * at a time; open one per thread to classify in parallel (the weights are memory-mapped and
 * shared by the operating system). */
#ifndef FIRESIGHT_RUNTIME_H
#define FIRESIGHT_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define FIRESIGHT_RUNTIME_API_VERSION 1

typedef enum firesight_status {
    FIRESIGHT_OK = 0,
    FIRESIGHT_ERROR = 1,            /* the call failed: see firesight_last_error() */
    FIRESIGHT_INVALID_ARGUMENT = 2, /* a null pointer, a size that does not fit, an unknown name */
} firesight_status;

typedef struct firesight_engine firesight_engine; /* an engine file loaded with its inference session */

typedef struct firesight_options {
    const char* backend; /* "auto" (or NULL), "xnnpack", "reference", "native-int8" or "xnnpack-fused" */
    int threads;         /* worker threads; 0 means 1 */
} firesight_options;

/* The library's version, e.g. "0.1.0". */
const char* firesight_version(void);

/* Why the last failed call of this thread failed ("" if none has). Valid until the thread's next
 * failing call. */
const char* firesight_last_error(void);

/* Loads an engine file. options may be NULL (auto backend, 1 thread). On success *engine is set
 * and must be released with firesight_close(). A truncated or foreign file is refused with the
 * reason. */
firesight_status firesight_open(const char* path, const firesight_options* options, firesight_engine** engine);

/* Releases an engine (NULL is ignored). */
void firesight_close(firesight_engine* engine);

/* The engine's classes, in output order (for example fire, neutral, smoke). The name is valid
 * until firesight_close(); NULL for an index out of range. */
int firesight_class_count(const firesight_engine* engine);
const char* firesight_class_name(const firesight_engine* engine, int index);

/* The backend this engine runs on ("auto" resolved, e.g. "xnnpack") and its square input size. */
const char* firesight_backend(const firesight_engine* engine);
int firesight_input_size(const firesight_engine* engine);

/* Classifies one RGB image: `rgb` holds height rows of `stride` bytes (>= width * 3), 3 bytes
 * (R, G, B) per pixel. It is resized and centre-cropped as the engine was trained. Writes
 * firesight_class_count() probabilities (summing to 1) into `probabilities`, which holds
 * `capacity` floats. */
firesight_status firesight_classify_rgb(firesight_engine* engine, const uint8_t* rgb, int width, int height, size_t stride,
                                        float* probabilities, int capacity);

/* Runs on an already preprocessed input: input_size x input_size x 3 floats (HWC, the engine's
 * normalisation applied). `count` must be exactly that many. */
firesight_status firesight_classify_tensor(firesight_engine* engine, const float* input, size_t count, float* probabilities,
                                           int capacity);

#ifdef __cplusplus
}
#endif

#endif /* FIRESIGHT_RUNTIME_H */
