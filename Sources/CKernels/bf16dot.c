// bf16 products with AVX512_BF16's dot product (vdpbf16ps: 16 lanes, each the f32 sum of two
// bf16 products added to an f32 accumulator), for CPUs that have it without AMX (Zen 4). The
// operands are those of the AMX kernels in amx.c, in the same layouts, so the packing, the
// epilogues and the callers are shared; only the products differ.
//
// Why it is worth having on Zen 4 and not on the Xeon amx.c was written on: one core,
// register-resident loops (Tools/bench/bf16_peak.c), Zen 4 (AMD EPYC, 2026-12-01): f32 FMA zmm
// 115-117 GFLOP/s, vdpbf16ps zmm 233-235 (twice the f32 rate); the Xeon: 166-173 against 84-87
// (half), and its AMX 1,180-2,730. So fk_bf16_level (amx.c) picks AMX first, this second.
//
// Each kernel keeps a block of 8 rows x 48 lanes of f32 sums in 24 registers; per channel pair
// (or position pair) it loads 3 vectors of pairs of the streamed operand, broadcasts 8 pairs of
// the other one (a 32-bit broadcast from memory) and issues 24 dot products. The compact
// convolution (fk_bf16_conv_compact, this unit only) swaps the roles, 7 positions x 48 output
// channels, so that it computes the outputs and not the grid's extra cells (docs/performance.md,
// round eight). Every sum adds the
// same products as AMX's in another order; both are checked against a sum in double of the
// rounded operands (Tests/RuntimeTests/BF16*Tests.swift), AMX's and this one on a CPU with both.
#include "ckernels.h"
#include "bf16_kernels.h"
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__clang__)
#include <cpuid.h>
#include <immintrin.h>
#define FK_HAVE_DOT 1
#define DOT __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#endif

int fk_bf16_dot_pays(void) {
#ifdef FK_HAVE_DOT
    static _Atomic int cached = -1;
    if (cached < 0) {
        // Measured with Tools/bench/bf16_peak.c (one core, register-resident loops): on Zen 4 the
        // dot product does twice the f32 FMA's work (233-235 against 115-117 GFLOP/s); on both
        // Intel Xeons measured, half (84-87 against 166-173 on the AMX one, 86-88 against 175-177
        // on a Xeon whose hypervisor hides AMX, 2026-12-07). So it pays on AMD's cores only.
        unsigned a = 0, b = 0, c = 0, d = 0;
        __get_cpuid(0, &a, &b, &c, &d);
        cached = b == 0x68747541u && d == 0x69746e65u && c == 0x444d4163u;  // "AuthenticAMD"
    }
    return cached;
#else
    return 0;
#endif
}

int fk_bf16_dot_cpu(void) {
#ifdef FK_HAVE_DOT
    static _Atomic int cached = -1;
    if (cached < 0) {
        unsigned a = 0, b = 0, c = 0, d = 0;
        // CPUID.(EAX=7, ECX=1):EAX bit 5 is AVX512_BF16; the rest is amx.c's AVX-512F/BW/VL check.
        const int bf16 = __get_cpuid_count(7, 1, &a, &b, &c, &d) && ((a >> 5) & 1);
        cached = bf16 && fk_avx512_cpu();
    }
    return cached;
#else
    return 0;
#endif
}

#ifdef FK_HAVE_DOT
/// The 32-bit pair at p (2-byte aligned at least), in all 16 lanes.
DOT static inline __m512bh fk_pair_bcast(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return (__m512bh)_mm512_set1_epi32(v);
}

DOT static inline __m512bh fk_pairs_load(const uint32_t *p) { return (__m512bh)_mm512_loadu_si512(p); }

