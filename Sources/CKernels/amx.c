// bf16 convolution products on AMX (Intel's tile matrix unit: Sapphire Rapids and later), for
// plans compiled with `--compute bf16` and training with `compute = bf16`; the entry points
// (fk_bf16_conv, fk_bf16_weight_grad, fk_bf16_gemm) hand the same operands to bf16dot.c's
// AVX512_BF16 kernels where there is no AMX (fk_bf16_level), and the packing and epilogues
// here serve both.
//
// Why AMX first: measured on the Xeon this was written on (family 6, model 207), one core,
// register-resident loops (Tools/bench/bf16_peak.c): vfmadd (f32, zmm) 166-173 GFLOP/s,
// vdpbf16ps (bf16 pairs into f32, zmm) 84-87, tdpbf16ps (AMX tiles) 1,180-2,730. The AVX-512
// bf16 dot product is half as fast as the f32 FMA there, twice as fast on Zen 4 (bf16dot.c).
//
// A stride-1 convolution as an implicit GEMM, without im2col: the input of a chunk of samples is
// rounded once into a zero-padded grid of channel pairs, X[c/2][s][y][x][c%2] (Hp = OH + KH - 1
// rows, Wp = OW + KW - 1 columns, flattened: row `rowLen` dwords per pair), so that for a tap
// (ky, kx) the 16 output positions p..p+15 of the flattened grid read X at p + ky*Wp + kx: one
// strided tile load. The outputs at the grid's extra columns and rows are computed and dropped
// (6 to 33% more products on 48x48 to 6x6 planes, against K = 9C im2col panels that cost more
// than the products). acc[o][p] = sum over taps and channels of W[tap][o][c] * X[c][p + off].
//   W    [KH*KW][Opad][Cpad] bf16 (Opad = O rounded up to 16, Cpad = C rounded up to 32, zeros
//        in the padding), packed once per plan (fk_bf16_pack_conv_weights);
//   X    built per chunk (fk_bf16_pad_pairs);
//   acc  [O][cols] f32, then the epilogue (fk_conv_epilogue_grid) keeps the real outputs.
// Tiles: C blocks of 16 channels x 16 positions f32 (tiles 0-3, a 2 x 2 block of them), A tiles
// of 16 channels x 32 input channels (4, 5), B tiles of 16 channel pairs x 16 positions (6, 7).
// Rounding to bf16 is to nearest, ties to even (fk_bf16_round), the same in every path, so a test
// can recompute the products exactly from rounded operands.
#include "ckernels.h"
#include "bf16_kernels.h"
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__linux__) && defined(__clang__)
#include <immintrin.h>
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#define FK_HAVE_AMX 1
#define AMX __attribute__((target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl")))
#define AVX512 __attribute__((target("avx512f,avx512bw,avx512vl")))
#endif


/// 1 once the CPU has AMX-TILE, AMX-BF16 and AVX-512F/BW/VL and Linux granted this process the tile
/// data state (arch_prctl ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA: without it the first tile
/// instruction faults). Asked once; the grant holds for every thread of the process.
/// 1 when CPUID says AMX-TILE, AMX-BF16 and AVX-512F/BW/VL (whether or not the OS lets us use the tiles).
static int fk_amx_hardware(void) {
#ifdef FK_HAVE_AMX
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return 0;
    const int tile = (d >> 24) & 1, bf16 = (d >> 22) & 1;
    const int avx512 = ((b >> 16) & 1) && ((b >> 30) & 1) && ((b >> 31) & 1);  // avx512f, bw, vl
    return tile && bf16 && avx512;
#else
    return 0;
#endif
}

static int fk_amx_cpu(void) {
#ifdef FK_HAVE_AMX
    static _Atomic int cached = -1;
    if (cached < 0) {
        cached = fk_amx_hardware() &&
                 syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) == 0;
    }
    return cached;
#else
    return 0;
#endif
}

/// 1 where the AVX-512F/BW/VL helpers below (rounding, packing, epilogues) can run: every AMX
/// and every AVX512_BF16 CPU has them (bf16dot.c's CPU check asks it too).
int fk_avx512_cpu(void) {
#ifdef FK_HAVE_AMX
    static _Atomic int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        cached = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                 __builtin_cpu_supports("avx512vl");
    }
    return cached;
#else
    return 0;
#endif
}

static _Atomic int fk_bf16_limit = 2;

void fk_limit_bf16(int level) { fk_bf16_limit = level < 0 ? 0 : level > 2 ? 2 : level; }

int fk_bf16_level(void) {
    const int limit = fk_bf16_limit;
    if (limit >= 2 && fk_amx_cpu()) return 2;
    // The dot product by default only where it beats f32: on AMD's cores (Zen 4 runs it at twice
    // the f32 FMA's rate), not on Intel's (half the rate on the AMX Xeon and on a Xeon whose
    // hypervisor hides AMX: fk_bf16_dot_pays), so a process denied the tiles stays in f32.
    // Tests lower the limit to 1 to run it there anyway.
    if (limit >= 1 && fk_bf16_dot_cpu() && (limit == 1 || fk_bf16_dot_pays())) return 1;
    return 0;
}

