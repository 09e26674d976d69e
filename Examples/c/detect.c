/* detect.c — find the faces in a photo and classify their emotions through the C API.
 *
 *   cc detect.c -I../../Sources/CFergc/include -L<products> -lfergc_runtime -o detect
 *   LD_LIBRARY_PATH=<products>:/opt/swift/usr/lib/swift/linux ./detect model.plan photo.ppm [cascade.xml]
 *
 * The photo is a binary PPM (P6, RGB) or PGM (P5, gray), 8-bit — e.g. `convert photo.jpg
 * photo.ppm`; the cascade defaults to Debian opencv-data's haarcascade_frontalface_default.xml.
 * Prints one line per face: its box, the top emotion and the seven probabilities.
 * Exit status: 0 on success (faces or none), 1 on an error (message on stderr).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fergc.h"

/* Reads a binary 8-bit PPM or PGM; returns malloc'ed pixels or NULL. */
static unsigned char *read_pnm(const char *path, int *width, int *height, int *channels) {
    FILE *f = fopen(path, "rb");
    if (!f) { fprintf(stderr, "error: %s: cannot open\n", path); return NULL; }
    char magic[3] = {0};
    int v[3], n = 0, c;
    if (fread(magic, 1, 2, f) != 2 || (strcmp(magic, "P6") != 0 && strcmp(magic, "P5") != 0)) {
        fprintf(stderr, "error: %s: not a binary PPM (P6) or PGM (P5)\n", path);
        fclose(f);
        return NULL;
    }
    while (n < 3) {
        c = fgetc(f);
        if (c == '#') { while (c != '\n' && c != EOF) c = fgetc(f); continue; }
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r') continue;
        if (c < '0' || c > '9') { fprintf(stderr, "error: %s: bad header\n", path); fclose(f); return NULL; }
        ungetc(c, f);
        if (fscanf(f, "%d", &v[n++]) != 1) { fprintf(stderr, "error: %s: bad header\n", path); fclose(f); return NULL; }
    }
    fgetc(f);
    if (v[0] <= 0 || v[1] <= 0 || v[0] > 32768 || v[1] > 32768 || v[2] != 255) {
        fprintf(stderr, "error: %s: unsupported size %dx%d or maxval %d\n", path, v[0], v[1], v[2]);
        fclose(f);
        return NULL;
    }
    *width = v[0]; *height = v[1]; *channels = magic[1] == '6' ? 3 : 1;
    size_t want = (size_t)v[0] * (size_t)v[1] * (size_t)*channels;
    unsigned char *pixels = malloc(want);
    if (!pixels || fread(pixels, 1, want, f) != want) {
        fprintf(stderr, "error: %s: truncated\n", path);
        free(pixels);
        fclose(f);
        return NULL;
    }
    fclose(f);
    return pixels;
}

int main(int argc, char **argv) {
    if (argc < 3 || argc > 4) {
        fprintf(stderr, "usage: %s MODEL.plan PHOTO.ppm [CASCADE.xml]\n", argv[0]);
        return 2;
    }
    char err[512];
    int width, height, channels;
    unsigned char *pixels = read_pnm(argv[2], &width, &height, &channels);
    if (!pixels) return 1;
    fergc_plan *plan = fergc_plan_load(argv[1], err, sizeof err);
    if (!plan) { fprintf(stderr, "error: %s\n", err); free(pixels); return 1; }
    fergc_detector *detector = fergc_detector_load(argc == 4 ? argv[3] : NULL, err, sizeof err);
    if (!detector) { fprintf(stderr, "error: %s\n", err); fergc_plan_free(plan); free(pixels); return 1; }
    fergc_session *session = fergc_session_new(plan);

    enum { MAX_FACES = 64 };
    int classes = fergc_plan_classes(plan);
    fergc_box boxes[MAX_FACES];
    float *probs = malloc(sizeof(float) * MAX_FACES * (size_t)classes);
    int n = fergc_detect_classify(session, detector, pixels, width, height, width * channels, channels,
                                  boxes, probs, MAX_FACES, err, sizeof err);
    int status = 0;
    if (n < 0) {
        fprintf(stderr, "error: %s\n", err);
        status = 1;
    } else {
        printf("%s: %dx%d, %d face(s)\n", argv[2], width, height, n);
        for (int i = 0; i < n && i < MAX_FACES; i++) {
            const float *p = probs + i * classes;
            int best = 0;
            for (int j = 1; j < classes; j++) if (p[j] > p[best]) best = j;
            printf("face %d: box [%d, %d, %d, %d] %s %.3f |", i, boxes[i].x, boxes[i].y, boxes[i].width, boxes[i].height,
                   fergc_plan_class_name(plan, best), p[best]);
            for (int j = 0; j < classes; j++) printf(" %s %.4f", fergc_plan_class_name(plan, j), p[j]);
            printf("\n");
        }
    }
    free(probs);
    fergc_session_free(session);
    fergc_detector_free(detector);
    fergc_plan_free(plan);
    free(pixels);
    return status;
}