/// Rows [0, rows) and lanes [0, lanes) of the 8 x (16 NV) block of sums c into M (rows ld floats
/// apart), added to what is there when `add`.
#define FK_DOT_STORE(NV, M, ld, rows, lanes, add) do {                                                  \
    for (int r_ = 0; r_ < 8; r_++) {                                                               \
        if (r_ >= (rows)) break;                                                                   \
        for (int v_ = 0; v_ < NV; v_++) {                                                          \
            const long n_ = (lanes) - 16L * v_;                                                    \
            if (n_ <= 0) break;                                                                    \
            const __mmask16 m_ = n_ >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n_) - 1);       \
            float *d_ = (M) + (long)r_ * (ld) + 16L * v_;                                          \
            __m512 s_ = c[r_][v_];                                                                 \
            if (add) s_ = _mm512_add_ps(s_, _mm512_maskz_loadu_ps(m_, d_));                        \
            _mm512_mask_storeu_ps(d_, m_, s_);                                                     \
        }                                                                                          \
    }                                                                                              \
} while (0)

/// One block of the convolution: output channels ob..ob+7 (Wt's rows, which exist up to Opad)
/// by positions pb..pb+16 NV-1 of the flattened grid, summed over the taps and channel pairs.
#define FK_DOT_CONV_BLOCK(NV)                                                                      \
DOT static void fk_dot_conv_block##NV(float *acc, long ldacc, const uint16_t *Wt, int Opad, int Cpad, int KH,    \
                                      int KW, const uint32_t *X, long rowLen, int Wp, long pb, int ob, int rows,  \
                                      long lanes) {                                                \
    __m512 c[8][NV];                                                                               \
    for (int r = 0; r < 8; r++)                                                                    \
        for (int v = 0; v < NV; v++) c[r][v] = _mm512_setzero_ps();                                \
    for (int ky = 0; ky < KH; ky++) {                                                              \
        for (int kx = 0; kx < KW; kx++) {                                                          \
            const uint16_t *w = Wt + ((long)(ky * KW + kx) * Opad + ob) * Cpad;                    \
            const uint32_t *x = X + pb + (long)ky * Wp + kx;                                       \
            for (int j = 0; j < Cpad / 2; j++, x += rowLen) {                                      \
                __m512bh xv[NV];                                                                   \
                for (int v = 0; v < NV; v++) xv[v] = fk_pairs_load(x + 16 * v);                   \
                for (int r = 0; r < 8; r++) {                                                      \
                    const __m512bh wv = fk_pair_bcast(w + (long)r * Cpad + 2 * j);                 \
                    for (int v = 0; v < NV; v++) c[r][v] = _mm512_dpbf16_ps(c[r][v], wv, xv[v]);   \
                }                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    FK_DOT_STORE(NV, acc + (long)ob * ldacc + pb, ldacc, rows, lanes, 0);                              \
}
FK_DOT_CONV_BLOCK(1)
FK_DOT_CONV_BLOCK(2)
FK_DOT_CONV_BLOCK(3)

DOT static void fk_dot_conv_kernel(float *acc, long ldacc, const uint16_t *Wt, int O, int Cpad, int KH, int KW,
                                   const uint32_t *X, long rowLen, int Wp, long pBegin, long pEnd, int oBegin,
                                   int oEnd) {
    const int Opad = (O + 15) & ~15;
    // Output channels outside (a block of 8 channels' weights, KH*KW*Cpad*16 bytes, stays in L1
    // or L2 while the positions stream past), positions inside.
    for (int ob = oBegin; ob < oEnd; ob += 8) {
        const int rows = oEnd - ob < 8 ? oEnd - ob : 8;
        for (long pb = pBegin; pb < pEnd; pb += 48) {
            const long lanes = pEnd - pb;
            if (lanes > 32) fk_dot_conv_block3(acc, ldacc, Wt, Opad, Cpad, KH, KW, X, rowLen, Wp, pb, ob, rows, lanes);
            else if (lanes > 16) fk_dot_conv_block2(acc, ldacc, Wt, Opad, Cpad, KH, KW, X, rowLen, Wp, pb, ob, rows, lanes);
            else fk_dot_conv_block1(acc, ldacc, Wt, Opad, Cpad, KH, KW, X, rowLen, Wp, pb, ob, rows, lanes);
        }
    }
}

/// One block of the weight gradient: input channels cb..cb+7 (A's rows, which exist up to Cpad)
/// by output channels ob..ob+16 NV-1 of tap t, over the position pairs [k0, k1) of B.
#define FK_DOT_WGRAD_BLOCK(NV)                                                                     \
DOT static void fk_dot_wgrad_block##NV(float *acc, int Opad, const uint16_t *A, long rowLen, const uint32_t *B, \
                                       long ldB, long off, int cb, int ob, long k0, long k1, int rows, int lanes, \
                                       int add) {                                                  \
    __m512 c[8][NV];                                                                               \
    for (int r = 0; r < 8; r++)                                                                    \
        for (int v = 0; v < NV; v++) c[r][v] = _mm512_setzero_ps();                                \
    const uint16_t *a = A + (long)cb * rowLen + off;                                               \
    for (long k = k0; k < k1; k++) {                                                               \
        const uint32_t *b = B + k * ldB + ob;                                                      \
        __m512bh bv[NV];                                                                           \
        for (int v = 0; v < NV; v++) bv[v] = fk_pairs_load(b + 16 * v);                            \
        for (int r = 0; r < 8; r++) {                                                              \
            const __m512bh av = fk_pair_bcast(a + (long)r * rowLen + 2 * k);                       \
            for (int v = 0; v < NV; v++) c[r][v] = _mm512_dpbf16_ps(c[r][v], av, bv[v]);           \
        }                                                                                          \
    }                                                                                              \
    FK_DOT_STORE(NV, acc + (long)cb * Opad + ob, Opad, rows, lanes, add);                              \
}
FK_DOT_WGRAD_BLOCK(1)
FK_DOT_WGRAD_BLOCK(2)
FK_DOT_WGRAD_BLOCK(3)

DOT static void fk_dot_weight_grad_kernel(float *acc, const uint16_t *A, long rowLen, const uint32_t *B, long ldB,
                                          int KH, int KW, int Wp, int Cpad, int Opad, long Kpad, int accumulate) {
    // The positions in blocks of 256 (128 pairs): a block's B (128 rows of Opad pairs, up to
    // 256 KB) and A (Cpad rows of 256 + a tap's offset) stay in L2 while every tap and channel
    // block passes over them; the sums go back to acc after each block.
    const long pairs = Kpad / 2, kStep = 128;
    for (long k0 = 0; k0 < pairs; k0 += kStep) {
        const long k1 = pairs - k0 < kStep ? pairs : k0 + kStep;
        const int add = accumulate || k0 > 0;
        for (int t = 0; t < KH * KW; t++) {
            const long off = (long)(t / KW) * Wp + t % KW;
            float *at = acc + (long)t * Cpad * Opad;
            for (int cb = 0; cb < Cpad; cb += 8) {
                for (int ob = 0; ob < Opad; ob += 48) {
                    const int lanes = Opad - ob;
                    if (lanes > 32) fk_dot_wgrad_block3(at, Opad, A, rowLen, B, ldB, off, cb, ob, k0, k1, 8, lanes, add);
                    else if (lanes > 16) fk_dot_wgrad_block2(at, Opad, A, rowLen, B, ldB, off, cb, ob, k0, k1, 8, lanes, add);
                    else fk_dot_wgrad_block1(at, Opad, A, rowLen, B, ldB, off, cb, ob, k0, k1, 8, lanes, add);
                }
            }
        }
    }
}

/// One block of C = A B on the packed operands of fk_bf16_pack_a / fk_bf16_pack_b: rows
/// mb..mb+7 (within one group of 16 rows of A) by columns nb..nb+16 NV-1 (NV groups of B).
#define FK_DOT_GEMM_BLOCK(NV)                                                                      \
DOT static void fk_dot_gemm_block##NV(float *C, long ldc, const uint16_t *Ap, const uint32_t *Bp, int KB, int mb, \
                                      int nb, int rows, long lanes) {                              \
    __m512 c[8][NV];                                                                               \
    for (int r = 0; r < 8; r++)                                                                    \
        for (int v = 0; v < NV; v++) c[r][v] = _mm512_setzero_ps();                                \
    const uint16_t *a = Ap + (long)(mb / 16) * KB * 512 + (mb % 16) * 32;                          \
    const uint32_t *b = Bp + (long)(nb / 16) * KB * 256;                                           \
    for (int kb = 0; kb < KB; kb++, a += 512, b += 256) {                                          \
        for (int p = 0; p < 16; p++) {                                                             \
            __m512bh bv[NV];                                                                       \
            for (int v = 0; v < NV; v++) bv[v] = fk_pairs_load(b + (long)v * KB * 256 + p * 16);   \
            for (int r = 0; r < 8; r++) {                                                          \
                const __m512bh av = fk_pair_bcast(a + r * 32 + 2 * p);                             \
                for (int v = 0; v < NV; v++) c[r][v] = _mm512_dpbf16_ps(c[r][v], av, bv[v]);       \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    FK_DOT_STORE(NV, C + (long)mb * ldc + nb, ldc, rows, lanes, 0);                                    \
}
FK_DOT_GEMM_BLOCK(1)
FK_DOT_GEMM_BLOCK(2)
FK_DOT_GEMM_BLOCK(3)

DOT static void fk_dot_gemm_one(float *C, long ldc, const uint16_t *Ap, const uint32_t *Bp, int KB, int mb, int nb,
                                int mEnd, int nEnd) {
    const int rows = mEnd - mb < 8 ? mEnd - mb : 8;
    const long lanes = nEnd - nb;
    if (lanes > 32) fk_dot_gemm_block3(C, ldc, Ap, Bp, KB, mb, nb, rows, lanes);
    else if (lanes > 16) fk_dot_gemm_block2(C, ldc, Ap, Bp, KB, mb, nb, rows, lanes);
    else fk_dot_gemm_block1(C, ldc, Ap, Bp, KB, mb, nb, rows, lanes);
}
#endif

#ifdef FK_HAVE_DOT
/// Outputs per block of the compact convolution: 7 x 3 sums, 3 weight vectors and 7 broadcasts
/// fill the 32 registers (8 x 3 made clang keep three sums on the stack; 12 x 2 and 24 x 1 ran at
/// half the rate, their positions' addresses no longer in registers).
#define FK_CR 7

/// One block of the compact convolution: the FK_CR outputs whose grid positions are g[] (the
/// first `rows` kept: compact positions q0..q0+rows-1) by output channels ob..ob+16 NV-1. The
/// roles of the grid kernel above swapped: the weights stream as vectors of 16 output channels,
/// the positions are broadcast, so any FK_CR positions make a block and no product is spent on the
/// grid's extra columns and rows. Input pairs outside, taps inside: a pair's grid rows around the
/// block's positions stay in L1 while its taps pass.
#define FK_DOT_CCONV_BLOCK(NV)                                                                     \
DOT static void fk_dot_cconv_block##NV(float *acc, long ldacc, const uint32_t *Wq, int OutPad, int pairs, int taps, \
                                       const long *toff, const uint32_t *X, long rowLen, const long *g, long q0,  \
                                       int ob, int rows, int lanes) {                              \
    __m512 c[FK_CR][NV];                                                                               \
    for (int r = 0; r < FK_CR; r++)                                                                    \
        for (int v = 0; v < NV; v++) c[r][v] = _mm512_setzero_ps();                                \
    for (int j = 0; j < pairs; j++) {                                                              \
        const uint32_t *w = Wq + (long)j * taps * OutPad + ob;                                     \
        const uint32_t *xj = X + (long)j * rowLen;                                                 \
        for (int t = 0; t < taps; t++, w += OutPad) {                                              \
            const uint32_t *xt = xj + toff[t];                                                     \
            __m512bh wv[NV];                                                                       \
            for (int v = 0; v < NV; v++) wv[v] = fk_pairs_load(w + 16 * v);                       \
            for (int r = 0; r < FK_CR; r++) {                                                          \
                const __m512bh xv = fk_pair_bcast(xt + g[r]);                                      \
                for (int v = 0; v < NV; v++) c[r][v] = _mm512_dpbf16_ps(c[r][v], xv, wv[v]);       \
            }                                                                                      \
        }                                                                                          \
    }                                                                                              \
    /* c[r][v] holds channels ob+16v.. of position q0+r: written down the channels' rows. */       \
    const __m512i rowsApart = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0), \
                                                 _mm512_set1_epi32((int)ldacc));                   \
    for (int v = 0; v < NV; v++) {                                                                 \
        const int n = lanes - 16 * v;                                                              \
        if (n <= 0) break;                                                                         \
        const __mmask16 m = n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1);              \
        float *d = acc + (long)(ob + 16 * v) * ldacc + q0;                                         \
        for (int r = 0; r < rows; r++) _mm512_mask_i32scatter_ps(d + r, m, rowsApart, c[r][v], 4);  \
    }                                                                                              \
}
FK_DOT_CCONV_BLOCK(1)
FK_DOT_CCONV_BLOCK(2)
FK_DOT_CCONV_BLOCK(3)