int fk_bf16_any_unit_limit(void) {
    if (fk_amx_cpu()) return 2;
    return fk_bf16_dot_cpu() && !fk_bf16_dot_pays() ? 1 : 2;
}

uint16_t fk_bf16_round(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);  // NaN stays NaN
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1)) >> 16);
}

#ifdef FK_HAVE_AMX
AVX512 static void fk_bf16_pairs_avx512(uint32_t *dst, const float *a, const float *b, long n) {
    for (long p = 0; p < n; p += 16) {
        const __mmask16 m = n - p >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - p)) - 1);
        const __m512i lo = fk_bf16_round16(_mm512_maskz_loadu_ps(m, a + p));
        const __m512i hi = b ? _mm512_slli_epi32(fk_bf16_round16(_mm512_maskz_loadu_ps(m, b + p)), 16) : _mm512_setzero_si512();
        _mm512_mask_storeu_epi32(dst + p, m, _mm512_or_si512(lo, hi));
    }
}
#endif

/// dst[p] = rounded a[p] | rounded b[p] << 16 for p < n (b NULL: zeros in the upper halves).
static void fk_bf16_pairs(uint32_t *dst, const float *a, const float *b, long n) {
    long p = 0;
#ifdef FK_HAVE_AMX
    if (fk_avx512_cpu()) {
        fk_bf16_pairs_avx512(dst, a, b, n);
        return;
    }
#endif
    for (; p < n; p++) dst[p] = (uint32_t)fk_bf16_round(a[p]) | (b ? (uint32_t)fk_bf16_round(b[p]) << 16 : 0u);
}

void fk_bf16_pack_conv_weights(uint16_t *dst, const float *w, int O, int C, int KH, int KW, int Opad, int Cpad) {
    for (int t = 0; t < KH * KW; t++) {
        for (int o = 0; o < Opad; o++) {
            uint16_t *d = dst + ((long)t * Opad + o) * Cpad;
            for (int c = 0; c < Cpad; c++) d[c] = o < O && c < C ? fk_bf16_round(w[((long)o * C + c) * KH * KW + t]) : 0;
        }
    }
}

void fk_bf16_pack_conv_weights_flipped(uint16_t *dst, const float *w, int O, int C, int KH, int KW, int Cpad, int Opad,
                                       int cBegin, int cEnd) {
    const int taps = KH * KW;
    for (int c = cBegin; c < cEnd; c++) {
        for (int t = 0; t < taps; t++) {
            uint16_t *d = dst + ((long)t * Cpad + c) * Opad;
            if (c >= C) { memset(d, 0, (size_t)Opad * 2); continue; }
            // tap (ky, kx) of the flipped kernel is tap (KH-1-ky, KW-1-kx) = taps-1-t of w
            const float *src = w + (long)c * taps + (taps - 1 - t);
            for (int o = 0; o < O; o++) d[o] = fk_bf16_round(src[(long)o * C * taps]);
            if (Opad > O) memset(d + O, 0, (size_t)(Opad - O) * 2);
        }
    }
}

