// See include/ckernels.h. Plain C; `CLONES` compiles AVX-512, AVX2 (x86-64-v3) and baseline
// (SSE2) versions of a function, and the loader picks the best the CPU has. The AVX2 clone
// was once 20% slower for the whole training step: clang turned loads under a condition
// (`y[i] > 0 ? dy[i] : 0`, or y[i] with y possibly null) into masked loads (vmaskmovps), five
// times slower on Zen 4 than plain loads. The loops now load unconditionally and select, and
// no clone has a masked move (checked in the assembly). The dropout hash has explicit
// AVX-512DQ and AVX2 paths (the same bits as the scalar loop).
#include "ckernels.h"
#include <string.h>

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

static inline int imax(int a, int b) { return a > b ? a : b; }
static inline int imin(int a, int b) { return a < b ? a : b; }

/// The output columns [lo, hi) whose input column ow*stride - padL + kw is in [0, W).
static inline void validRange(int kw, int stride, int padL, int W, int OW, int *lo, int *hi) {
    int a = padL - kw;  // ow*stride >= a
    int l = a <= 0 ? 0 : (a + stride - 1) / stride;
    int b = W - 1 + padL - kw;  // ow*stride <= b
    int h = b < 0 ? 0 : b / stride + 1;
    *lo = imin(l, OW);
    *hi = imax(imin(h, OW), *lo);
}

CLONES
void fk_im2col(float *col, long ld, const float *x, int C, int H, int W, int KH, int KW,
               int stride, int padT, int padL, int OH, int OW) {
    long r = 0;
    for (int c = 0; c < C; c++) {
        const float *xc = x + (long)c * H * W;
        for (int kh = 0; kh < KH; kh++) {
            for (int kw = 0; kw < KW; kw++, r++) {
                float *row = col + r * ld;
                int lo, hi;
                validRange(kw, stride, padL, W, OW, &lo, &hi);
                for (int oh = 0; oh < OH; oh++) {
                    float *o = row + (long)oh * OW;
                    int ih = oh * stride - padT + kh;
                    if (ih < 0 || ih >= H) { memset(o, 0, sizeof(float) * OW); continue; }
                    const float *xr = xc + (long)ih * W - padL + kw;
                    for (int ow = 0; ow < lo; ow++) o[ow] = 0;
                    if (stride == 1) memcpy(o + lo, xr + lo, sizeof(float) * (hi - lo));
                    else for (int ow = lo; ow < hi; ow++) o[ow] = xr[ow * stride];
                    for (int ow = hi; ow < OW; ow++) o[ow] = 0;
                }
            }
        }
    }
}

CLONES
void fk_col2im_add(float *dx, const float *col, long ld, int C, int H, int W, int KH, int KW,
                   int stride, int padT, int padL, int OH, int OW) {
    long r = 0;
    for (int c = 0; c < C; c++) {
        float *dxc = dx + (long)c * H * W;
        for (int kh = 0; kh < KH; kh++) {
            for (int kw = 0; kw < KW; kw++, r++) {
                const float *row = col + r * ld;
                int lo, hi;
                validRange(kw, stride, padL, W, OW, &lo, &hi);
                for (int oh = 0; oh < OH; oh++) {
                    int ih = oh * stride - padT + kh;
                    if (ih < 0 || ih >= H) continue;
                    const float *in = row + (long)oh * OW;
                    float *d = dxc + (long)ih * W - padL + kw;
                    if (stride == 1) { for (int ow = lo; ow < hi; ow++) d[ow] += in[ow]; }
                    else { for (int ow = lo; ow < hi; ow++) d[ow * stride] += in[ow]; }
                }
            }
        }
    }
}