DOT static void fk_dot_conv_compact(float *acc, long ldacc, const uint32_t *Wq, int OutPad, int pairs, int KH, int KW,
                                    const uint32_t *X, long rowLen, int Hp, int Wp, int OH, int OW, long qBegin,
                                    long qEnd, int oBegin, int oEnd) {
    const int taps = KH * KW;
    long toff[64];
    for (int t = 0; t < taps; t++) toff[t] = (long)(t / KW) * Wp + t % KW;
    const long plane = (long)OH * OW, cells = (long)Hp * Wp;
    // Output channels outside (48 channels' weights, pairs * taps * 192 bytes, stay in L2 while
    // the positions pass), positions inside. Measured on Zen 4 (one core, Tools/bench): passes of
    // 28-224 positions over every channel block instead, weights from L3, were 5-10% slower.
    for (int ob = oBegin; ob < oEnd; ob += 48) {
        const int lanes = oEnd - ob < 48 ? oEnd - ob : 48;
        for (long q0 = qBegin; q0 < qEnd; q0 += FK_CR) {
            const int rows = qEnd - q0 < FK_CR ? (int)(qEnd - q0) : FK_CR;
            long g[FK_CR];
            for (int r = 0; r < FK_CR; r++) {
                const long q = q0 + (r < rows ? r : rows - 1), s = q / plane, i = q % plane;
                g[r] = s * cells + (i / OW) * Wp + i % OW;
            }
            if (lanes > 32) fk_dot_cconv_block3(acc, ldacc, Wq, OutPad, pairs, taps, toff, X, rowLen, g, q0, ob, rows, lanes);
            else if (lanes > 16) fk_dot_cconv_block2(acc, ldacc, Wq, OutPad, pairs, taps, toff, X, rowLen, g, q0, ob, rows, lanes);
            else fk_dot_cconv_block1(acc, ldacc, Wq, OutPad, pairs, taps, toff, X, rowLen, g, q0, ob, rows, lanes);
        }
    }
}

