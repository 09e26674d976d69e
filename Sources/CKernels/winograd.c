// Winograd F(4x4,3x3) transforms for 3x3 stride-1 "same" convolutions (see
// Sources/Runtime/Winograd.swift for the algorithm, the layouts and the chunking). Plain C;
// `CLONES` compiles an AVX-512 and a baseline version. The tile loops run over contiguous
// tiles (one tile per vector lane), so clang vectorizes them; the matrices are Lavin & Gray's:
//
//   B^T = [4  0 -5  0  1  0]   G = [ 1/4     0     0 ]   A^T = [1  1  1  1  1  0]
//         [0 -4 -4  1  1  0]       [-1/6  -1/6  -1/6 ]         [0  1 -1  2 -2  0]
//         [0  4 -4 -1  1  0]       [-1/6   1/6  -1/6 ]         [0  1  1  4  4  0]
//         [0 -2 -1  2  1  0]       [ 1/24  1/12  1/6 ]         [0  1 -1  8 -8  1]
//         [0  2 -1 -2  1  0]       [ 1/24 -1/12  1/6 ]
//         [0  4  0 -5  0  1]       [ 0     0     1   ]
#include "ckernels.h"
#include <string.h>

// CLONES as in ckernels.c (AVX-512 and baseline) plus an AVX2 + FMA version: the 2-core Zen 4
// VM this project is measured on reports avx2 and fma but no avx512 flags, so without it the
// baseline (SSE2) clone runs there.
#if defined(__x86_64__) && defined(__clang__)
#define CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define CLONES
#endif

/// o = B^T z for a column of 6 (any scalar type).
#define WINO_BT(z0, z1, z2, z3, z4, z5, o0, o1, o2, o3, o4, o5) do { \
    o0 = 4 * (z0) - 5 * (z2) + (z4);                                  \
    o1 = (z3) + (z4) - 4 * ((z1) + (z2));                             \
    o2 = (z4) - (z3) + 4 * ((z1) - (z2));                             \
    o3 = (z4) - (z2) + 2 * ((z3) - (z1));                             \
    o4 = (z4) - (z2) + 2 * ((z1) - (z3));                             \
    o5 = 4 * (z1) - 5 * (z3) + (z5);                                  \
} while (0)

/// o = A^T z for a column of 6.
#define WINO_AT(z0, z1, z2, z3, z4, z5, o0, o1, o2, o3) do { \
    const float p12 = (z1) + (z2), m12 = (z1) - (z2);         \
    const float p34 = (z3) + (z4), m34 = (z3) - (z4);         \
    o0 = (z0) + p12 + p34;                                     \
    o1 = m12 + 2 * m34;                                        \
    o2 = p12 + 4 * p34;                                        \
    o3 = m12 + 8 * m34 + (z5);                                 \
} while (0)

CLONES
void fk_winograd_filter(float *u, const float *w, int O, int C, int o0, int o1) {
    static const double G[6][3] = {
        {1.0 / 4, 0, 0},
        {-1.0 / 6, -1.0 / 6, -1.0 / 6},
        {-1.0 / 6, 1.0 / 6, -1.0 / 6},
        {1.0 / 24, 1.0 / 12, 1.0 / 6},
        {1.0 / 24, -1.0 / 12, 1.0 / 6},
        {0, 0, 1},
    };
    const long plane = (long)O * C;
    for (int o = o0; o < o1; o++) {
        for (int c = 0; c < C; c++) {
            const float *g = w + ((long)o * C + c) * 9;
            double t[6][3];  // G g
            for (int i = 0; i < 6; i++)
                for (int k = 0; k < 3; k++)
                    t[i][k] = G[i][0] * g[k] + G[i][1] * g[3 + k] + G[i][2] * g[6 + k];
            float *uo = u + (long)o * C + c;
            for (int i = 0; i < 6; i++)
                for (int j = 0; j < 6; j++)  // (G g) G^T
                    uo[(i * 6 + j) * plane] = (float)(t[i][0] * G[j][0] + t[i][1] * G[j][1] + t[i][2] * G[j][2]);
        }
    }
}

