/* Classifies a flat grey image with the installed C API and prints the top class. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <firesight_runtime.h>

int main(int argc, char** argv) {
    if (argc != 2) return 2;
    firesight_engine* e = NULL;
    if (firesight_open(argv[1], NULL, &e) != FIRESIGHT_OK) {
        fprintf(stderr, "%s\n", firesight_last_error());
        return 1;
    }
    const int n = firesight_class_count(e);
    unsigned char* rgb = malloc(64 * 48 * 3);
    float* p = malloc(sizeof(float) * (size_t)n);
    memset(rgb, 128, 64 * 48 * 3);
    if (firesight_classify_rgb(e, rgb, 64, 48, 64 * 3, p, n) != FIRESIGHT_OK) {
        fprintf(stderr, "%s\n", firesight_last_error());
        return 1;
    }
    int best = 0;
    for (int c = 1; c < n; ++c)
        if (p[c] > p[best]) best = c;
    printf("c: firesight %s, %d classes, top %s\n", firesight_version(), n, firesight_class_name(e, best));
    free(rgb);
    free(p);
    firesight_close(e);
    return 0;
}