/// fk_bf16_pack_conv_pairs with 16 output channels a vector: their values gathered (rows of w
/// C*taps apart, or flipped, taps apart), rounded, paired and stored as one line.
DOT static void fk_dot_pack_conv_pairs(uint32_t *dst, const float *w, int C, int taps, int flipped, int nOut, int nIn,
                                       int OutPad, int jBegin, int jEnd) {
    const long stride = flipped ? taps : (long)C * taps, inStride = flipped ? (long)C * taps : taps;
    const __m512i idx = _mm512_mullo_epi32(_mm512_set_epi32(15, 14, 13, 12, 11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
                                           _mm512_set1_epi32((int)stride));
    for (int ob = 0; ob < OutPad; ob += 16) {
        const int n = nOut - ob;
        const __mmask16 m = n >= 16 ? (__mmask16)0xffff : n <= 0 ? (__mmask16)0 : (__mmask16)((1u << n) - 1);
        for (int j = jBegin; j < jEnd; j++) {
            for (int t = 0; t < taps; t++) {
                uint32_t *d = dst + ((long)j * taps + t) * OutPad + ob;
                const int tt = flipped ? taps - 1 - t : t;
                __m512i pair = _mm512_setzero_si512();
                for (int h = 0; h < 2; h++) {
                    const int i = 2 * j + h;
                    if (i >= nIn || !m) continue;
                    const float *base = w + (long)ob * stride + (long)i * inStride + tt;
                    const __m512 v = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), m, idx, base, 4);
                    pair = _mm512_or_si512(pair, _mm512_slli_epi32(_mm512_maskz_mov_epi32(m, fk_bf16_round16(v)), 16 * h));
                }
                _mm512_storeu_si512(d, pair);
            }
        }
    }
}
#endif

