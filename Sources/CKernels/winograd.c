// Winograd F(4x4,3x3) transforms for 3x3 stride-1 "same" convolutions (see
// Sources/Runtime/Winograd.swift for the algorithm, the layouts and the chunking). Plain C;
// `CLONES` compiles AVX-512, AVX2 and baseline versions. The input transform runs over
// contiguous tiles (one tile per vector lane), so clang vectorizes it; the output transform
// runs over 8 channels per vector (AVX2 intrinsics, a plain C path elsewhere). The matrices
// are Lavin & Gray's:
//
//   B^T = [4  0 -5  0  1  0]   G = [ 1/4     0     0 ]   A^T = [1  1  1  1  1  0]
//         [0 -4 -4  1  1  0]       [-1/6  -1/6  -1/6 ]         [0  1 -1  2 -2  0]
//         [0  4 -4 -1  1  0]       [-1/6   1/6  -1/6 ]         [0  1  1  4  4  0]
//         [0 -2 -1  2  1  0]       [ 1/24  1/12  1/6 ]         [0  1 -1  8 -8  1]
//         [0  2 -1 -2  1  0]       [ 1/24 -1/12  1/6 ]
//         [0  4  0 -5  0  1]       [ 0     0     1   ]
#include "ckernels.h"
#include <string.h>

// F(4x4,3x3)'s filter transform G (6x3): U = G w G^T for the forward and the input gradient,
// and dw = G^T dU G for the weight gradient.
static const double G[6][3] = {
    {1.0 / 4, 0, 0},
    {-1.0 / 6, -1.0 / 6, -1.0 / 6},
    {-1.0 / 6, 1.0 / 6, -1.0 / 6},
    {1.0 / 24, 1.0 / 12, 1.0 / 6},
    {1.0 / 24, -1.0 / 12, 1.0 / 6},
    {0, 0, 1},
};

// CLONES as in ckernels.c: AVX-512, AVX2 + FMA (the 2-core Zen 4 VM this project is measured
// on reports avx2 and fma but no avx512 flags) and baseline.
/* target_clones makes ifunc resolvers, which run during relocation, before ThreadSanitizer's
 * runtime is up: under TSan (swift build --sanitize=thread) the plain versions are used. */
#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__x86_64__) && defined(__clang__) && !__has_feature(thread_sanitizer)
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
void fk_winograd_filter(float *u, const float *w, int O, int C, int o0, int o1, int gradInput) {
    // Panels of 16 output channels of this convolution (N: O forward, C for the gradient),
    // each (36, K, 16) contiguous, K its input channels: element (xi, k, n) at
    // ((n/16)*36 + xi)*K*16 + k*16 + n%16.
    // Up to 16 channels of one panel (o forward, c for the gradient) at a time as vector lanes,
    // a panel at a time, its rows (the other channel) inside: each of the 36 rows of U is
    // written as one sequential stream, and w read as 16 streams. (One filter at a time, in
    // scalar double, panel by panel for neither, this transform took 25% of a VGG16 training
    // step: 38 MB of U for 512 -> 512, every step; one such transform 49 -> 8 ms on one thread.)
    const long K = gradInput ? O : C;
    // Lanes: the panel's channels (o forward, c for the gradient); rows: the other channel.
    const int laneEnd = gradInput ? C : o1, rowBegin = gradInput ? o0 : 0, rowEnd = gradInput ? o1 : C;
    for (int b0 = gradInput ? 0 : o0; b0 < laneEnd;) {
        const int b1 = laneEnd < (b0 / 16 + 1) * 16 ? laneEnd : (b0 / 16 + 1) * 16;  // within one panel
        const int nl = b1 - b0;
        for (int a = rowBegin; a < rowEnd; a++) {
            double g[9][16], t[6][3][16];
            for (int l = 0; l < nl; l++) {
                const int o = gradInput ? a : b0 + l, c = gradInput ? b0 + l : a;
                const float *w9 = w + ((long)o * C + c) * 9;
                for (int k = 0; k < 9; k++) g[k][l] = gradInput ? w9[8 - k] : w9[k];  // rotated for the gradient
            }
            for (int l = nl; l < 16; l++)
                for (int k = 0; k < 9; k++) g[k][l] = 0;
            for (int i = 0; i < 6; i++)  // G g
                for (int k = 0; k < 3; k++)
                    for (int l = 0; l < 16; l++)
                        t[i][k][l] = G[i][0] * g[k][l] + G[i][1] * g[3 + k][l] + G[i][2] * g[6 + k][l];
            // Forward: input channel c (row), output o (col). Gradient: input channel o, output c.
            const long row = a, col = b0;
            float *uo = u + (col / 16) * 36 * K * 16 + row * 16 + col % 16;
            for (int i = 0; i < 6; i++)
                for (int j = 0; j < 6; j++) {  // (G g) G^T
                    // Computed straight into U (a copy from a local row became a call to memmove).
                    float *dst = uo + (i * 6 + j) * K * 16;
                    if (nl == 16) {
                        for (int l = 0; l < 16; l++)
                            dst[l] = (float)(t[i][0][l] * G[j][0] + t[i][1][l] * G[j][1] + t[i][2][l] * G[j][2]);
                    } else {
                        for (int l = 0; l < nl; l++)
                            dst[l] = (float)(t[i][0][l] * G[j][0] + t[i][1][l] * G[j][1] + t[i][2][l] * G[j][2]);
                    }
                }
        }
        b0 = b1;
    }
}