#ifdef FK_HAVE_AMX
/// One sample's plane pair of fk_bf16_pad_pairs: row by row, 16 columns at a time, each lane
/// loaded (masked: no fault outside the input) where its input column exists, zero elsewhere.
AVX512 static void fk_pad_plane_avx512(uint32_t *g, const float *a, const float *b, int H, int W, int Hp, int Wp,
                                       int padTop, int padLeft) {
    for (int y = 0; y < Hp; y++) {
        uint32_t *r = g + (long)y * Wp;
        const int iy = y - padTop;
        const int inside = iy >= 0 && iy < H;
        const float *ar = a + (long)iy * W - padLeft, *br = b ? b + (long)iy * W - padLeft : NULL;
        for (int xx = 0; xx < Wp; xx += 16) {
            const int n = Wp - xx < 16 ? Wp - xx : 16;
            const __mmask16 store = (__mmask16)((1u << n) - 1);
            __mmask16 load = 0;
            if (inside) {
                int lo = padLeft - xx, hi = W + padLeft - xx;  // lanes [lo, hi) hold input columns
                if (lo < 0) lo = 0;
                if (hi > n) hi = n;
                if (hi > lo) load = (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
            }
            __m512i v = _mm512_setzero_si512();
            if (load) {
                v = fk_bf16_round16(_mm512_maskz_loadu_ps(load, ar + xx));
                if (br) v = _mm512_or_si512(v, _mm512_slli_epi32(fk_bf16_round16(_mm512_maskz_loadu_ps(load, br + xx)), 16));
                v = _mm512_maskz_mov_epi32(load, v);
            }
            _mm512_mask_storeu_epi32(r + xx, store, v);
        }
    }
}
#endif

void fk_bf16_pad_pairs(uint32_t *dst, long rowLen, const float *x, long xStride, long channelStride, int S, int C,
                       int H, int W, int Hp, int Wp, int padTop, int padLeft, int pairBegin, int pairEnd) {
    const long grid = (long)Hp * Wp;
    if (H == 1 && W == 1 && Hp == 1 && Wp == 1 && padTop == 0 && padLeft == 0) {
        // A dense layer (a 1x1 plane): sample s's features 2j and 2j+1 are adjacent.
        for (int j = pairBegin; j < pairEnd; j++) {
            uint32_t *row = dst + (long)j * rowLen;
            for (int s = 0; s < S; s++) {
                const float *f = x + s * xStride + 2 * j * channelStride;
                row[s] = 2 * j >= C ? 0u : (uint32_t)fk_bf16_round(f[0]) | (2 * j + 1 < C ? (uint32_t)fk_bf16_round(f[channelStride]) << 16 : 0u);
            }
            if (rowLen > S) memset(row + S, 0, (size_t)(rowLen - S) * 4);
        }
        return;
    }
    for (int j = pairBegin; j < pairEnd; j++) {
        uint32_t *row = dst + (long)j * rowLen;
        if (2 * j >= C) { memset(row, 0, (size_t)rowLen * 4); continue; }
        for (int s = 0; s < S; s++) {
            const float *a = x + s * xStride + (long)(2 * j) * channelStride;
            const float *b = 2 * j + 1 < C ? a + channelStride : NULL;
            uint32_t *g = row + s * grid;
#ifdef FK_HAVE_AMX
            if (fk_avx512_cpu()) { fk_pad_plane_avx512(g, a, b, H, W, Hp, Wp, padTop, padLeft); continue; }
#endif
            for (int y = 0; y < Hp; y++) {
                uint32_t *r = g + (long)y * Wp;
                const int iy = y - padTop;
                if (iy < 0 || iy >= H) { memset(r, 0, (size_t)Wp * 4); continue; }
                // columns x = padLeft + ix hold input column ix, for 0 <= ix < W within [0, Wp)
                const int lo = padLeft < 0 ? 0 : padLeft > Wp ? Wp : padLeft;
                int hi = padLeft + W > Wp ? Wp : padLeft + W;
                if (hi < lo) hi = lo;
                if (lo > 0) memset(r, 0, (size_t)lo * 4);
                if (hi > lo) fk_bf16_pairs(r + lo, a + (long)iy * W + (lo - padLeft), b ? b + (long)iy * W + (lo - padLeft) : NULL, hi - lo);
                if (hi < Wp) memset(r + hi, 0, (size_t)(Wp - hi) * 4);
            }
        }
        const long used = S * grid;
        if (rowLen > used) memset(row + used, 0, (size_t)(rowLen - used) * 4);
    }
}

#ifdef FK_HAVE_AMX
/// One row of fk_conv_epilogue_grid, 16 lanes at a time (the last masked).
/// With `stats`, s12[0..7] += the written values and s12[8..15] += their squares, in double
/// (lanes kept apart; the caller sums them).
AVX512 static void fk_epilogue_row_avx512(float *y, const float *a, int n, float bo, int preRelu, int hasScale,
                                          float sc, float sh, int postRelu, double *s12) {
    const __m512 vb = _mm512_set1_ps(bo), vs = _mm512_set1_ps(sc), vh = _mm512_set1_ps(sh), zero = _mm512_setzero_ps();
    __m512d s1 = _mm512_setzero_pd(), s2 = _mm512_setzero_pd();
    for (int i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 z = _mm512_add_ps(_mm512_maskz_loadu_ps(m, a + i), vb);
        if (preRelu) z = _mm512_max_ps(z, zero);
        if (hasScale) z = _mm512_fmadd_ps(z, vs, vh);
        if (postRelu) z = _mm512_max_ps(z, zero);
        _mm512_mask_storeu_ps(y + i, m, z);
        if (s12) {
            z = _mm512_maskz_mov_ps(m, z);
            const __m512d lo = _mm512_cvtps_pd(_mm512_castps512_ps256(z));
            const __m512d hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(z), 1)));
            s1 = _mm512_add_pd(s1, _mm512_add_pd(lo, hi));
            s2 = _mm512_fmadd_pd(lo, lo, _mm512_fmadd_pd(hi, hi, s2));
        }
    }
    if (s12) {
        _mm512_storeu_pd(s12, _mm512_add_pd(_mm512_loadu_pd(s12), s1));
        _mm512_storeu_pd(s12 + 8, _mm512_add_pd(_mm512_loadu_pd(s12 + 8), s2));
    }
}
#endif