void fk_bf16_pack_conv_pairs(uint32_t *dst, const float *w, int O, int C, int KH, int KW, int flipped, int OutPad,
                             int jBegin, int jEnd) {
    const int taps = KH * KW, nOut = flipped ? C : O, nIn = flipped ? O : C;
#ifdef FK_HAVE_DOT
    // The vector path where the CPU has the dot product (under fk_limit_bf16(0) too the scalar
    // one, which the tests compare with it).
    if (fk_bf16_dot_cpu() && fk_bf16_level() >= 1 && (long)16 * (flipped ? taps : (long)C * taps) < (1L << 31)) {
        fk_dot_pack_conv_pairs(dst, w, C, taps, flipped, nOut, nIn, OutPad, jBegin, jEnd);
        return;
    }
#endif
    // Blocks of 16 output channels: their rows of w (or, flipped, their columns) stay in cache
    // while the pairs and taps pass, and each write is 64 contiguous bytes.
    for (int ob = 0; ob < OutPad; ob += 16) {
        for (int j = jBegin; j < jEnd; j++) {
            for (int t = 0; t < taps; t++) {
                uint32_t *d = dst + ((long)j * taps + t) * OutPad + ob;
                for (int k = 0; k < 16; k++) {
                    const int o = ob + k;
                    uint32_t pair = 0;
                    for (int h = 0; h < 2; h++) {
                        const int i = 2 * j + h;
                        if (o >= nOut || i >= nIn) continue;
                        const float v = flipped ? w[((long)i * C + o) * taps + (taps - 1 - t)] : w[((long)o * C + i) * taps + t];
                        pair |= (uint32_t)fk_bf16_round(v) << (16 * h);
                    }
                    d[k] = pair;
                }
            }
        }
    }
}