CLONES
void fk_winograd_input(float *v, long ldv, const float *x, int S, int C, int c0, int c1, int H, int W,
                       float *work) {
    const int tH = (H + 3) / 4, tW = (W + 3) / 4;
    const long nt = (long)S * tH * tW;
    float *d = work;               // (36, nt): the gathered 6x6 patches, one tile per column
    float *pad = work + 36 * nt;   // one input row with a zero before and zeros after: 4*tW + 2
    const int padLen = 4 * tW + 2;
    for (int c = c0; c < c1; c++) {
        for (int s = 0; s < S; s++) {
            const float *xc = x + ((long)s * C + c) * H * W;
            for (int th = 0; th < tH; th++) {
                const long t0 = ((long)s * tH + th) * tW;
                for (int r = 0; r < 6; r++) {
                    const int ih = 4 * th - 1 + r;
                    if (ih < 0 || ih >= H) {
                        for (int k = 0; k < 6; k++) memset(d + (r * 6 + k) * nt + t0, 0, sizeof(float) * tW);
                        continue;
                    }
                    pad[0] = 0;
                    memcpy(pad + 1, xc + (long)ih * W, sizeof(float) * W);
                    for (int q = W + 1; q < padLen; q++) pad[q] = 0;
                    float *d0 = d + (r * 6 + 0) * nt + t0, *d1 = d + (r * 6 + 1) * nt + t0;
                    float *d2 = d + (r * 6 + 2) * nt + t0, *d3 = d + (r * 6 + 3) * nt + t0;
                    float *d4 = d + (r * 6 + 4) * nt + t0, *d5 = d + (r * 6 + 5) * nt + t0;
                    #pragma clang loop vectorize(assume_safety)
                    for (int tw = 0; tw < tW; tw++) {
                        const float *p = pad + 4 * tw;
                        d0[tw] = p[0]; d1[tw] = p[1]; d2[tw] = p[2]; d3[tw] = p[3]; d4[tw] = p[4]; d5[tw] = p[5];
                    }
                }
            }
        }
        // V = B^T d B, every tile of the chunk in one loop (a tile per lane; straight-line body,
        // written out so that clang vectorizes the tile loop at -O2 too).
        float *vc = v + (long)c * nt;
        #pragma clang loop vectorize(assume_safety)
        for (long t = 0; t < nt; t++) {
#define LD(r, k) d[((r) * 6 + (k)) * nt + t]
#define IN_COL(k) float e0##k, e1##k, e2##k, e3##k, e4##k, e5##k;                      \
            WINO_BT(LD(0, k), LD(1, k), LD(2, k), LD(3, k), LD(4, k), LD(5, k),          \
                    e0##k, e1##k, e2##k, e3##k, e4##k, e5##k)
#define IN_ROW(i) WINO_BT(e##i##0, e##i##1, e##i##2, e##i##3, e##i##4, e##i##5,           \
                          vc[(i * 6 + 0) * ldv + t], vc[(i * 6 + 1) * ldv + t], vc[(i * 6 + 2) * ldv + t], \
                          vc[(i * 6 + 3) * ldv + t], vc[(i * 6 + 4) * ldv + t], vc[(i * 6 + 5) * ldv + t])
            IN_COL(0); IN_COL(1); IN_COL(2); IN_COL(3); IN_COL(4); IN_COL(5);
            IN_ROW(0); IN_ROW(1); IN_ROW(2); IN_ROW(3); IN_ROW(4); IN_ROW(5);
#undef IN_ROW
#undef IN_COL
#undef LD
        }
    }
}