void fk_conv_epilogue_grid(float *out, const float *acc, long ldacc, int O, int S, int OH, int OW, int Hp, int Wp,
                           const float *bias, int preRelu, const float *scale, const float *shift, int postRelu,
                           int oBegin, int oEnd, double *sum, double *sumsq) {
    #pragma clang fp reassociate(on)
    for (int o = oBegin; o < oEnd; o++) {
        const float bo = bias ? bias[o] : 0.0f, sc = scale ? scale[o] : 1.0f, sh = scale ? shift[o] : 0.0f;
        double t1 = 0, t2 = 0;
        if (OH == 1 && OW == 1 && Hp == 1 && Wp == 1) {  // a dense layer: out (S, O)
            for (int s = 0; s < S; s++) {
                float z = acc[(long)o * ldacc + s] + bo;
                if (preRelu) z = z > 0 ? z : 0;
                if (scale) z = z * sc + sh;
                if (postRelu) z = z > 0 ? z : 0;
                out[(long)s * O + o] = z;
                t1 += z; t2 += (double)z * z;
            }
            if (sum) { sum[o] += t1; sumsq[o] += t2; }
            continue;
        }
#ifdef FK_HAVE_AMX
        double s12[16] = {0};
#endif
        for (int s = 0; s < S; s++) {
            for (int oy = 0; oy < OH; oy++) {
                const float *a = acc + (long)o * ldacc + (long)s * Hp * Wp + (long)oy * Wp;
                float *y = out + (((long)s * O + o) * OH + oy) * OW;
#ifdef FK_HAVE_AMX
                if (fk_avx512_cpu()) {
                    fk_epilogue_row_avx512(y, a, OW, bo, preRelu, scale != 0, sc, sh, postRelu, sum ? s12 : NULL);
                    continue;
                }
#endif
                for (int ox = 0; ox < OW; ox++) {
                    float z = a[ox] + bo;
                    if (preRelu) z = z > 0 ? z : 0;
                    if (scale) z = z * sc + sh;
                    if (postRelu) z = z > 0 ? z : 0;
                    y[ox] = z;
                    t1 += z; t2 += (double)z * z;
                }
            }
        }
#ifdef FK_HAVE_AMX
        for (int k = 0; k < 8; k++) { t1 += s12[k]; t2 += s12[8 + k]; }
#endif
        if (sum) { sum[o] += t1; sumsq[o] += t2; }
    }
}

#ifdef FK_HAVE_AMX
typedef struct {
    uint8_t palette, startRow, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} fk_tile_config;

/// Every kernel here uses the 8 tiles as 16 rows of 64 bytes (f32 16 x 16, bf16 16 x 32, pairs
/// 16 x 16); each thread configures its tiles before its first tile instruction.
AMX static inline void fk_amx_configure(void) {
    fk_tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) { cfg.colsb[t] = 64; cfg.rows[t] = 16; }
    _tile_loadconfig(&cfg);
}

/// Tile T into the f32 matrix M (rows ld floats apart) at (row, col), of which the rows below
/// rowEnd and the columns below colEnd are kept: stored in place when whole, else through `tmp`.
#define FK_STORE_TILE(T, M, ld, row, col, rowEnd, colEnd) do {                                   \
    const long vr = (rowEnd) - (row) < 16 ? (rowEnd) - (row) : 16;                               \
    const long vc = (colEnd) - (col) < 16 ? (colEnd) - (col) : 16;                               \
    float *c = (M) + (long)(row) * (ld) + (col);                                                 \
    if (vr == 16 && vc == 16) {                                                                  \
        _tile_stored(T, c, (ld) * 4);                                                            \
    } else {                                                                                     \
        _tile_stored(T, tmp, 64);                                                                \
        for (long r = 0; r < vr; r++) memcpy(c + r * (ld), tmp + r * 16, (size_t)vc * 4);       \
    }                                                                                            \
} while (0)

/// Tile T, the conv C block's (i, j): acc[ob + 16 i..][pb + 16 j..] within oEnd and pEnd.
#define FK_STORE(T, i, j) FK_STORE_TILE(T, acc, ldacc, ob + 16 * (i), pb + 16 * (j), oEnd, pEnd)

AMX static void fk_amx_conv_tiles(float *acc, long ldacc, const uint16_t *Wt, int O, int Cpad, int KH, int KW,
                                  const uint32_t *X, long rowLen, int Wp, long pBegin, long pEnd, int oBegin, int oEnd) {
    fk_amx_configure();
    float tmp[256] __attribute__((aligned(64)));
    const int Opad = (O + 15) & ~15;
    const long strideA = (long)Cpad * 2, strideB = rowLen * 4;
    // Output channels outside, positions inside: one block of 32 channels' weights (KH*KW*Cpad*64
    // bytes, 295 KB for 512 channels of 3x3) stays in L2 while the positions stream past it,
    // instead of every block of 32 positions reading all the weights again.
    for (int ob = oBegin; ob < oEnd; ob += 32) {
        const int twoO = oEnd - ob > 16;
        for (long pb = pBegin; pb < pEnd; pb += 32) {
            const int twoP = pEnd - pb > 16;
            _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
            for (int ky = 0; ky < KH; ky++) {
                for (int kx = 0; kx < KW; kx++) {
                    const long off = pb + (long)ky * Wp + kx;
                    const uint16_t *a0 = Wt + ((long)(ky * KW + kx) * Opad + ob) * Cpad;
                    for (int cb = 0; cb < Cpad; cb += 32) {
                        const uint32_t *b0 = X + (long)(cb / 2) * rowLen + off;
                        _tile_loadd(4, a0 + cb, strideA);
                        _tile_loadd(6, b0, strideB);
                        _tile_dpbf16ps(0, 4, 6);
                        if (twoP) { _tile_loadd(7, b0 + 16, strideB); _tile_dpbf16ps(1, 4, 7); }
                        if (twoO) {
                            _tile_loadd(5, a0 + 16L * Cpad + cb, strideA);
                            _tile_dpbf16ps(2, 5, 6);
                            if (twoP) _tile_dpbf16ps(3, 5, 7);
                        }
                    }
                }
            }
            FK_STORE(0, 0, 0);
            if (twoP) FK_STORE(1, 0, 1);
            if (twoO) { FK_STORE(2, 1, 0); if (twoP) FK_STORE(3, 1, 1); }
        }
    }
    _tile_release();
}
#endif

