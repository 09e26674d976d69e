/* classify.c — classify one face with a compiled fergc plan through the C API.
 *
 *   cc classify.c -I../../Sources/CFergc/include -L<products> -lfergc_runtime -o classify
 *   LD_LIBRARY_PATH=<products>:/opt/swift/usr/lib/swift/linux ./classify model.plan [face.pgm]
 *
 * With a PGM (binary P5, 8-bit, of the plan's input size, 48x48 for FER2013 models) it
 * classifies that image; without one, a synthetic image. Prints the predicted emotion and the
 * probability of every class. Exit status: 0 on success, 1 on an error (message on stderr).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fergc.h"

/* Reads a binary 8-bit PGM of exactly width x height into pixels; 0 on success. */
static int read_pgm(const char *path, int width, int height, unsigned char *pixels) {
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "error: %s: cannot open\n", path); return -1; }
    char magic[3] = {0};
    int values[3], n = 0, c;
    if (fread(magic, 1, 2, f) != 2 || strcmp(magic, "P5") != 0) {
        fprintf(stderr, "error: %s: not a binary PGM (P5)\n", path);
        fclose(f);
        return -1;
    }
    while (n < 3) { /* width, height, maxval; skipping whitespace and # comments */
        c = fgetc(f);
        if (c == '#') { while (c != '\n' && c != EOF) c = fgetc(f); continue; }
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
        if (c < '0' || c > '9') { fprintf(stderr, "error: %s: bad PGM header\n", path); fclose(f); return -1; }
        ungetc(c, f);
        if (fscanf(f, "%d", &values[n++]) != 1) { fprintf(stderr, "error: %s: bad PGM header\n", path); fclose(f); return -1; }
    }
    fgetc(f); /* the single whitespace before the pixels */
    if (values[0] != width || values[1] != height || values[2] != 255) {
        fprintf(stderr, "error: %s: image is %dx%d (maxval %d); the plan takes %dx%d 8-bit images\n",
                path, values[0], values[1], values[2], width, height);
        fclose(f);
        return -1;
    }
    size_t want = (size_t)width * (size_t)height;
    size_t got = fread(pixels, 1, want, f);
    fclose(f);
    if (got != want) { fprintf(stderr, "error: %s: truncated (%zu of %zu pixels)\n", path, got, want); return -1; }
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s MODEL.plan [FACE.pgm]\n", argv[0]);
        return 2;
    }
    char err[512];
    fergc_plan *plan = fergc_plan_load(argv[1], err, sizeof err);
    if (!plan) { fprintf(stderr, "error: %s\n", err); return 1; }

    int dims[8];
    int rank = fergc_plan_input_shape(plan, dims, 8);
    int size = fergc_plan_input_size(plan);
    int classes = fergc_plan_classes(plan);
    int height = rank >= 2 ? dims[rank - 2] : 0, width = rank >= 1 ? dims[rank - 1] : 0;
    printf("plan: %s (fergc %s), input", fergc_plan_name(plan), fergc_version());
    for (int i = 0; i < rank; i++) printf("%s%d", i ? "x" : " ", dims[i]);
    printf(", %d classes\n", classes);
    if (size != width * height) {
        fprintf(stderr, "error: the plan's input is not one grayscale image\n");
        fergc_plan_free(plan);
        return 1;
    }

    unsigned char *pixels = malloc((size_t)size);
    float *probs = malloc(sizeof(float) * (size_t)classes);
    if (argc == 3) {
        if (read_pgm(argv[2], width, height, pixels) != 0) { free(pixels); free(probs); fergc_plan_free(plan); return 1; }
        printf("image: %s\n", argv[2]);
    } else {
        for (int y = 0; y < height; y++)
            for (int x = 0; x < width; x++)
                pixels[y * width + x] = (unsigned char)(128 + 100 * sin(x / 6.0) * cos(y / 9.0));
        printf("image: synthetic %dx%d\n", width, height);
    }

    fergc_session *session = fergc_session_new(plan);
    if (!session) { fprintf(stderr, "error: cannot create a session\n"); free(pixels); free(probs); fergc_plan_free(plan); return 1; }
    if (fergc_predict_u8(session, pixels, 1, probs, err, sizeof err) != 0) {
        fprintf(stderr, "error: %s\n", err);
        fergc_session_free(session);
        fergc_plan_free(plan);
        free(pixels);
        free(probs);
        return 1;
    }
    int best = 0;
    for (int i = 1; i < classes; i++) if (probs[i] > probs[best]) best = i;
    printf("emotion: %s\n", fergc_plan_class_name(plan, best));
    for (int i = 0; i < classes; i++) printf("  %-10s %.6f\n", fergc_plan_class_name(plan, i), probs[i]);

    fergc_session_free(session);
    fergc_plan_free(plan);
    free(pixels);
    free(probs);
    return 0;
}