int fk_bf16_conv_compact(float *acc, long ldacc, const uint32_t *Wq, int OutPad, int pairs, int KH, int KW,
                         const uint32_t *X, long rowLen, int Hp, int Wp, int OH, int OW, long qBegin, long qEnd,
                         int oBegin, int oEnd) {
#ifdef FK_HAVE_DOT
    if (fk_bf16_level() != 1 || KH * KW > 64 || (OutPad & 15) || oEnd > OutPad || OH > Hp || OW > Wp) return 0;
    if (qEnd > qBegin && oEnd > oBegin)
        fk_dot_conv_compact(acc, ldacc, Wq, OutPad, pairs, KH, KW, X, rowLen, Hp, Wp, OH, OW, qBegin, qEnd, oBegin, oEnd);
    return 1;
#else
    (void)acc; (void)ldacc; (void)Wq; (void)OutPad; (void)pairs; (void)KH; (void)KW; (void)X; (void)rowLen; (void)Hp;
    (void)Wp; (void)OH; (void)OW; (void)qBegin; (void)qEnd; (void)oBegin; (void)oEnd;
    return 0;
#endif
}

/// The loops of fk_bf16_tap_rows; COPY(out, src) moves one output row of OW values.
#define FK_TAP_ROWS(COPY) do {                                                                     \
    const long plane_ = (long)OH * OW, cells_ = (long)Hp * Wp, Q_ = (long)S * plane_;              \
    for (int t = 0; t < KH * KW; t++) {                                                            \
        const long off = (long)(t / KW) * Wp + t % KW;                                             \
        for (int c = cBegin; c < cEnd; c++) {                                                      \
            uint16_t *d = dst + ((long)t * Cpad + c) * rowLen2;                                    \
            const uint16_t *a = A + (long)c * rowLen + off;                                        \
            for (int s = 0; s < S; s++)                                                            \
                for (int y = 0; y < OH; y++) COPY(d + s * plane_ + (long)y * OW, a + s * cells_ + (long)y * Wp); \
            if (Kpad > Q_) memset(d + Q_, 0, (size_t)(Kpad - Q_) * 2);                              \
        }                                                                                          \
    }                                                                                              \
} while (0)

#define FK_ROW_MEMCPY(out, src) memcpy((out), (src), (size_t)OW * 2)