CLONES
void fk_conv_epilogue(float *out, const float *acc, int O, int S, long P, const float *bias,
                      int preRelu, const float *scale, const float *shift, int postRelu,
                      double *sum, double *sumsq) {
    #pragma clang fp reassociate(on)
    for (int o = 0; o < O; o++) {
        const float b = bias ? bias[o] : 0.0f;
        const float sc = scale ? scale[o] : 1.0f, sh = scale ? shift[o] : 0.0f;
        double s1 = 0, s2 = 0;
        for (int s = 0; s < S; s++) {
            const float *a = acc + (long)o * S * P + (long)s * P;
            float *y = out + ((long)s * O + o) * P;
            if (scale) {
                for (long i = 0; i < P; i++) {
                    float z = a[i] + b;
                    if (preRelu) z = z > 0 ? z : 0;
                    z = z * sc + sh;
                    if (postRelu) z = z > 0 ? z : 0;
                    y[i] = z;
                }
            } else {
                for (long i = 0; i < P; i++) {
                    float z = a[i] + b;
                    if (preRelu) z = z > 0 ? z : 0;
                    y[i] = z;
                }
            }
            if (sum) {
                for (long i = 0; i < P; i++) { double d = y[i]; s1 += d; s2 += d * d; }
            }
        }
        if (sum) { sum[o] += s1; sumsq[o] += s2; }
    }
}

CLONES
void fk_affine(float *y, const float *x, long count, float scale, float shift, int relu) {
    if (relu) { for (long i = 0; i < count; i++) { float v = x[i] * scale + shift; y[i] = v > 0 ? v : 0; } }
    else { for (long i = 0; i < count; i++) y[i] = x[i] * scale + shift; }
}

CLONES
void fk_bn_grad_sums(const float *dy, const float *y, const float *x, long count,
                     double *sumG, double *sumGX) {
    #pragma clang fp reassociate(on)
    double a = 0, b = 0;
    // dy[i] is read unconditionally: a load under the condition becomes a masked load
    // (vmaskmovps) in the AVX2 clone, which made this loop several times slower on Zen 4.
    if (y) {
        for (long i = 0; i < count; i++) { float d = dy[i]; float g = y[i] > 0 ? d : 0; a += g; b += (double)g * x[i]; }
    } else {
        for (long i = 0; i < count; i++) { float g = dy[i]; a += g; b += (double)g * x[i]; }
    }
    *sumG += a; *sumGX += b;
}

CLONES
double fk_preact_grad(float *dz, const float *dy, const float *y, const float *x, long count,
                      float A, float B, float C, int reluAfter) {
    #pragma clang fp reassociate(on)
    double s = 0;
    // One loop per case, every load unconditional: a load under a condition (y may be null)
    // becomes a masked load (vmaskmovps) in the AVX2 clone, five times slower on Zen 4.
    if (!x) {
        if (y) { for (long i = 0; i < count; i++) { float d = dy[i]; float g = y[i] > 0 ? d : 0; dz[i] = g; s += g; } }
        else { for (long i = 0; i < count; i++) { dz[i] = dy[i]; s += dy[i]; } }
        return s;
    }
#define PREACT_LOOP(MASKED, RELU_AFTER) for (long i = 0; i < count; i++) {      \
        float d = dy[i], g = (MASKED) ? (y[i] > 0 ? d : 0) : d;                 \
        float xi = x[i], v = A * g + B + C * xi;                                \
        if (RELU_AFTER) v = xi > 0 ? v : 0;                                     \
        dz[i] = v;                                                              \
        s += v;                                                                 \
    }
    if (y) {
        if (reluAfter) { PREACT_LOOP(1, 1) } else { PREACT_LOOP(1, 0) }
    } else {
        if (reluAfter) { PREACT_LOOP(0, 1) } else { PREACT_LOOP(0, 0) }
    }
#undef PREACT_LOOP
    return s;
}

