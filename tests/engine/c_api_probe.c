/* A C program (C99, no C++) on the runtime's C API, as a binding would use it. Usage:
 *   c_api_probe ENGINE          classify a fixed 37x23 RGB pattern (rows padded to 116 bytes) and
 *                               print "class <name> <probability>" lines
 * Also checks the error paths; prints "ok" last when everything behaved as documented, and exits
 * non-zero otherwise. tests/engine/test_c_api.cpp compares its output with the C++ Session. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "firesight_runtime.h"

enum { kWidth = 37, kHeight = 23, kStride = kWidth * 3 + 5 };

static int failures = 0;
static void expect(int ok, const char* what) {
    if (!ok) {
        fprintf(stderr, "c_api_probe: FAILED: %s (last error: %s)\n", what, firesight_last_error());
        ++failures;
    }
}

int main(int argc, char** argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: c_api_probe ENGINE\n");
        return 2;
    }
    printf("version %s\n", firesight_version());

    firesight_engine* missing = (firesight_engine*)1;
    expect(firesight_open("/nonexistent/model.fse", NULL, &missing) == FIRESIGHT_ERROR, "a missing file is an error");
    expect(missing == NULL, "a failed open leaves the engine NULL");
    expect(strstr(firesight_last_error(), "/nonexistent/model.fse") != NULL, "the error names the file");
    expect(firesight_open(NULL, NULL, &missing) == FIRESIGHT_INVALID_ARGUMENT, "a NULL path is an invalid argument");
    firesight_options bad = {"no-such-backend", 1};
    expect(firesight_open(argv[1], &bad, &missing) == FIRESIGHT_ERROR, "an unknown backend is an error");
    expect(strstr(firesight_last_error(), "no-such-backend") != NULL, "the error names the backend");

    firesight_options options = {"reference", 1};
    firesight_engine* e = NULL;
    if (firesight_open(argv[1], &options, &e) != FIRESIGHT_OK) {
        fprintf(stderr, "c_api_probe: %s\n", firesight_last_error());
        return 1;
    }
    printf("backend %s\ninput %d\n", firesight_backend(e), firesight_input_size(e));
    const int n = firesight_class_count(e);
    expect(n > 0, "the engine has classes");
    expect(firesight_class_name(e, n) == NULL && firesight_class_name(e, -1) == NULL, "no class name out of range");

    static unsigned char rgb[kHeight * kStride];
    for (int y = 0; y < kHeight; ++y)
        for (int x = 0; x < kWidth; ++x)
            for (int c = 0; c < 3; ++c) rgb[y * kStride + x * 3 + c] = (unsigned char)((x * 7 + y * 13 + c * 50) & 255);
    float* p = calloc((size_t)n, sizeof(float));
    expect(firesight_classify_rgb(e, rgb, kWidth, kHeight, kStride, p, n - 1) == FIRESIGHT_INVALID_ARGUMENT,
           "too small an output array is refused");
    expect(firesight_classify_rgb(e, rgb, kWidth, kHeight, kWidth * 3 - 1, p, n) == FIRESIGHT_ERROR, "a short stride is refused");
    float wrong[5];
    expect(firesight_classify_tensor(e, wrong, 5, p, n) == FIRESIGHT_INVALID_ARGUMENT, "a wrong tensor size is refused");
    expect(firesight_classify_rgb(e, rgb, kWidth, kHeight, kStride, p, n) == FIRESIGHT_OK, "classify an RGB image");
    double sum = 0;
    for (int c = 0; c < n; ++c) {
        printf("class %s %.9g\n", firesight_class_name(e, c), p[c]);
        sum += p[c];
    }
    expect(sum > 0.999 && sum < 1.001, "probabilities sum to 1");
    free(p);
    firesight_close(e);
    firesight_close(NULL);
    if (failures) return 1;
    printf("ok\n");
    return 0;
}