#ifdef FK_HAVE_DOT
/// One output row in masked moves of 32 values (a quarter faster than memcpy for rows of 5 and
/// 10 on Zen 4).
#define FK_ROW_MASKED(out, src) do {                                                               \
    for (int x0 = 0; x0 < OW; x0 += 32) {                                                          \
        const int n_ = OW - x0 < 32 ? OW - x0 : 32;                                                \
        const __mmask32 m_ = n_ == 32 ? (__mmask32)0xffffffffu : (__mmask32)((1u << n_) - 1);      \
        _mm512_mask_storeu_epi16((out) + x0, m_, _mm512_maskz_loadu_epi16(m_, (src) + x0));        \
    }                                                                                              \
} while (0)

DOT static void fk_dot_tap_rows(uint16_t *dst, long rowLen2, const uint16_t *A, long rowLen, int Cpad, int S, int OH,
                                int OW, int Hp, int Wp, int KH, int KW, long Kpad, int cBegin, int cEnd) {
    FK_TAP_ROWS(FK_ROW_MASKED);
}
#endif

void fk_bf16_tap_rows(uint16_t *dst, long rowLen2, const uint16_t *A, long rowLen, int Cpad, int S, int OH, int OW,
                      int Hp, int Wp, int KH, int KW, long Kpad, int cBegin, int cEnd) {
#ifdef FK_HAVE_DOT
    if (fk_bf16_dot_cpu() && fk_bf16_level() >= 1) {  // as fk_bf16_pack_conv_pairs
        fk_dot_tap_rows(dst, rowLen2, A, rowLen, Cpad, S, OH, OW, Hp, Wp, KH, KW, Kpad, cBegin, cEnd);
        return;
    }
#endif
    FK_TAP_ROWS(FK_ROW_MEMCPY);
}

void fk_bf16_dot_conv(float *acc, long ldacc, const uint16_t *Wt, int O, int Cpad, int KH, int KW, const uint32_t *X,
                      long rowLen, int Wp, long pBegin, long pEnd, int oBegin, int oEnd) {
#ifdef FK_HAVE_DOT
    fk_dot_conv_kernel(acc, ldacc, Wt, O, Cpad, KH, KW, X, rowLen, Wp, pBegin, pEnd, oBegin, oEnd);
#else
    (void)acc; (void)ldacc; (void)Wt; (void)O; (void)Cpad; (void)KH; (void)KW; (void)X; (void)rowLen; (void)Wp;
    (void)pBegin; (void)pEnd; (void)oBegin; (void)oEnd;
#endif
}

void fk_bf16_dot_weight_grad(float *acc, const uint16_t *A, long rowLen, const uint32_t *B, long ldB, int KH, int KW,
                             int Wp, int Cpad, int Opad, long Kpad, int accumulate) {
#ifdef FK_HAVE_DOT
    fk_dot_weight_grad_kernel(acc, A, rowLen, B, ldB, KH, KW, Wp, Cpad, Opad, Kpad, accumulate);
#else
    (void)acc; (void)A; (void)rowLen; (void)B; (void)ldB; (void)KH; (void)KW; (void)Wp; (void)Cpad; (void)Opad;
    (void)Kpad; (void)accumulate;
#endif
}

void fk_bf16_dot_gemm(float *C, long ldc, const uint16_t *Ap, const uint32_t *Bp, int Kp, int mBegin, int mEnd,
                      int nBegin, int nEnd, int nOuter) {
#ifdef FK_HAVE_DOT
    const int KB = Kp / 32;
    // The operand of the outer loop is read once; the inner one's panel once per outer block.
    if (nOuter) {
        for (int nb = nBegin; nb < nEnd; nb += 48)
            for (int mb = mBegin; mb < mEnd; mb += 8) fk_dot_gemm_one(C, ldc, Ap, Bp, KB, mb, nb, mEnd, nEnd);
    } else {
        for (int mb = mBegin; mb < mEnd; mb += 8)
            for (int nb = nBegin; nb < nEnd; nb += 48) fk_dot_gemm_one(C, ldc, Ap, Bp, KB, mb, nb, mEnd, nEnd);
    }
#else
    (void)C; (void)ldc; (void)Ap; (void)Bp; (void)Kp; (void)mBegin; (void)mEnd; (void)nBegin; (void)nEnd; (void)nOuter;
#endif
}