static inline uint64_t mix(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

#if defined(__x86_64__) && defined(__clang__)
#include <immintrin.h>
#define HAVE_DROPOUT_AVX512 1

static inline __attribute__((target("avx512f,avx512dq"))) __m512i mix8(__m512i z) {
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 30)), _mm512_set1_epi64((long long)0xBF58476D1CE4E5B9ull));
    z = _mm512_mullo_epi64(_mm512_xor_si512(z, _mm512_srli_epi64(z, 27)), _mm512_set1_epi64((long long)0x94D049BB133111EBull));
    return _mm512_xor_si512(z, _mm512_srli_epi64(z, 31));
}

/// fk_dropout's loop, 16 elements at a time, with the 64-bit hash in AVX-512DQ (vpmullq),
/// which clang does not emit for the scalar loop. Returns how many elements it did.
__attribute__((target("avx512f,avx512dq")))
static long dropout_avx512(float *y, float *mask, const float *x, long count, uint64_t h, uint64_t first,
                           uint64_t threshold, float keep) {
    const __m512i hv = _mm512_set1_epi64((long long)h), th = _mm512_set1_epi64((long long)threshold);
    const __m512i eight = _mm512_set1_epi64(8), sixteen = _mm512_set1_epi64(16);
    const __m512 kept = _mm512_set1_ps(keep);
    __m512i idx = _mm512_add_epi64(_mm512_set1_epi64((long long)first), _mm512_set_epi64(7, 6, 5, 4, 3, 2, 1, 0));
    long i = 0;
    for (; i + 16 <= count; i += 16) {
        __m512i k0 = mix8(_mm512_xor_si512(hv, idx));
        __m512i k1 = mix8(_mm512_xor_si512(hv, _mm512_add_epi64(idx, eight)));
        __mmask8 lo = _mm512_cmpge_epu64_mask(_mm512_srli_epi64(k0, 11), th);
        __mmask8 hi = _mm512_cmpge_epu64_mask(_mm512_srli_epi64(k1, 11), th);
        __m512 m = _mm512_maskz_mov_ps((__mmask16)(lo | ((unsigned)hi << 8)), kept);
        _mm512_storeu_ps(mask + i, m);
        _mm512_storeu_ps(y + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), m));
        idx = _mm512_add_epi64(idx, sixteen);
    }
    return i;
}

/// 4 x 64-bit low products z * c with AVX2 (no vpmullq): three 32 x 32 -> 64 products.
static inline __attribute__((target("avx2"))) __m256i mullo4(__m256i z, uint64_t c) {
    const __m256i lo = _mm256_set1_epi64x((long long)(c & 0xFFFFFFFFull)), hi = _mm256_set1_epi64x((long long)(c >> 32));
    const __m256i ll = _mm256_mul_epu32(z, lo);
    const __m256i cross = _mm256_add_epi64(_mm256_mul_epu32(_mm256_srli_epi64(z, 32), lo), _mm256_mul_epu32(z, hi));
    return _mm256_add_epi64(ll, _mm256_slli_epi64(cross, 32));
}

static inline __attribute__((target("avx2"))) __m256i mix4(__m256i z) {
    z = mullo4(_mm256_xor_si256(z, _mm256_srli_epi64(z, 30)), 0xBF58476D1CE4E5B9ull);
    z = mullo4(_mm256_xor_si256(z, _mm256_srli_epi64(z, 27)), 0x94D049BB133111EBull);
    return _mm256_xor_si256(z, _mm256_srli_epi64(z, 31));
}