int fk_bf16_conv(float *acc, long ldacc, const uint16_t *Wt, int O, int Cpad, int KH, int KW,
                 const uint32_t *X, long rowLen, int Wp, long pBegin, long pEnd, int oBegin, int oEnd) {
    const int level = fk_bf16_level();
    if (level == 0 || (Cpad & 31) || (pBegin & 15) || (oBegin & 15) || oEnd > O) return 0;
    if (pEnd <= pBegin || oEnd <= oBegin) return 1;
#ifdef FK_HAVE_AMX
    if (level == 2) {
        fk_amx_conv_tiles(acc, ldacc, Wt, O, Cpad, KH, KW, X, rowLen, Wp, pBegin, pEnd, oBegin, oEnd);
        return 1;
    }
#endif
    fk_bf16_dot_conv(acc, ldacc, Wt, O, Cpad, KH, KW, X, rowLen, Wp, pBegin, pEnd, oBegin, oEnd);
    return 1;
}

// The weight gradient in bf16 (training with `compute = bf16`), on the padded grid of the
// forward: with the output gradient placed on the grid's positions (zeros at its extra columns
// and rows), dw[o][c][t] = sum over grid positions p of dz[o][p] * X[c][p + ky*Wp + kx] for tap
// t = ky*KW + kx, X the padded input. On AMX as C^T = A * B: A = X in bf16, one channel per row
// (a tile row is 32 consecutive positions, read at the tap's offset), B = dz transposed into
// position pairs (row r holds positions 2r and 2r+1 of every output channel); tiles of 16 input
// x 16 output channels accumulate over the positions in f32. The input is rounded once per
// chunk, not once per tap as im2col rows would be (measured: building im2col rows was 13% of a
// vgg_tuned step).

#ifdef FK_HAVE_AMX
/// dst[i] = bf16(src[i]) for i < n, 16 at a time (the last masked).
AVX512 static void fk_bf16_row_avx512(uint16_t *dst, const float *src, long n) {
    for (long i = 0; i < n; i += 16) {
        const __mmask16 m = n - i >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (n - i)) - 1);
        const __m512i r = fk_bf16_round16(_mm512_maskz_loadu_ps(m, src + i));
        _mm256_mask_storeu_epi16(dst + i, m, _mm512_cvtepi32_epi16(r));
    }
}
#endif

static void fk_bf16_row(uint16_t *dst, const float *src, long n) {
#ifdef FK_HAVE_AMX
    if (fk_avx512_cpu()) { fk_bf16_row_avx512(dst, src, n); return; }
#endif
    for (long i = 0; i < n; i++) dst[i] = fk_bf16_round(src[i]);
}

void fk_bf16_pad_rows(uint16_t *dst, long rowLen, const float *x, long xStride, int S, int C, int H, int W, int Hp,
                      int Wp, int padTop, int padLeft, int cBegin, int cEnd) {
    const long grid = (long)Hp * Wp, used = S * grid;
    // columns xx = padLeft + ix hold input column ix, for 0 <= ix < W within [0, Wp)
    const int lo = padLeft < 0 ? 0 : padLeft > Wp ? Wp : padLeft;
    int hi = padLeft + W > Wp ? Wp : padLeft + W;
    if (hi < lo) hi = lo;
    for (int c = cBegin; c < cEnd; c++) {
        uint16_t *row = dst + (long)c * rowLen;
        if (c >= C) { memset(row, 0, (size_t)rowLen * 2); continue; }
        for (int s = 0; s < S; s++) {
            const float *plane = x + s * xStride + (long)c * H * W;
            for (int y = 0; y < Hp; y++) {
                uint16_t *r = row + s * grid + (long)y * Wp;
                const int iy = y - padTop;
                if (iy < 0 || iy >= H) { memset(r, 0, (size_t)Wp * 2); continue; }
                if (lo > 0) memset(r, 0, (size_t)lo * 2);
                if (hi > lo) fk_bf16_row(r + lo, plane + (long)iy * W + (lo - padLeft), hi - lo);
                if (hi < Wp) memset(r + hi, 0, (size_t)(Wp - hi) * 2);
            }
        }
        if (rowLen > used) memset(row + used, 0, (size_t)(rowLen - used) * 2);
    }
}

