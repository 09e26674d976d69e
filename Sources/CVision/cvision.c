// See include/cvision.h. The detection follows OpenCV 4's CPU cascade evaluation (read, not
// copied): an image pyramid, one integral and one squared integral per scale, windows whose
// inner (w-2)x(h-2) area has a standard deviation <= 10 skipped, feature sums normalized by
// area * std, stage sums compared with the stage thresholds, and the step doubled after a
// window fails the first stage.
#include "cvision.h"
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* target_clones makes ifunc resolvers, which run during relocation, before ThreadSanitizer's
 * runtime is up (every TSan binary linking this crashed in the loader): under TSan the plain
 * versions are used, as in CKernels. */
#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__x86_64__) && defined(__clang__) && !__has_feature(thread_sanitizer)
#define CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define CLONES
#endif

static inline int imin(int a, int b) { return a < b ? a : b; }
static inline int imax(int a, int b) { return a > b ? a : b; }

// MARK: - Resizing

void cv_resize_linear(const uint8_t *src, int sw, int sh, int sstride, uint8_t *dst, int dw, int dh) {
    if (sw <= 0 || sh <= 0 || dw <= 0 || dh <= 0) return;
    int *xo = malloc(sizeof(int) * (size_t)dw), *xa = malloc(sizeof(int) * (size_t)dw);
    uint32_t *row0 = malloc(sizeof(uint32_t) * (size_t)dw), *row1 = malloc(sizeof(uint32_t) * (size_t)dw);
    if (!xo || !xa || !row0 || !row1) { free(xo); free(xa); free(row0); free(row1); return; }
    double scx = (double)sw / dw, scy = (double)sh / dh;
    for (int x = 0; x < dw; x++) {
        double f = (x + 0.5) * scx - 0.5;
        int s = (int)floor(f);
        f -= s;
        if (s < 0) { s = 0; f = 0; }
        if (s >= sw - 1) { s = sw - 1; f = 0; }
        xo[x] = s;
        xa[x] = (int)lrint(f * 256);
    }
    for (int y = 0; y < dh; y++) {
        double f = (y + 0.5) * scy - 0.5;
        int s = (int)floor(f);
        f -= s;
        if (s < 0) { s = 0; f = 0; }
        if (s >= sh - 1) { s = sh - 1; f = 0; }
        int b = (int)lrint(f * 256);
        const uint8_t *r0 = src + (size_t)s * sstride, *r1 = src + (size_t)imin(s + 1, sh - 1) * sstride;
        for (int x = 0; x < dw; x++) {
            int o = xo[x], a = xa[x], o1 = imin(o + 1, sw - 1);
            row0[x] = (uint32_t)(r0[o] * (256 - a) + r0[o1] * a);
            row1[x] = (uint32_t)(r1[o] * (256 - a) + r1[o1] * a);
        }
        uint8_t *d = dst + (size_t)y * dw;
        for (int x = 0; x < dw; x++) {
            uint32_t v = row0[x] * (uint32_t)(256 - b) + row1[x] * (uint32_t)b;
            d[x] = (uint8_t)((v + 32768u) >> 16);
        }
    }
    free(xo); free(xa); free(row0); free(row1);
}

