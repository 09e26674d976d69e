// The hot loops of face detection (Sources/Vision drives them): per-scale bilinear resize,
// integral and squared integral images, and the evaluation of a Haar cascade over every window
// of every scale, spread over threads. Plain C; no allocation the caller cannot bound.
#ifndef CVISION_H
#define CVISION_H

#include <stddef.h>
#include <stdint.h>

/// A Haar cascade flattened for evaluation. Trees are stored as nodes and leaves; a stump has
/// one node (left = 0, right = -1: leaves 0 and 1). Child indices are relative to the tree's
/// first node; a child <= 0 names leaf -child of the tree. Features have up to 3 rectangles
/// (x, y, w, h inside the window; weight 0 for an unused rectangle).
typedef struct {
    int window_w, window_h;
    int nstages;
    const int *stage_trees;        // nstages: trees per stage
    const float *stage_threshold;  // nstages
    int ntrees;
    const int *tree_nodes;         // ntrees: nodes per tree
    int nnodes;
    const int *node_left, *node_right, *node_feature;  // nnodes
    const float *node_threshold;   // nnodes
    const float *leaves;           // leaves, tree after tree: tree_nodes[t] + 1 each
    int nfeatures;
    const int *feature_rects;      // nfeatures * 3 * 4
    const float *feature_weights;  // nfeatures * 3
} cv_cascade;

/// One candidate window in image coordinates.
typedef struct { int x, y, w, h; } cv_rect;

/// Scans `image` (8-bit gray, width x height, `stride` bytes per row) at each of `nscales`
/// scales (factors >= 1: the image is resized to round(width/scale) x round(height/scale) and
/// the cascade's window slides over it, every pixel when scale >= 2, every second one below),
/// using `threads` threads. Writes up to `capacity` windows every stage accepted into `out`
/// and returns how many were accepted in all (which may exceed capacity: call again with more
/// room), or -1 if memory ran out.
long cv_detect(const cv_cascade *cascade, const uint8_t *image, int width, int height, int stride,
               const float *scales, int nscales, int threads, cv_rect *out, long capacity);

/// Bilinear resize of 8-bit gray with OpenCV's INTER_LINEAR_EXACT arithmetic (pixel centres
/// aligned, 8-bit fixed-point weights, rounded). dst is dw x dh, tightly packed.
void cv_resize_linear(const uint8_t *src, int sw, int sh, int sstride, uint8_t *dst, int dw, int dh);

/// Area-average resize (OpenCV's INTER_AREA for shrinking; bilinear when enlarging).
void cv_resize_area(const uint8_t *src, int sw, int sh, int sstride, uint8_t *dst, int dw, int dh);

#endif