#ifdef FK_HAVE_AMX
/// Row o of fk_bf16_pair_rows_transposed: 32 positions at a time, paired and scattered down
/// the column.
AVX512 static void fk_pair_column_avx512(uint32_t *dst, long ldB, const float *src, long K, long Kpad) {
    __m512i idx;
    {
        uint16_t ix[32];
        for (int i = 0; i < 16; i++) { ix[2 * i] = (uint16_t)(4 * i); ix[2 * i + 1] = (uint16_t)(4 * i + 2); }
        idx = _mm512_loadu_si512(ix);
    }
    __m512i vindex;
    {
        int32_t vi[16];
        for (int i = 0; i < 16; i++) vi[i] = (int32_t)(i * ldB);
        vindex = _mm512_loadu_si512(vi);
    }
    for (long p = 0; p < Kpad; p += 32) {
        const long n = K - p;
        const __mmask16 ma = n >= 16 ? (__mmask16)0xffff : n <= 0 ? 0 : (__mmask16)((1u << n) - 1);
        const __mmask16 mb = n >= 32 ? (__mmask16)0xffff : n <= 16 ? 0 : (__mmask16)((1u << (n - 16)) - 1);
        const __m512i a = fk_bf16_round16(_mm512_maskz_loadu_ps(ma, src + p));
        const __m512i b = fk_bf16_round16(_mm512_maskz_loadu_ps(mb, src + p + 16));
        // zero the lanes beyond K (the rounding of a masked zero is zero already)
        const __m512i pairs = _mm512_permutex2var_epi16(a, idx, b);
        const long rows = (Kpad - p) / 2 < 16 ? (Kpad - p) / 2 : 16;
        const __mmask16 ms = rows >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << rows) - 1);
        _mm512_mask_i32scatter_epi32(dst + (p / 2) * ldB, ms, vindex, pairs, 4);
    }
}
#endif

void fk_bf16_grid_pairs_transposed(uint32_t *dst, long ldB, float *work, const float *dz, long ld, int O, int S, int OH,
                                   int OW, int Hp, int Wp, long Kpad, int oBegin, int oEnd) {
    const long P = (long)OH * OW, grid = (long)Hp * Wp;
    for (int o = oBegin; o < oEnd; o++) {
        if (o >= O) {
            for (long r = 0; r < Kpad / 2; r++) dst[r * ldB + o] = 0;
            continue;
        }
        // The channel's gradient on the grid, then paired down its column of B.
        const float *src = dz + (long)o * ld;
        memset(work, 0, (size_t)Kpad * 4);
        for (int s = 0; s < S; s++) {
            for (int y = 0; y < OH; y++) memcpy(work + s * grid + (long)y * Wp, src + s * P + (long)y * OW, (size_t)OW * 4);
        }
#ifdef FK_HAVE_AMX
        if (fk_avx512_cpu() && ldB * 15 <= 0x7fffffff) { fk_pair_column_avx512(dst + o, ldB, work, Kpad, Kpad); continue; }
#endif
        for (long r = 0; r < Kpad / 2; r++) {
            dst[r * ldB + o] = (uint32_t)fk_bf16_round(work[2 * r]) | (uint32_t)fk_bf16_round(work[2 * r + 1]) << 16;
        }
    }
}

#ifdef FK_HAVE_AMX
AMX static void fk_amx_weight_grad_tiles(float *acc, const uint16_t *A, long rowLen, const uint32_t *B, long ldB, int KH,
                                         int KW, int Wp, int Cpad, int Opad, long Kpad, int accumulate) {
    fk_amx_configure();
    const long strideA = rowLen * 2, strideB = ldB * 4, strideC = (long)Opad * 4;
    for (int t = 0; t < KH * KW; t++) {
        const long off = (long)(t / KW) * Wp + t % KW;
        for (int cb = 0; cb < Cpad; cb += 32) {
            const int twoC = Cpad - cb > 16;
            const uint16_t *a0 = A + (long)cb * rowLen + off, *a1 = a0 + 16 * rowLen;
            for (int ob = 0; ob < Opad; ob += 32) {
                const int twoO = Opad - ob > 16;
                float *c00 = acc + ((long)t * Cpad + cb) * Opad + ob, *c10 = c00 + 16L * Opad;
                if (accumulate) {
                    _tile_loadd(0, c00, strideC);
                    if (twoO) _tile_loadd(1, c00 + 16, strideC);
                    if (twoC) { _tile_loadd(2, c10, strideC); if (twoO) _tile_loadd(3, c10 + 16, strideC); }
                } else {
                    _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
                }
                for (long k = 0; k < Kpad; k += 32) {
                    const uint32_t *b0 = B + (k / 2) * ldB + ob;
                    _tile_loadd(4, a0 + k, strideA);
                    _tile_loadd(6, b0, strideB);
                    _tile_dpbf16ps(0, 4, 6);
                    if (twoO) { _tile_loadd(7, b0 + 16, strideB); _tile_dpbf16ps(1, 4, 7); }
                    if (twoC) {
                        _tile_loadd(5, a1 + k, strideA);
                        _tile_dpbf16ps(2, 5, 6);
                        if (twoO) _tile_dpbf16ps(3, 5, 7);
                    }
                }
                _tile_stored(0, c00, strideC);
                if (twoO) _tile_stored(1, c00 + 16, strideC);
                if (twoC) { _tile_stored(2, c10, strideC); if (twoO) _tile_stored(3, c10 + 16, strideC); }
            }
        }
    }
    _tile_release();
}
#endif