void cv_resize_area(const uint8_t *src, int sw, int sh, int sstride, uint8_t *dst, int dw, int dh) {
    if (sw <= 0 || sh <= 0 || dw <= 0 || dh <= 0) return;
    if (dw > sw || dh > sh) { cv_resize_linear(src, sw, sh, sstride, dst, dw, dh); return; }
    double sx = (double)sw / dw, sy = (double)sh / dh;
    for (int y = 0; y < dh; y++) {
        double y0 = y * sy, y1 = (y + 1) * sy;
        for (int x = 0; x < dw; x++) {
            double x0 = x * sx, x1 = (x + 1) * sx, acc = 0, area = 0;
            for (int yy = (int)floor(y0); yy < imin((int)ceil(y1), sh); yy++) {
                double wy = fmin(y1, yy + 1) - fmax(y0, yy);
                if (wy <= 0) continue;
                const uint8_t *r = src + (size_t)yy * sstride;
                for (int xx = (int)floor(x0); xx < imin((int)ceil(x1), sw); xx++) {
                    double wx = fmin(x1, xx + 1) - fmax(x0, xx);
                    if (wx <= 0) continue;
                    acc += wx * wy * r[xx];
                    area += wx * wy;
                }
            }
            double v = area > 0 ? acc / area : 0;
            long r = lrint(v);
            dst[(size_t)y * dw + x] = (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
        }
    }
}

// MARK: - Evaluation

/// A stump with its rectangles' corner offsets in one scale's integral image.
typedef struct {
    int ofs[3][4];
    float weight[3];
    float threshold, left, right;
} stump;

typedef struct {
    const cv_cascade *c;
    const uint8_t *image;
    int width, height, stride;
    const float *scales;
    int nscales;
    const int *order;      // scales, largest work first
    int next;              // the next task (atomic)
    int failed;            // a thread ran out of memory
    int all_stumps;
    pthread_mutex_t lock;
    cv_rect *out;
    long capacity, count;
} job;

static void set_offsets(const cv_cascade *c, int f, int istride, int ofs[3][4], float w[3]) {
    for (int r = 0; r < 3; r++) {
        const int *q = c->feature_rects + (f * 3 + r) * 4;
        w[r] = c->feature_weights[f * 3 + r];
        if (w[r] == 0) { ofs[r][0] = ofs[r][1] = ofs[r][2] = ofs[r][3] = 0; continue; }
        ofs[r][0] = q[1] * istride + q[0];
        ofs[r][1] = q[1] * istride + q[0] + q[2];
        ofs[r][2] = (q[1] + q[3]) * istride + q[0];
        ofs[r][3] = (q[1] + q[3]) * istride + q[0] + q[2];
    }
}

/// A rectangle's sum from its corners. The integral images are kept modulo 2^32 (unsigned: no
/// overflow, whatever the image size); a window's sum is exact because it is far below 2^31.
#define RECT_SUM(p, o) ((int32_t)((p)[(o)[0]] - (p)[(o)[1]] - (p)[(o)[2]] + (p)[(o)[3]]))

static inline float feature_value(const uint32_t *p, const int ofs[3][4], const float w[3]) {
    float v = w[0] * (float)RECT_SUM(p, ofs[0]) + w[1] * (float)RECT_SUM(p, ofs[1]);
    if (w[2] != 0.0f) v += w[2] * (float)RECT_SUM(p, ofs[2]);
    return v;
}

/// Scans one scale: windows at (x, y) of the sw x sh image whose integrals (stride iw) are
/// given. Returns the accepted windows through `push`.
CLONES
static int scan(job *jb, const uint32_t *sum, const uint32_t *sq, int iw, int sw, int sh, float scale,
                const stump *stumps, int (*featofs)[3][4], float (*featw)[3], cv_rect **buf, long *n, long *cap) {
    const cv_cascade *c = jb->c;
    int ww = c->window_w, wh = c->window_h;
    int ystep = scale >= 2 ? 1 : 2;
    int rw = (int)lrint(ww * (double)scale), rh = (int)lrint(wh * (double)scale);
    // The inner window used for the variance.
    int n0 = 1 * iw + 1, n1 = 1 * iw + (ww - 1), n2 = (wh - 1) * iw + 1, n3 = (wh - 1) * iw + (ww - 1);
    double area = (double)(ww - 2) * (wh - 2);
    int xend = sw + 1 - ww, yend = sh + 1 - wh;
    for (int y = 0; y < yend; y += ystep) {
        for (int x = 0; x < xend; x += ystep) {
            if (x + ww >= sw + 1 || y + wh >= sh + 1) continue;
            const uint32_t *p = sum + (size_t)y * iw + x;
            const uint32_t *pq = sq + (size_t)y * iw + x;
            int valsum = (int32_t)(p[n0] - p[n1] - p[n2] + p[n3]);
            uint32_t valsq = pq[n0] - pq[n1] - pq[n2] + pq[n3];
            double nf = area * valsq - (double)valsum * valsum;
            if (!(nf > 0)) continue;
            float inv = (float)(1.0 / sqrt(nf));
            if (!(area * inv < 1e-1)) continue;
            int result = 1;
            if (jb->all_stumps) {
                const stump *s = stumps;
                for (int st = 0; st < c->nstages; st++) {
                    double t = 0;
                    int nt = c->stage_trees[st];
                    for (int k = 0; k < nt; k++, s++) {
                        float v = feature_value(p, s->ofs, s->weight) * inv;
                        t += v < s->threshold ? s->left : s->right;
                    }
                    if (t < c->stage_threshold[st]) { result = -st; break; }
                }
            } else {
                int tree = 0, node0 = 0, leaf0 = 0;
                for (int st = 0; st < c->nstages && result > 0; st++) {
                    double t = 0;
                    for (int k = 0; k < c->stage_trees[st]; k++, tree++) {
                        int idx = 0, guard = c->tree_nodes[tree];
                        for (;;) {
                            int nd = node0 + idx, f = c->node_feature[nd];
                            float v = feature_value(p, featofs[f], featw[f]) * inv;
                            idx = v < c->node_threshold[nd] ? c->node_left[nd] : c->node_right[nd];
                            if (idx <= 0 || --guard <= 0) break;
                        }
                        t += c->leaves[leaf0 + (idx <= 0 ? -idx : 0)];
                        node0 += c->tree_nodes[tree];
                        leaf0 += c->tree_nodes[tree] + 1;
                    }
                    if (t < c->stage_threshold[st]) result = -st;
                }
            }
            if (result > 0) {
                if (*n == *cap) {
                    long nc = *cap ? *cap * 2 : 256;
                    cv_rect *nb = realloc(*buf, sizeof(cv_rect) * (size_t)nc);
                    if (!nb) return -1;
                    *buf = nb;
                    *cap = nc;
                }
                (*buf)[(*n)++] = (cv_rect){(int)lrint(x * (double)scale), (int)lrint(y * (double)scale), rw, rh};
            }
            if (result == 0) x += ystep;
        }
    }
    return 0;
}

static void *worker(void *arg) {
    job *jb = arg;
    const cv_cascade *c = jb->c;
    int maxw = (int)lrint(jb->width / (double)jb->scales[0]) + 1;
    int maxh = (int)lrint(jb->height / (double)jb->scales[0]) + 1;
    for (int i = 1; i < jb->nscales; i++) {
        maxw = imax(maxw, (int)lrint(jb->width / (double)jb->scales[i]) + 1);
        maxh = imax(maxh, (int)lrint(jb->height / (double)jb->scales[i]) + 1);
    }
    size_t ipix = (size_t)maxw * (size_t)maxh;
    uint8_t *small = malloc(ipix);
    uint32_t *sum = malloc(sizeof(uint32_t) * ipix);
    uint32_t *sq = malloc(sizeof(uint32_t) * ipix);
    stump *stumps = jb->all_stumps ? malloc(sizeof(stump) * (size_t)(c->nnodes > 0 ? c->nnodes : 1)) : NULL;
    int (*featofs)[3][4] = jb->all_stumps ? NULL : malloc(sizeof(int[3][4]) * (size_t)(c->nfeatures > 0 ? c->nfeatures : 1));
    float (*featw)[3] = jb->all_stumps ? NULL : malloc(sizeof(float[3]) * (size_t)(c->nfeatures > 0 ? c->nfeatures : 1));
    cv_rect *found = NULL;
    long n = 0, cap = 0;
    int ok = small && sum && sq && (jb->all_stumps ? stumps != NULL : (featofs && featw));
    while (ok) {
        int task = __atomic_fetch_add(&jb->next, 1, __ATOMIC_RELAXED);
        if (task >= jb->nscales) break;
        float scale = jb->scales[jb->order[task]];
        int sw = (int)lrint(jb->width / (double)scale), sh = (int)lrint(jb->height / (double)scale);
        if (sw < c->window_w || sh < c->window_h) continue;
        int iw = sw + 1;
        if (sw == jb->width && sh == jb->height) {
            for (int y = 0; y < sh; y++) memcpy(small + (size_t)y * sw, jb->image + (size_t)y * jb->stride, (size_t)sw);
        } else {
            cv_resize_linear(jb->image, jb->width, jb->height, jb->stride, small, sw, sh);
        }
        // Integral and squared integral (the latter modulo 2^32: window sums stay exact).
        memset(sum, 0, sizeof(uint32_t) * (size_t)iw);
        memset(sq, 0, sizeof(uint32_t) * (size_t)iw);
        for (int y = 0; y < sh; y++) {
            const uint8_t *r = small + (size_t)y * sw;
            uint32_t *s = sum + (size_t)(y + 1) * iw, *sp = s - iw;
            uint32_t *q = sq + (size_t)(y + 1) * iw, *qp = q - iw;
            uint32_t acc = 0;
            uint32_t accq = 0;
            s[0] = 0; q[0] = 0;
            for (int x = 0; x < sw; x++) {
                acc += r[x];
                accq += (uint32_t)r[x] * r[x];
                s[x + 1] = sp[x + 1] + acc;
                q[x + 1] = qp[x + 1] + accq;
            }
        }
        if (jb->all_stumps) {
            const float *leaf = c->leaves;
            for (int t = 0; t < c->ntrees; t++, leaf += 2) {
                stump *s = &stumps[t];
                set_offsets(c, c->node_feature[t], iw, s->ofs, s->weight);
                s->threshold = c->node_threshold[t];
                s->left = leaf[0];
                s->right = leaf[1];
            }
        } else {
            for (int f = 0; f < c->nfeatures; f++) set_offsets(c, f, iw, featofs[f], featw[f]);
        }
        if (scan(jb, sum, sq, iw, sw, sh, scale, stumps, featofs, featw, &found, &n, &cap) != 0) ok = 0;
    }
    if (!ok) __atomic_store_n(&jb->failed, 1, __ATOMIC_RELAXED);
    pthread_mutex_lock(&jb->lock);
    for (long i = 0; i < n; i++) {
        if (jb->count < jb->capacity) jb->out[jb->count] = found[i];
        jb->count++;
    }
    pthread_mutex_unlock(&jb->lock);
    free(small); free(sum); free(sq); free(stumps); free(featofs); free(featw); free(found);
    return NULL;
}

long cv_detect(const cv_cascade *c, const uint8_t *image, int width, int height, int stride,
               const float *scales, int nscales, int threads, cv_rect *out, long capacity) {
    if (!c || !image || width <= 0 || height <= 0 || stride < width || nscales <= 0) return 0;
    job jb;
    memset(&jb, 0, sizeof jb);
    jb.c = c; jb.image = image; jb.width = width; jb.height = height; jb.stride = stride;
    jb.scales = scales; jb.nscales = nscales; jb.out = out; jb.capacity = capacity;
    jb.all_stumps = c->nnodes == c->ntrees;
    for (int t = 0; t < c->ntrees && jb.all_stumps; t++)
        if (c->tree_nodes[t] != 1 || c->node_left[t] != 0 || c->node_right[t] != -1) jb.all_stumps = 0;
    // Work per scale: windows / step^2; largest first so that the threads finish together.
    int *order = malloc(sizeof(int) * (size_t)nscales);
    double *work = malloc(sizeof(double) * (size_t)nscales);
    if (!order || !work) { free(order); free(work); return -1; }
    for (int i = 0; i < nscales; i++) {
        double s = scales[i], st = s >= 2 ? 1 : 2;
        work[i] = (width / s) * (height / s) / (st * st);
        order[i] = i;
    }
    for (int i = 1; i < nscales; i++)
        for (int j = i; j > 0 && work[order[j]] > work[order[j - 1]]; j--) { int t = order[j]; order[j] = order[j - 1]; order[j - 1] = t; }
    jb.order = order;
    pthread_mutex_init(&jb.lock, NULL);
    int nt = imax(1, imin(threads, 64));
    pthread_t tid[64];
    int started = 0;
    for (int i = 1; i < nt; i++)
        if (pthread_create(&tid[started], NULL, worker, &jb) == 0) started++;
    worker(&jb);
    for (int i = 0; i < started; i++) pthread_join(tid[i], NULL);
    pthread_mutex_destroy(&jb.lock);
    free(order); free(work);
    return jb.failed ? -1 : jb.count;
}