CLONES
void fk_winograd_output(float *out, const float *m, long ldm, int S, int O, int o0, int o1, int H, int W,
                        const float *bias, int preRelu, const float *scale, const float *shift, int postRelu,
                        double *sum, double *sumsq, float *work) {
    #pragma clang fp reassociate(on)
    const int tH = (H + 3) / 4, tW = (W + 3) / 4;
    const long nt = (long)S * tH * tW, P = (long)H * W;
    float *y = work;  // (16, nt): each tile's 4x4 output after the epilogue, one tile per column
    const int fullW = W / 4, lastW = W % 4;
    for (int o = o0; o < o1; o++) {
        const float *mo = m + (long)(o - o0) * nt;
        const float b = bias ? bias[o] : 0.0f;
        const float sc = scale ? scale[o] : 1.0f, sh = scale ? shift[o] : 0.0f;
        // Y = A^T m A, every tile in one loop (straight-line body, as above).
        #pragma clang loop vectorize(assume_safety)
        for (long t = 0; t < nt; t++) {
#define LM(r, k) mo[((r) * 6 + (k)) * ldm + t]
#define OUT_COL(k) float a0##k, a1##k, a2##k, a3##k;                                   \
            WINO_AT(LM(0, k), LM(1, k), LM(2, k), LM(3, k), LM(4, k), LM(5, k), a0##k, a1##k, a2##k, a3##k)
#define OUT_ROW(i) WINO_AT(a##i##0, a##i##1, a##i##2, a##i##3, a##i##4, a##i##5,         \
                           y[(i * 4 + 0) * nt + t], y[(i * 4 + 1) * nt + t], y[(i * 4 + 2) * nt + t], y[(i * 4 + 3) * nt + t])
            OUT_COL(0); OUT_COL(1); OUT_COL(2); OUT_COL(3); OUT_COL(4); OUT_COL(5);
            OUT_ROW(0); OUT_ROW(1); OUT_ROW(2); OUT_ROW(3);
#undef OUT_ROW
#undef OUT_COL
#undef LM
        }
        // The epilogue, as fk_conv_epilogue, over the 16*nt values.
        const long count = 16 * nt;
        if (scale) {
            if (preRelu && postRelu) {
                for (long q = 0; q < count; q++) { float z = y[q] + b; z = z > 0 ? z : 0; z = z * sc + sh; y[q] = z > 0 ? z : 0; }
            } else if (preRelu) {
                for (long q = 0; q < count; q++) { float z = y[q] + b; z = z > 0 ? z : 0; y[q] = z * sc + sh; }
            } else if (postRelu) {
                for (long q = 0; q < count; q++) { float z = (y[q] + b) * sc + sh; y[q] = z > 0 ? z : 0; }
            } else {
                for (long q = 0; q < count; q++) y[q] = (y[q] + b) * sc + sh;
            }
        } else if (preRelu) {
            for (long q = 0; q < count; q++) { float z = y[q] + b; y[q] = z > 0 ? z : 0; }
        } else {
            for (long q = 0; q < count; q++) y[q] = y[q] + b;
        }
        // Scatter the tiles into NCHW, clipping the partial tiles at the right and bottom.
        double s1 = 0, s2 = 0;
        for (int s = 0; s < S; s++) {
            float *plane = out + ((long)s * O + o) * P;
            for (int th = 0; th < tH; th++) {
                const long t0 = ((long)s * tH + th) * tW;
                const int rows = H - 4 * th < 4 ? H - 4 * th : 4;
                for (int i = 0; i < rows; i++) {
                    float *dst = plane + (long)(4 * th + i) * W;
                    const float *y0 = y + (i * 4 + 0) * nt + t0, *y1 = y + (i * 4 + 1) * nt + t0;
                    const float *y2 = y + (i * 4 + 2) * nt + t0, *y3 = y + (i * 4 + 3) * nt + t0;
                    #pragma clang loop vectorize(assume_safety)
                    for (int tw = 0; tw < fullW; tw++) {
                        dst[4 * tw + 0] = y0[tw];
                        dst[4 * tw + 1] = y1[tw];
                        dst[4 * tw + 2] = y2[tw];
                        dst[4 * tw + 3] = y3[tw];
                    }
                    if (lastW > 0) dst[4 * fullW] = y0[fullW];
                    if (lastW > 1) dst[4 * fullW + 1] = y1[fullW];
                    if (lastW > 2) dst[4 * fullW + 2] = y2[fullW];
                }
            }
            if (sum) {
                for (long q = 0; q < P; q++) { double dq = plane[q]; s1 += dq; s2 += dq * dq; }
            }
        }
        if (sum) { sum[o] += s1; sumsq[o] += s2; }
    }
}