/// fk_dropout's loop, 8 elements at a time, with the 64-bit hash in AVX2 (the VM this project
/// is measured on has no AVX-512; the scalar loop took 31 ms for block1's 9.4M elements).
/// The same bits as the scalar loop. Returns how many elements it did.
__attribute__((target("avx2")))
static long dropout_avx2(float *y, float *mask, const float *x, long count, uint64_t h, uint64_t first,
                         uint64_t threshold, float keep) {
    // (k >> 11) < 2^53 and threshold <= 2^53: a signed compare against threshold - 1 is exact.
    const __m256i hv = _mm256_set1_epi64x((long long)h), th = _mm256_set1_epi64x((long long)threshold - 1);
    const __m256i four = _mm256_set1_epi64x(4), eight = _mm256_set1_epi64x(8);
    const __m256 kept = _mm256_set1_ps(keep);
    __m256i idx = _mm256_add_epi64(_mm256_set1_epi64x((long long)first), _mm256_set_epi64x(3, 2, 1, 0));
    long i = 0;
    for (; i + 8 <= count; i += 8) {
        __m256i k0 = mix4(_mm256_xor_si256(hv, idx));
        __m256i k1 = mix4(_mm256_xor_si256(hv, _mm256_add_epi64(idx, four)));
        __m256 m0 = _mm256_castsi256_ps(_mm256_cmpgt_epi64(_mm256_srli_epi64(k0, 11), th));
        __m256 m1 = _mm256_castsi256_ps(_mm256_cmpgt_epi64(_mm256_srli_epi64(k1, 11), th));
        // The low halves of the 64-bit lanes, in element order.
        __m256 both = _mm256_shuffle_ps(m0, m1, 0x88);
        both = _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(both), 0xD8));
        __m256 m = _mm256_and_ps(both, kept);
        _mm256_storeu_ps(mask + i, m);
        _mm256_storeu_ps(y + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), m));
        idx = _mm256_add_epi64(idx, eight);
    }
    return i;
}
#endif

CLONES
void fk_dropout(float *y, float *mask, const float *x, long count, uint64_t h, uint64_t base,
                double rate, float keep) {
    const uint64_t golden = 0x9E3779B97F4A7C15ull;
    // u = (k >> 11) * 2^-53 is exact, so u >= rate <=> (k >> 11) >= ceil(rate * 2^53): an
    // integer compare (which vectorizes) with the same outcome bit for bit.
    const double scaled = rate * 0x1p53;
    uint64_t threshold = (uint64_t)scaled;
    if ((double)threshold < scaled) threshold += 1;
    long start = 0;
#ifdef HAVE_DROPOUT_AVX512
    // Element i's key is mix(h ^ (base + i + 4*golden)) in both paths: the same bits.
    if (__builtin_cpu_supports("avx512dq"))
        start = dropout_avx512(y, mask, x, count, h, base + 4 * golden, threshold, keep);
    else if (__builtin_cpu_supports("avx2"))
        start = dropout_avx2(y, mask, x, count, h, base + 4 * golden, threshold, keep);
#endif
    for (long i = start; i < count; i++) {
        uint64_t k = mix(h ^ (base + (uint64_t)i + 4 * golden));
        float m = (k >> 11) >= threshold ? keep : 0.0f;
        mask[i] = m;
        y[i] = x[i] * m;
    }
}

CLONES
void fk_mul(float *y, const float *a, const float *b, long count) {
    for (long i = 0; i < count; i++) y[i] = a[i] * b[i];
}

CLONES
void fk_add(float *y, const float *a, const float *b, long count) {
    for (long i = 0; i < count; i++) y[i] = a[i] + b[i];
}

