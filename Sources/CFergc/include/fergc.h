/* fergc.h — the C API of the fergc runtime (libfergc_runtime.so).
 *
 * Load a compiled .plan once, create one session per thread, classify images:
 *
 *     char err[512];
 *     fergc_plan *plan = fergc_plan_load("vgg_tuned.plan", err, sizeof err);
 *     if (!plan) { fprintf(stderr, "%s\n", err); return 1; }
 *     fergc_session *s = fergc_session_new(plan);
 *     float probs[7];
 *     if (fergc_predict(s, image, 1, probs, err, sizeof err) != 0) { ... }
 *     fergc_session_free(s);
 *     fergc_plan_free(plan);
 *
 * Threads: a fergc_plan is immutable once loaded; any number of threads may use it (and create
 * sessions from it) at once. A fergc_session is not thread-safe: use each from one thread at a
 * time. A session keeps the model it was created from alive, so the plan and its sessions may be
 * freed in any order (class names and the plan name belong to the plan handle, though).
 *
 * Errors: functions that can fail return NULL or a non-zero int and, when err is non-NULL and
 * errlen > 0, write a NUL-terminated message (truncated to errlen - 1 bytes) into err.
 * Passing NULL handles is an error, never a crash.
 *
 * Linking: cc app.c -I<fergc>/Sources/CFergc/include -L<products> -lfergc_runtime; at run time
 * libfergc_runtime.so needs the Swift runtime libraries (e.g. /opt/swift/usr/lib/swift/linux)
 * and OpenBLAS on the library path.
 */
#ifndef FERGC_H
#define FERGC_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct fergc_plan fergc_plan;
typedef struct fergc_session fergc_session;

/* The runtime's version, e.g. "0.1.0" (static storage). */
const char *fergc_version(void);

/* Reads, checks (magic, version, CRCs) and validates a .plan file. NULL on error. */
fergc_plan *fergc_plan_load(const char *path, char *err, size_t errlen);
/* The same from the bytes of a .plan file in memory (copied). */
fergc_plan *fergc_plan_load_memory(const void *bytes, size_t length, char *err, size_t errlen);
void fergc_plan_free(fergc_plan *plan);

/* The model's name (owned by the plan). */
const char *fergc_plan_name(const fergc_plan *plan);
/* Number of classes (7 for FER2013); -1 for a NULL plan. */
int fergc_plan_classes(const fergc_plan *plan);
/* Name of class i, owned by the plan; NULL if i is out of range. */
const char *fergc_plan_class_name(const fergc_plan *plan, int i);
/* Per-image input shape, e.g. {1, 48, 48}: writes up to maxdims dims into dims (which may be
 * NULL when maxdims is 0) and returns the rank; -1 for a NULL plan. */
int fergc_plan_input_shape(const fergc_plan *plan, int *dims, int maxdims);
/* Floats per image (the product of the input shape); -1 for a NULL plan. */
int fergc_plan_input_size(const fergc_plan *plan);
/* What raw 0..255 pixels are multiplied by before entering the plan. */
float fergc_plan_input_scale(const fergc_plan *plan);
/* The largest batch one run takes (fergc_predict splits larger n itself). */
int fergc_plan_max_batch(const fergc_plan *plan);

/* A session: the plan's buffers and scratch, for one thread. NULL on error. */
fergc_session *fergc_session_new(const fergc_plan *plan);
/* The same, writing the reason for a NULL (e.g. the plan needs more memory than the machine
 * has) to err (errlen bytes, NUL-terminated; err may be NULL). */
fergc_session *fergc_session_new_err(const fergc_plan *plan, char *err, size_t errlen);
void fergc_session_free(fergc_session *session);

/* Classifies n images (n * fergc_plan_input_size floats, already multiplied by the input
 * scale, image-major, row-major within an image). Writes n * classes probabilities to
 * probs_out, image-major. Returns 0, or -1 on error (a NaN or infinite value in the images is
 * an error naming the image). */
int fergc_predict(fergc_session *session, const float *images, int n, float *probs_out,
                  char *err, size_t errlen);
/* The same from raw 8-bit pixels; the plan's input scale is applied. */
int fergc_predict_u8(fergc_session *session, const unsigned char *pixels, int n,
                     float *probs_out, char *err, size_t errlen);

/* Face detection and classification on a photo (a Haar cascade with OpenCV 4's
 * detectMultiScale semantics: scale 1.1, 5 neighbours, faces of at least 30 px).
 *
 *     fergc_detector *d = fergc_detector_load(NULL, err, sizeof err);   // the default cascade
 *     fergc_box boxes[16];
 *     float probs[16 * 7];
 *     int n = fergc_detect_classify(s, d, rgb, width, height, width * 3, 3, boxes, probs, 16, err, sizeof err);
 *
 * A detector is immutable once loaded; any number of threads may use it at once. */
typedef struct fergc_detector fergc_detector;

/* A face's box in image pixels. */
typedef struct { int x, y, width, height; } fergc_box;

/* Loads a Haar cascade (OpenCV's XML, the traincascade format); NULL loads
 * /usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml (Debian's opencv-data).
 * NULL on error. */
fergc_detector *fergc_detector_load(const char *cascade_path, char *err, size_t errlen);
void fergc_detector_free(fergc_detector *detector);

/* Finds the faces in an 8-bit image of width x height pixels, `stride` bytes per row, with
 * `channels` 1 (gray) or 3 (RGB, interleaved; turned to gray with OpenCV's BGR2GRAY weights),
 * crops each (its box made square, resized to the plan's input) and classifies it. Writes the
 * first min(n, max_faces) boxes to boxes and their probabilities to probs (classes floats per
 * face); boxes and probs may be NULL when max_faces is 0. Returns n, the number of faces found
 * (0 for none), or -1 on error. Faces come top to bottom, then left to right. */
int fergc_detect_classify(fergc_session *session, const fergc_detector *detector,
                          const unsigned char *pixels, int width, int height, int stride, int channels,
                          fergc_box *boxes, float *probs, int max_faces, char *err, size_t errlen);

#ifdef __cplusplus
}
#endif

#endif /* FERGC_H */