int fk_bf16_weight_grad(float *acc, const uint16_t *A, long rowLen, const uint32_t *B, long ldB, int KH, int KW, int Wp,
                        int Cpad, int Opad, long Kpad, int accumulate) {
    const int level = fk_bf16_level();
    if (level == 0 || (Cpad & 15) || (Opad & 15) || (Kpad & 31)) return 0;
#ifdef FK_HAVE_AMX
    if (level == 2) {
        fk_amx_weight_grad_tiles(acc, A, rowLen, B, ldB, KH, KW, Wp, Cpad, Opad, Kpad, accumulate);
        return 1;
    }
#endif
    fk_bf16_dot_weight_grad(acc, A, rowLen, B, ldB, KH, KW, Wp, Cpad, Opad, Kpad, accumulate);
    return 1;
}

void fk_bf16_weight_grad_fold(float *dw, const float *const *parts, int T, int O, int C, int taps, int Cpad, int Opad,
                              int oBegin, int oEnd) {
    // A transposition: the partials run along o, dw along (c, t). In blocks of 16 input channels,
    // the block's taps * 16 rows of the partials each advance one float per o (their cache lines
    // stay in L1 for 16 values of o) and dw's row o gets the block's taps * 16 values at once;
    // o outermost, every read was a new line of L2.
    (void)O;
    for (int c0 = 0; c0 < C; c0 += 16) {
        const int c1 = C - c0 < 16 ? C : c0 + 16;
        for (int o = oBegin; o < oEnd; o++) {
            float *d = dw + ((long)o * C + c0) * taps;
            for (int c = c0; c < c1; c++) {
                for (int t = 0; t < taps; t++) {
                    const long at = ((long)t * Cpad + c) * Opad + o;
                    float s = parts[0][at];
                    for (int i = 1; i < T; i++) s += parts[i][at];
                    d[(c - c0) * taps + t] = s;
                }
            }
        }
    }
}

// General products for the dense layers of bf16 training (C = A B, C f32 M x N): both operands
// packed tile by tile so that every tile load reads 1 KB of consecutive memory (the dense
// layers' weights are 4608 x 2048: a tile read 16 rows 18 KB apart would touch 16 pages).
//   A: M x K bf16 as [ceil(M/16)][Kp/32][16 rows][32] (Kp = K rounded up to 32), zeros beyond;
//   B: K x N bf16 in K pairs as [ceil(N/16)][Kp/32][16 pair rows][16] dwords, zeros beyond.
// Either packer reads an f32 source through two strides (element (i, j) at src[i*rs + j*cs]),
// so that a matrix and its transpose pack alike; the contiguous cases run 16 lanes at a time.

/// Whether the packers take their 16-lane path: contiguous rows on a CPU with AVX-512 (every
/// AMX CPU has it), unless fk_limit_simd lowered the level for a test of the plain C path.
static int fk_pack_simd(long cs) {
#ifdef FK_HAVE_AMX
    return cs == 1 && fk_avx512_cpu() && fk_simd_level() >= 2;
#else
    (void)cs;
    return 0;
#endif
}

void fk_bf16_pack_a(uint16_t *dst, const float *src, long rs, long cs, int M, int K, int mBegin, int mEnd) {
    const int KB = (K + 31) / 32, simd = fk_pack_simd(cs);
    for (int m = mBegin; m < mEnd; m++) {
        for (int kb = 0; kb < KB; kb++) {
            uint16_t *d = dst + (((long)(m / 16) * KB + kb) * 16 + m % 16) * 32;
            const int k0 = kb * 32, n = m >= M ? 0 : K - k0 < 32 ? K - k0 : 32;
#ifdef FK_HAVE_AMX
            if (simd) {
                if (n > 0) fk_bf16_row_avx512(d, src + (long)m * rs + k0, n);
                if (n < 32) memset(d + n, 0, (size_t)(32 - n) * 2);
                continue;
            }
#endif
            for (int k = 0; k < 32; k++) d[k] = k < n ? fk_bf16_round(src[(long)m * rs + (long)(k0 + k) * cs]) : 0;
        }
    }
}