// The sum of squares in eight Double lanes: element i goes to lane i % 8, the lanes are added
// pairwise at the end. Every clone does the same operations in the same order (no contraction
// into FMAs, no reassociation), so the result is the same bits on every CPU; eight independent
// chains instead of one keep the adds from waiting on each other (4608 in a row for a dense
// layer's row of weights).
CLONES
double fk_sumsq(const float *x, long count) {
    #pragma clang fp contract(off)
    double lane[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    long i = 0;
    for (; i + 8 <= count; i += 8) {
        for (int l = 0; l < 8; l++) {
            const double v = (double)x[i + l];
            lane[l] += v * v;
        }
    }
    for (int l = 0; i < count; i++, l++) {
        const double v = (double)x[i];
        lane[l] += v * v;
    }
    return ((lane[0] + lane[1]) + (lane[2] + lane[3])) + ((lane[4] + lane[5]) + (lane[6] + lane[7]));
}

/// SGD with weight decay over [lo, hi), the expression of Runtime's sgdWeightDecayUpdate
/// term by term without contraction, so the same bits as the Swift loop.
CLONES
void fk_sgd_wd(float *p, float *v, const float *g, long lo, long hi, float lr, float momentum,
               int nesterov, float wd, int decoupled) {
    #pragma clang fp contract(off)
    for (long i = lo; i < hi; i++) {
        const float p0 = p[i];
        const float gi = decoupled ? g[i] : g[i] + wd * p0;
        float step;
        if (momentum == 0) {
            step = -lr * gi;
        } else {
            const float vi = momentum * v[i] - lr * gi;
            v[i] = vi;
            step = nesterov ? momentum * vi - lr * gi : vi;
        }
        if (decoupled) step -= lr * wd * p0;
        p[i] = p0 + step;
    }
}

/// 1 when every value is finite (no NaN, no infinity), 0 otherwise: an OR of the exponent
/// tests over blocks of 4,096 (vectorized), stopping at the first block with a bad value. The
/// trainer checks every gradient after every step with it.
CLONES
int fk_all_finite(const float *x, long count) {
    const uint32_t *b = (const uint32_t *)x;
    for (long start = 0; start < count; start += 4096) {
        const long end = start + 4096 < count ? start + 4096 : count;
        uint32_t bad = 0;
        for (long i = start; i < end; i++) bad |= (uint32_t)((b[i] & 0x7f800000u) == 0x7f800000u);
        if (bad) return 0;
    }
    return 1;
}

/// y = k * x, count elements.
CLONES
void fk_scale(float *y, const float *x, float k, long count) {
    for (long i = 0; i < count; i++) y[i] = k * x[i];
}

CLONES
void fk_maxpool2x2(float *y, const float *x, long planes, int H, int W) {
    const int OH = H / 2, OW = W / 2;
    for (long p = 0; p < planes; p++) {
        const float *xp = x + p * H * W;
        float *yp = y + p * OH * OW;
        for (int oh = 0; oh < OH; oh++) {
            const float *r0 = xp + (2 * oh) * W, *r1 = r0 + W;
            float *o = yp + oh * OW;
            for (int ow = 0; ow < OW; ow++) {
                // first maximum in scan order: a strict > keeps the earliest of ties
                float m = r0[2 * ow];
                if (r0[2 * ow + 1] > m) m = r0[2 * ow + 1];
                if (r1[2 * ow] > m) m = r1[2 * ow];
                if (r1[2 * ow + 1] > m) m = r1[2 * ow + 1];
                o[ow] = m;
            }
        }
    }
}

CLONES
void fk_maxpool2x2_grad(float *dx, const float *dy, const float *x, long planes, int H, int W) {
    const int OH = H / 2, OW = W / 2;
    for (long p = 0; p < planes; p++) {
        const float *xp = x + p * H * W;
        float *dp = dx + p * H * W;
        const float *gp = dy + p * OH * OW;
        for (int oh = 0; oh < OH; oh++) {
            const float *r0 = xp + (2 * oh) * W, *r1 = r0 + W;
            float *d0 = dp + (2 * oh) * W, *d1 = d0 + W;
            for (int ow = 0; ow < OW; ow++) {
                float a = r0[2 * ow], b = r0[2 * ow + 1], c = r1[2 * ow], d = r1[2 * ow + 1];
                float g = gp[oh * OW + ow];
                int at = 0; float m = a;
                if (b > m) { m = b; at = 1; }
                if (c > m) { m = c; at = 2; }
                if (d > m) { m = d; at = 3; }
                d0[2 * ow] = at == 0 ? g : 0;
                d0[2 * ow + 1] = at == 1 ? g : 0;
                d1[2 * ow] = at == 2 ? g : 0;
                d1[2 * ow + 1] = at == 3 ? g : 0;
            }
        }
    }
}