CLONES
void fk_winograd_input(float *v, long ldv, const float *x, long sampleStride, long channelStride, int S, int C,
                       int c0, int c1, int H, int W, int th0, int th1, float *work) {
    const int tW = (W + 3) / 4, tRows = th1 - th0;
    const long nt = (long)S * tRows * tW;
    float *d = work;               // (36, nt): the gathered 6x6 patches, one tile per column
    float *pad = work + 36 * nt;   // one input row with a zero before and zeros after: 4*tW + 2
    const int padLen = 4 * tW + 2;
    for (int c = c0; c < c1; c++) {
        for (int s = 0; s < S; s++) {
            const float *xc = x + (long)s * sampleStride + (long)c * channelStride;
            for (int th = th0; th < th1; th++) {
                const long t0 = ((long)s * tRows + (th - th0)) * tW;
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

/// Channels per block of the output transform: one AVX2 vector.
#define OUT_BLOCK 8

/// The output transform of one tile for `nb` channels (lanes): y[p][l] for the 16 pixels p of
/// the 4x4 tile, from m element (xi, l) at xi*ldm + l, then the epilogue with per-lane bias,
/// scale and shift. The portable path, and the one for channel tails (fewer than 8 channels).
static void wino_out_tile(float y[16][OUT_BLOCK], const float *m, long ldm, int nb, const float *bv, const float *sc,
                          const float *sh, int preRelu, int hasScale, int postRelu) {
    for (int l = 0; l < nb; l++) {
#define LM(r, k) m[((r) * 6 + (k)) * ldm + l]
#define OUT_COL(k) float a0##k, a1##k, a2##k, a3##k;                                   \
        WINO_AT(LM(0, k), LM(1, k), LM(2, k), LM(3, k), LM(4, k), LM(5, k), a0##k, a1##k, a2##k, a3##k)
#define OUT_ROW(i) WINO_AT(a##i##0, a##i##1, a##i##2, a##i##3, a##i##4, a##i##5,         \
                           y[i * 4 + 0][l], y[i * 4 + 1][l], y[i * 4 + 2][l], y[i * 4 + 3][l])
        OUT_COL(0); OUT_COL(1); OUT_COL(2); OUT_COL(3); OUT_COL(4); OUT_COL(5);
        OUT_ROW(0); OUT_ROW(1); OUT_ROW(2); OUT_ROW(3);
#undef OUT_ROW
#undef OUT_COL
#undef LM
        // The epilogue, as fk_conv_epilogue.
        for (int p = 0; p < 16; p++) {
            float z = y[p][l] + bv[l];
            if (preRelu) z = z > 0 ? z : 0;
            if (hasScale) z = z * sc[l] + sh[l];
            if (postRelu) z = z > 0 ? z : 0;
            y[p][l] = z;
        }
    }
}

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>
#define WINO_AVX2 1

/// One 4x4 tile for 8 channels with AVX2 (8 channels per vector): the transform, the epilogue,
/// and for a whole tile the scatter as four 4x8 -> 8x4 transposes, so each channel's tile row is
/// one 16-byte store (instead of 128 scalar stores per tile). A tile clipped at the right or
/// bottom (rows or cols under 4: most tiles of a 5x5 or 10x10 map) is computed the same way and
/// scattered pixel by pixel, its rows x cols pixels only. Adds the per-channel sums of the
/// pixels written to s1, s2 (double, 8 lanes each) when they are not null.
__attribute__((target("avx2,fma"), noinline))
static void wino_out_tile_avx2(float *dst, long P, int W, int rows, int cols, const float *m, long ldm, const float *bv,
                               const float *sc, const float *sh, int preRelu, int hasScale, int postRelu, double *s1,
                               double *s2) {
    const int whole = rows == 4 && cols == 4;
    __m256 a[4][6];
    for (int k = 0; k < 6; k++) {
        const __m256 z0 = _mm256_loadu_ps(m + (0 * 6 + k) * ldm), z1 = _mm256_loadu_ps(m + (1 * 6 + k) * ldm);
        const __m256 z2 = _mm256_loadu_ps(m + (2 * 6 + k) * ldm), z3 = _mm256_loadu_ps(m + (3 * 6 + k) * ldm);
        const __m256 z4 = _mm256_loadu_ps(m + (4 * 6 + k) * ldm), z5 = _mm256_loadu_ps(m + (5 * 6 + k) * ldm);
        const __m256 p12 = _mm256_add_ps(z1, z2), m12 = _mm256_sub_ps(z1, z2);
        const __m256 p34 = _mm256_add_ps(z3, z4), m34 = _mm256_sub_ps(z3, z4);
        a[0][k] = _mm256_add_ps(_mm256_add_ps(z0, p12), p34);
        a[1][k] = _mm256_fmadd_ps(_mm256_set1_ps(2), m34, m12);
        a[2][k] = _mm256_fmadd_ps(_mm256_set1_ps(4), p34, p12);
        a[3][k] = _mm256_add_ps(_mm256_fmadd_ps(_mm256_set1_ps(8), m34, m12), z5);
    }
    const __m256 b = _mm256_loadu_ps(bv), scale = _mm256_loadu_ps(sc), shift = _mm256_loadu_ps(sh);
    const __m256 zero = _mm256_setzero_ps();
    __m256d q1a = _mm256_setzero_pd(), q1b = _mm256_setzero_pd(), q2a = _mm256_setzero_pd(), q2b = _mm256_setzero_pd();
    for (int i = 0; i < rows; i++) {  // the rows past a clipped tile's bottom are not computed
        const __m256 *z = a[i];
        const __m256 p12 = _mm256_add_ps(z[1], z[2]), m12 = _mm256_sub_ps(z[1], z[2]);
        const __m256 p34 = _mm256_add_ps(z[3], z[4]), m34 = _mm256_sub_ps(z[3], z[4]);
        __m256 y[4];
        y[0] = _mm256_add_ps(_mm256_add_ps(z[0], p12), p34);
        y[1] = _mm256_fmadd_ps(_mm256_set1_ps(2), m34, m12);
        y[2] = _mm256_fmadd_ps(_mm256_set1_ps(4), p34, p12);
        y[3] = _mm256_add_ps(_mm256_fmadd_ps(_mm256_set1_ps(8), m34, m12), z[5]);
        for (int j = 0; j < 4; j++) {
            __m256 v = _mm256_add_ps(y[j], b);
            if (preRelu) v = _mm256_max_ps(v, zero);
            if (hasScale) v = _mm256_fmadd_ps(v, scale, shift);
            if (postRelu) v = _mm256_max_ps(v, zero);
            y[j] = v;
            if (s1 && j < cols) {
                const __m256d lo = _mm256_cvtps_pd(_mm256_castps256_ps128(v));
                const __m256d hi = _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1));
                q1a = _mm256_add_pd(q1a, lo); q1b = _mm256_add_pd(q1b, hi);
                q2a = _mm256_fmadd_pd(lo, lo, q2a); q2b = _mm256_fmadd_pd(hi, hi, q2b);
            }
        }
        if (!whole) {
            float px[4][8];
            for (int j = 0; j < cols; j++) _mm256_storeu_ps(px[j], y[j]);
            float *row = dst + (long)i * W;
            for (int l = 0; l < 8; l++)
                for (int j = 0; j < cols; j++) row[l * P + j] = px[j][l];
            continue;
        }
        // 4 pixels x 8 channels -> each channel's 4 pixels.
        const __m256 t0 = _mm256_unpacklo_ps(y[0], y[1]), t1 = _mm256_unpackhi_ps(y[0], y[1]);
        const __m256 t2 = _mm256_unpacklo_ps(y[2], y[3]), t3 = _mm256_unpackhi_ps(y[2], y[3]);
        const __m256 r0 = _mm256_shuffle_ps(t0, t2, 0x44), r1 = _mm256_shuffle_ps(t0, t2, 0xEE);
        const __m256 r2 = _mm256_shuffle_ps(t1, t3, 0x44), r3 = _mm256_shuffle_ps(t1, t3, 0xEE);
        float *row = dst + (long)i * W;
        _mm_storeu_ps(row + 0 * P, _mm256_castps256_ps128(r0));
        _mm_storeu_ps(row + 1 * P, _mm256_castps256_ps128(r1));
        _mm_storeu_ps(row + 2 * P, _mm256_castps256_ps128(r2));
        _mm_storeu_ps(row + 3 * P, _mm256_castps256_ps128(r3));
        _mm_storeu_ps(row + 4 * P, _mm256_extractf128_ps(r0, 1));
        _mm_storeu_ps(row + 5 * P, _mm256_extractf128_ps(r1, 1));
        _mm_storeu_ps(row + 6 * P, _mm256_extractf128_ps(r2, 1));
        _mm_storeu_ps(row + 7 * P, _mm256_extractf128_ps(r3, 1));
    }
    if (s1) {
        _mm256_storeu_pd(s1, _mm256_add_pd(_mm256_loadu_pd(s1), q1a));
        _mm256_storeu_pd(s1 + 4, _mm256_add_pd(_mm256_loadu_pd(s1 + 4), q1b));
        _mm256_storeu_pd(s2, _mm256_add_pd(_mm256_loadu_pd(s2), q2a));
        _mm256_storeu_pd(s2 + 4, _mm256_add_pd(_mm256_loadu_pd(s2 + 4), q2b));
    }
}

#endif

CLONES
void fk_winograd_output(float *out, const float *m, long ldm, long ldt, int S, int O, int o0, int o1, int H, int W,
                        int th0, int th1, const float *bias, int preRelu, const float *scale, const float *shift,
                        int postRelu, double *sum, double *sumsq) {
    #pragma clang fp reassociate(on)
    const int tW = (W + 3) / 4, tRows = th1 - th0;
    const long P = (long)H * W;
#ifdef WINO_AVX2
    const int fast = fk_sgemm_has_simd();
#endif
    for (int ob = o0; ob < o1; ob += OUT_BLOCK) {
        const int nb = o1 - ob < OUT_BLOCK ? o1 - ob : OUT_BLOCK;
        float bv[OUT_BLOCK], sc[OUT_BLOCK], sh[OUT_BLOCK];
        double s1[OUT_BLOCK], s2[OUT_BLOCK];
        for (int l = 0; l < OUT_BLOCK; l++) {
            const int o = l < nb ? ob + l : ob;
            bv[l] = bias ? bias[o] : 0.0f;
            sc[l] = scale ? scale[o] : 1.0f;
            sh[l] = scale ? shift[o] : 0.0f;
            s1[l] = 0; s2[l] = 0;
        }
        for (int s = 0; s < S; s++) {
            float *planes = out + ((long)s * O + ob) * P;
            for (int th = th0; th < th1; th++) {
                const int rows = H - 4 * th < 4 ? H - 4 * th : 4;
                for (int tw = 0; tw < tW; tw++) {
                    const long t = ((long)s * tRows + (th - th0)) * tW + tw;
                    const float *mt = m + t * ldt + (ob - o0);
                    const int cols = W - 4 * tw < 4 ? W - 4 * tw : 4;
#ifdef WINO_AVX2
                    if (fast && nb == OUT_BLOCK) {
                        wino_out_tile_avx2(planes + (long)(4 * th) * W + 4 * tw, P, W, rows, cols, mt, ldm, bv, sc, sh,
                                           preRelu, scale != 0, postRelu, sum ? s1 : 0, sum ? s2 : 0);
                        continue;
                    }
#endif
                    float y[16][OUT_BLOCK];
                    wino_out_tile(y, mt, ldm, nb, bv, sc, sh, preRelu, scale != 0, postRelu);
                    // Scatter the tile into each channel's plane, clipped at the right and bottom.
                    for (int l = 0; l < nb; l++) {
                        float *dst = planes + l * P + (long)(4 * th) * W + 4 * tw;
                        for (int i = 0; i < rows; i++)
                            for (int j = 0; j < cols; j++) dst[(long)i * W + j] = y[i * 4 + j][l];
                    }
                    if (sum) {
                        for (int l = 0; l < nb; l++)
                            for (int i = 0; i < rows; i++)
                                for (int j = 0; j < cols; j++) { double z = y[i * 4 + j][l]; s1[l] += z; s2[l] += z * z; }
                    }
                }
            }
        }
        if (sum) for (int l = 0; l < nb; l++) { sum[ob + l] += s1[l]; sumsq[ob + l] += s2[l]; }
    }
}

// MARK: - The weight gradient (the adjoints of the output and filter transforms)

/// o = A z for a column of 4 (A = (A^T)^T, 6x4): the adjoint of WINO_AT.
#define WINO_A(z0, z1, z2, z3, o0, o1, o2, o3, o4, o5) do { \
    const float p02 = (z0) + (z2), p13 = (z1) + (z3);        \
    const float q02 = (z0) + 4 * (z2), q13 = 2 * (z1) + 8 * (z3); \
    o0 = (z0);                                                \
    o1 = p02 + p13;                                           \
    o2 = p02 - p13;                                           \
    o3 = q02 + q13;                                           \
    o4 = q02 - q13;                                           \
    o5 = (z3);                                                \
} while (0)

CLONES
void fk_winograd_grad_output(float *z, long ldz, const float *dy, long sampleStride, long channelStride, int S, int O,
                             int H, int W, float *work) {
    const int tW = (W + 3) / 4, tH = (H + 3) / 4;
    const long nt = (long)S * tH * tW;
    float *d = work;  // (16, nt): the gathered 4x4 tiles, one tile per column
    for (int o = 0; o < O; o++) {
        for (int s = 0; s < S; s++) {
            const float *yc = dy + (long)s * sampleStride + (long)o * channelStride;
            for (int th = 0; th < tH; th++) {
                const long t0 = ((long)s * tH + th) * tW;
                for (int r = 0; r < 4; r++) {
                    const int ih = 4 * th + r;
                    for (int k = 0; k < 4; k++) {
                        float *dk = d + (r * 4 + k) * nt + t0;
                        for (int tw = 0; tw < tW; tw++) {
                            const int iw = 4 * tw + k;
                            dk[tw] = ih < H && iw < W ? yc[(long)ih * W + iw] : 0;
                        }
                    }
                }
            }
        }
        float *zo = z + (long)o * nt;
        #pragma clang loop vectorize(assume_safety)
        for (long t = 0; t < nt; t++) {
#define LD(r, k) d[((r) * 4 + (k)) * nt + t]
#define GC(k) float e0##k, e1##k, e2##k, e3##k, e4##k, e5##k;                          \
            WINO_A(LD(0, k), LD(1, k), LD(2, k), LD(3, k), e0##k, e1##k, e2##k, e3##k, e4##k, e5##k)
#define GR(i) WINO_A(e##i##0, e##i##1, e##i##2, e##i##3,                                \
                     zo[(i * 6 + 0) * ldz + t], zo[(i * 6 + 1) * ldz + t], zo[(i * 6 + 2) * ldz + t], \
                     zo[(i * 6 + 3) * ldz + t], zo[(i * 6 + 4) * ldz + t], zo[(i * 6 + 5) * ldz + t])
            GC(0); GC(1); GC(2); GC(3);
            GR(0); GR(1); GR(2); GR(3); GR(4); GR(5);
#undef GR
#undef GC
#undef LD
        }
    }
}

CLONES
void fk_winograd_weight_fold(float *dw, const float *const *du, int parts, int O, int C, int o0, int o1) {
    const long plane = (long)O * C;  // one position's dU
    for (int o = o0; o < o1; o++) {
        for (int c0 = 0; c0 < C; c0 += 16) {
            const int nl = C - c0 < 16 ? C - c0 : 16;
            double s[36][16], t[6][3][16];
            for (int xi = 0; xi < 36; xi++) {
                for (int l = 0; l < 16; l++) s[xi][l] = 0;
                for (int p = 0; p < parts; p++) {  // the threads' partials, in thread order
                    const float *src = du[p] + xi * plane + (long)o * C + c0;
                    for (int l = 0; l < nl; l++) s[xi][l] += src[l];
                }
            }
            for (int i = 0; i < 6; i++)  // (dU G): 6x3
                for (int b = 0; b < 3; b++)
                    for (int l = 0; l < 16; l++) {
                        double acc = 0;
                        for (int j = 0; j < 6; j++) acc += s[i * 6 + j][l] * G[j][b];
                        t[i][b][l] = acc;
                    }
            for (int a = 0; a < 3; a++)  // G^T (dU G): 3x3
                for (int b = 0; b < 3; b++)
                    for (int l = 0; l < nl; l++) {
                        double acc = 0;
                        for (int i = 0; i < 6; i++) acc += G[i][a] * t[i][b][l];
                        dw[((long)o * C + c0 + l) * 9 + a * 3 + b] = (float)acc;
                    }
        }
    }
}