void fk_bf16_pack_b(uint32_t *dst, const float *src, long rs, long cs, int K, int N, int nBegin, int nEnd) {
    const int KB = (K + 31) / 32, simd = fk_pack_simd(cs);
    for (int nb = nBegin / 16; nb < (nEnd + 15) / 16; nb++) {
        const int n0 = nb * 16, nn = N - n0 < 16 ? (N - n0 > 0 ? N - n0 : 0) : 16;
        for (int p = 0; p < KB * 16; p++) {
            uint32_t *d = dst + (((long)nb * KB + p / 16) * 16 + p % 16) * 16;
            const int k = 2 * p;
            const float *a = k < K ? src + (long)k * rs + (long)n0 * cs : NULL;
            const float *b = k + 1 < K ? a + rs : NULL;
#ifdef FK_HAVE_AMX
            if (simd) {
                if (a && nn > 0) fk_bf16_pairs_avx512(d, a, b, nn);
                if (!a || nn < 16) memset(d + (a ? nn : 0), 0, (size_t)(16 - (a ? nn : 0)) * 4);
                continue;
            }
#endif
            for (int j = 0; j < 16; j++) {
                d[j] = a && j < nn ? (uint32_t)fk_bf16_round(a[(long)j * cs]) |
                                         (b ? (uint32_t)fk_bf16_round(b[(long)j * cs]) << 16 : 0u)
                                   : 0u;
            }
        }
    }
}

#ifdef FK_HAVE_AMX
/// Tile T, C's block (i, j) of the 32 x 32 block at (mb, nb), within mEnd and nEnd.
#define FK_STORE_MN(T, i, j) FK_STORE_TILE(T, C, ldc, mb + 16 * (i), nb + 16 * (j), mEnd, nEnd)

/// One 32 x 32 block of C (fewer rows or columns at the ends): four accumulators, the K loop
/// loading two A and two B tiles per step.
AMX static inline void fk_amx_gemm_block(float *C, long ldc, const uint16_t *Ap, const uint32_t *Bp, int KB, int mb,
                                         int nb, int mEnd, int nEnd, float *tmp) {
    const int twoM = mEnd - mb > 16, twoN = nEnd - nb > 16;
    const uint16_t *a0 = Ap + (long)(mb / 16) * KB * 512, *a1 = a0 + (long)KB * 512;
    const uint32_t *b0 = Bp + (long)(nb / 16) * KB * 256, *b1 = b0 + (long)KB * 256;
    _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
    for (int kb = 0; kb < KB; kb++) {
        _tile_loadd(4, a0 + (long)kb * 512, 64);
        _tile_loadd(6, b0 + (long)kb * 256, 64);
        _tile_dpbf16ps(0, 4, 6);
        if (twoN) { _tile_loadd(7, b1 + (long)kb * 256, 64); _tile_dpbf16ps(1, 4, 7); }
        if (twoM) {
            _tile_loadd(5, a1 + (long)kb * 512, 64);
            _tile_dpbf16ps(2, 5, 6);
            if (twoN) _tile_dpbf16ps(3, 5, 7);
        }
    }
    FK_STORE_MN(0, 0, 0);
    if (twoN) FK_STORE_MN(1, 0, 1);
    if (twoM) { FK_STORE_MN(2, 1, 0); if (twoN) FK_STORE_MN(3, 1, 1); }
}

AMX static void fk_amx_gemm_tiles(float *C, long ldc, const uint16_t *Ap, const uint32_t *Bp, int Kp, int mBegin,
                                  int mEnd, int nBegin, int nEnd, int nOuter) {
    fk_amx_configure();
    float tmp[256] __attribute__((aligned(64)));
    const int KB = Kp / 32;
    // The operand of the outer loop is read once; the inner one's panel of 32 rows or columns
    // (32 * Kp * 2 bytes) once per block of the outer one, from L2 when it fits.
    if (nOuter) {
        for (int nb = nBegin; nb < nEnd; nb += 32)
            for (int mb = mBegin; mb < mEnd; mb += 32) fk_amx_gemm_block(C, ldc, Ap, Bp, KB, mb, nb, mEnd, nEnd, tmp);
    } else {
        for (int mb = mBegin; mb < mEnd; mb += 32)
            for (int nb = nBegin; nb < nEnd; nb += 32) fk_amx_gemm_block(C, ldc, Ap, Bp, KB, mb, nb, mEnd, nEnd, tmp);
    }
    _tile_release();
}
#endif

int fk_bf16_gemm(float *C, long ldc, const uint16_t *Ap, const uint32_t *Bp, int Kp, int mBegin, int mEnd, int nBegin,
                 int nEnd, int nOuter) {
    const int level = fk_bf16_level();
    if (level == 0 || (Kp & 31) || (mBegin & 15) || (nBegin & 15)) return 0;
    if (mEnd <= mBegin || nEnd <= nBegin || Kp <= 0) return 1;
#ifdef FK_HAVE_AMX
    if (level == 2) {
        fk_amx_gemm_tiles(C, ldc, Ap, Bp, Kp, mBegin, mEnd, nBegin, nEnd, nOuter);
        return 1;
    }
#endif
    fk_bf16_dot_gemm(C, ldc, Ap, Bp, Kp, mBegin, mEnd, nBegin, nEnd, nOuter);
    return 1;
}
