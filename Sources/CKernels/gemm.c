// A small-matrix sgemm for the shapes OpenBLAS handles poorly: the Winograd tile products
// (M = output channels, N = tiles, K = input channels, each 9..144) and batch-1 convolutions.
// OpenBLAS packs both operands on every call, which costs as much as the product itself at
// these sizes; this kernel reads A and B in place (row-major) and keeps a 6x16 block of C in
// registers. It is not a general sgemm: no cache blocking over K (the callers' K is at most a
// few hundred, so a 16-column panel of B stays in L1 or L2).
//
// Micro-kernel (AVX2 + FMA, 16 ymm registers): 6 rows x 16 columns of C = 12 accumulators,
// two vectors of a row of B and one broadcast element of A; per k, 12 FMAs against 8 loads.
// Column tails use masked loads and stores; row tails use the same kernel with fewer rows
// (specialized at compile time). The loops are ordered j (16-column panels of B) outside,
// i (6-row blocks of A) inside, so each panel of B is reused from L1 across all of A.
// Where the CPU has AVX-512F, a 12 x 16 kernel on zmm registers runs instead (below); a
// baseline version (plain C) runs where the CPU lacks AVX2 or FMA. The level is chosen at run
// time (fk_simd_level) and can be lowered (fk_limit_simd) so that tests run every path.
#include "ckernels.h"
#include <string.h>

#if defined(__x86_64__) && (defined(__clang__) || defined(__GNUC__))
#include <immintrin.h>
#define FK_HAVE_AVX2_KERNEL 1
#define AVX2 __attribute__((target("avx2,fma")))
#define INLINE static inline __attribute__((always_inline))

/// The 6 x (8*NV) block C[0..MR, 0..] (+)= A[0..MR, 0..K] * B[0..K, 0..]; the last vector of a
/// row is masked by `mask` when MASKED.
#define FK_KERNEL(MR, NV, MASKED) fk_gemm_kernel(MR, NV, MASKED, TA, A, lda, B, ldb, C, ldc, K, mask, accumulate)

INLINE AVX2 void fk_gemm_kernel(const int MR, const int NV, const int MASKED, const int TA,
                                const float *A, long lda, const float *B, long ldb, float *C, long ldc,
                                int K, __m256i mask, int accumulate) {
    __m256 c0[6], c1[6];
    for (int r = 0; r < MR; r++) { c0[r] = _mm256_setzero_ps(); c1[r] = _mm256_setzero_ps(); }
    for (int k = 0; k < K; k++) {
        const float *b = B + (long)k * ldb;
        __m256 b0, b1 = _mm256_setzero_ps();
        if (NV == 2) {
            b0 = _mm256_loadu_ps(b);
            b1 = MASKED ? _mm256_maskload_ps(b + 8, mask) : _mm256_loadu_ps(b + 8);
        } else {
            b0 = MASKED ? _mm256_maskload_ps(b, mask) : _mm256_loadu_ps(b);
        }
        for (int r = 0; r < MR; r++) {
            __m256 a = _mm256_broadcast_ss(TA ? A + (long)k * lda + r : A + r * lda + k);
            c0[r] = _mm256_fmadd_ps(a, b0, c0[r]);
            if (NV == 2) c1[r] = _mm256_fmadd_ps(a, b1, c1[r]);
        }
    }
    for (int r = 0; r < MR; r++) {
        float *c = C + r * ldc;
        if (NV == 2) {
            if (accumulate) c0[r] = _mm256_add_ps(c0[r], _mm256_loadu_ps(c));
            _mm256_storeu_ps(c, c0[r]);
            if (MASKED) {
                if (accumulate) c1[r] = _mm256_add_ps(c1[r], _mm256_maskload_ps(c + 8, mask));
                _mm256_maskstore_ps(c + 8, mask, c1[r]);
            } else {
                if (accumulate) c1[r] = _mm256_add_ps(c1[r], _mm256_loadu_ps(c + 8));
                _mm256_storeu_ps(c + 8, c1[r]);
            }
        } else if (MASKED) {
            if (accumulate) c0[r] = _mm256_add_ps(c0[r], _mm256_maskload_ps(c, mask));
            _mm256_maskstore_ps(c, mask, c0[r]);
        } else {
            if (accumulate) c0[r] = _mm256_add_ps(c0[r], _mm256_loadu_ps(c));
            _mm256_storeu_ps(c, c0[r]);
        }
    }
}

/// One row block of up to 6 rows against one column panel, the kernel specialized by shape.
#define FK_ROWS(NV, MASKED) switch (mr) {                        \
    case 6: FK_KERNEL(6, NV, MASKED); break;                     \
    case 5: FK_KERNEL(5, NV, MASKED); break;                     \
    case 4: FK_KERNEL(4, NV, MASKED); break;                     \
    case 3: FK_KERNEL(3, NV, MASKED); break;                     \
    case 2: FK_KERNEL(2, NV, MASKED); break;                     \
    default: FK_KERNEL(1, NV, MASKED); break;                    \
}

#define FK_SHAPES if (nv == 2) {                                    \
        if (masked) { FK_ROWS(2, 1) } else { FK_ROWS(2, 0) }             \
    } else {                                                             \
        if (masked) { FK_ROWS(1, 1) } else { FK_ROWS(1, 0) }             \
    }

AVX2 static void fk_sgemm_avx2(int transA, int M, int N, int K, const float *A0, long lda, const float *B0, long ldb,
                               float *C0, long ldc, int accumulate) {
    for (int j = 0; j < N; j += 16) {
        int w = N - j < 16 ? N - j : 16;
        int nv = w > 8 ? 2 : 1, tail = w - 8 * (nv - 1);  // lanes of the last vector
        int masked = tail != 8;
        int lanes[8];
        for (int l = 0; l < 8; l++) lanes[l] = l < tail ? -1 : 0;
        __m256i mask = _mm256_loadu_si256((const __m256i *)lanes);
        const float *B = B0 + j;
        for (int i = 0; i < M; i += 6) {
            int mr = M - i < 6 ? M - i : 6;
            const float *A = transA ? A0 + i : A0 + (long)i * lda;
            float *C = C0 + (long)i * ldc + j;
            if (transA) { const int TA = 1; FK_SHAPES } else { const int TA = 0; FK_SHAPES }
        }
    }
}
/// The AVX-512 micro-kernel: MR (up to 12) rows x 16 columns of C in zmm accumulators, per k
/// one 16-column vector of B (masked on a column tail) against MR broadcast elements of A (the
/// broadcast folds into the FMA's memory operand): 12 FMAs against 13 loads per k. Measured
/// on the Winograd tile products (C = O = 512, 64 tiles, one thread, Xeon with AVX-512): 79
/// GFLOP/s against 63 for the AVX2 kernel; a 12 x 32 variant over two filter panels was slower
/// (53: the panels are a multiple of 4 KB apart, their rows share L1 sets).
#define AVX512 __attribute__((target("avx512f")))

INLINE AVX512 void fk_gemm_kernel512(const int MR, const int MASKED, const int TA, const float *A, long lda,
                                     const float *B, long ldb, float *C, long ldc, int K, __mmask16 mask,
                                     int accumulate) {
    __m512 c[12];
    for (int r = 0; r < MR; r++) c[r] = _mm512_setzero_ps();
    for (int k = 0; k < K; k++) {
        const float *b = B + (long)k * ldb;
        const __m512 bv = MASKED ? _mm512_maskz_loadu_ps(mask, b) : _mm512_loadu_ps(b);
        for (int r = 0; r < MR; r++) {
            const __m512 a = _mm512_set1_ps(TA ? A[(long)k * lda + r] : A[r * lda + k]);
            c[r] = _mm512_fmadd_ps(a, bv, c[r]);
        }
    }
    for (int r = 0; r < MR; r++) {
        float *cr = C + r * ldc;
        if (MASKED) {
            if (accumulate) c[r] = _mm512_add_ps(c[r], _mm512_maskz_loadu_ps(mask, cr));
            _mm512_mask_storeu_ps(cr, mask, c[r]);
        } else {
            if (accumulate) c[r] = _mm512_add_ps(c[r], _mm512_loadu_ps(cr));
            _mm512_storeu_ps(cr, c[r]);
        }
    }
}

#define FK_K512(MR, MASKED) fk_gemm_kernel512(MR, MASKED, TA, A, lda, B, ldb, C, ldc, kc, mask, acc)
#define FK_ROWS512(MASKED) switch (mr) {                                                  \
    case 12: FK_K512(12, MASKED); break; case 11: FK_K512(11, MASKED); break;             \
    case 10: FK_K512(10, MASKED); break; case 9: FK_K512(9, MASKED); break;               \
    case 8: FK_K512(8, MASKED); break; case 7: FK_K512(7, MASKED); break;                 \
    case 6: FK_K512(6, MASKED); break; case 5: FK_K512(5, MASKED); break;                 \
    case 4: FK_K512(4, MASKED); break; case 3: FK_K512(3, MASKED); break;                 \
    case 2: FK_K512(2, MASKED); break; default: FK_K512(1, MASKED); break;                \
}
#define FK_SHAPES512 if (masked) { FK_ROWS512(1) } else { FK_ROWS512(0) }

/// Rows per block of the AVX-512 kernel, and the depth of a block of k (a 16-column panel of B
/// and a 12-row block of A, 8 KB each at 128, stay in L1 together; 90 against 79 GFLOP/s
/// unblocked at K = 512).
#define FK_MR512 12
#define FK_KC512 128

/// Column j of B at B0 + (j/16)*ps + j%16 (ps = 16: a plain row-major B).
AVX512 static void fk_sgemm_avx512(int transA, int M, int N, int K, const float *A0, long lda, const float *B0,
                                   long ldb, long ps, float *C0, long ldc, int accumulate) {
    for (int k0 = 0; k0 < K; k0 += FK_KC512) {
        const int kc = K - k0 < FK_KC512 ? K - k0 : FK_KC512, acc = accumulate || k0 > 0;
        for (int j = 0; j < N; j += 16) {
            const int w = N - j < 16 ? N - j : 16, masked = w != 16;
            const __mmask16 mask = (__mmask16)((1u << w) - 1);
            const float *B = B0 + (long)(j / 16) * ps + (long)k0 * ldb;
            for (int i = 0; i < M; i += FK_MR512) {
                const int mr = M - i < FK_MR512 ? M - i : FK_MR512;
                const float *A = transA ? A0 + (long)k0 * lda + i : A0 + (long)i * lda + k0;
                float *C = C0 + (long)i * ldc + j;
                if (transA) { const int TA = 1; FK_SHAPES512 } else { const int TA = 0; FK_SHAPES512 }
            }
        }
    }
}
#endif

/// The baseline: C (+)= A B, row by row, the inner loop over contiguous columns.
static void fk_sgemm_plain(int transA, int M, int N, int K, const float *A, long lda, const float *B, long ldb,
                           float *C, long ldc, int accumulate) {
    for (int i = 0; i < M; i++) {
        float *c = C + (long)i * ldc;
        if (!accumulate) memset(c, 0, sizeof(float) * (size_t)N);
        for (int k = 0; k < K; k++) {
            float a = transA ? A[(long)k * lda + i] : A[(long)i * lda + k];
            const float *b = B + (long)k * ldb;
            for (int j = 0; j < N; j++) c[j] += a * b[j];
        }
    }
}

/// The highest kernel level the caller allows: 2 AVX-512, 1 AVX2 + FMA, 0 plain C.
static _Atomic int fk_simd_limit = 2;

void fk_allow_simd(int allowed) { fk_simd_limit = allowed ? 2 : 0; }

void fk_limit_simd(int level) { fk_simd_limit = level < 0 ? 0 : level > 2 ? 2 : level; }

/// The level this CPU supports (cached).
static int fk_cpu_simd_level(void) {
#ifdef FK_HAVE_AVX2_KERNEL
    static _Atomic int cached = -1;
    if (cached < 0) {
        __builtin_cpu_init();
        const int avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        cached = avx2 && __builtin_cpu_supports("avx512f") ? 2 : avx2 ? 1 : 0;
    }
    return cached;
#else
    return 0;
#endif
}

int fk_simd_level(void) {
    const int cpu = fk_cpu_simd_level(), limit = fk_simd_limit;
    return cpu < limit ? cpu : limit;
}

int fk_sgemm_has_simd(void) { return fk_simd_level() > 0; }

void fk_sgemm_panels(int transA, int M, int N, int K, const float *A, long lda, const float *B, long ldb,
                     long panelStride, float *C, long ldc, int accumulate) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (!accumulate) for (int i = 0; i < M; i++) memset(C + (long)i * ldc, 0, sizeof(float) * (size_t)N);
        return;
    }
    const int level = fk_simd_level();
#ifdef FK_HAVE_AVX2_KERNEL
    if (level >= 2) { fk_sgemm_avx512(transA, M, N, K, A, lda, B, ldb, panelStride, C, ldc, accumulate); return; }
#endif
    for (int j = 0; j < N; j += 16) {  // one panel of 16 columns at a time
        const int w = N - j < 16 ? N - j : 16;
        const float *Bj = B + (long)(j / 16) * panelStride;
#ifdef FK_HAVE_AVX2_KERNEL
        if (level == 1) { fk_sgemm_avx2(transA, M, w, K, A, lda, Bj, ldb, C + j, ldc, accumulate); continue; }
#endif
        fk_sgemm_plain(transA, M, w, K, A, lda, Bj, ldb, C + j, ldc, accumulate);
    }
}

void fk_sgemm(int transA, int M, int N, int K, const float *A, long lda, const float *B, long ldb, float *C,
              long ldc, int accumulate) {
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        if (!accumulate) for (int i = 0; i < M; i++) memset(C + (long)i * ldc, 0, sizeof(float) * (size_t)N);
        return;
    }
#ifdef FK_HAVE_AVX2_KERNEL
    const int level = fk_simd_level();
    if (level >= 2) { fk_sgemm_avx512(transA, M, N, K, A, lda, B, ldb, 16, C, ldc, accumulate); return; }
    if (level == 1) { fk_sgemm_avx2(transA, M, N, K, A, lda, B, ldb, C, ldc, accumulate); return; }
#endif
    fk_sgemm_plain(transA, M, N, K, A, lda, B, ldb, C, ldc, accumulate);
}

const char *fk_best_blas_core(void) {
#ifdef FK_HAVE_AVX2_KERNEL
    __builtin_cpu_init();
    const int avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                       __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
    if (avx512 && __builtin_cpu_supports("avx512bf16")) return "Cooperlake";
    if (avx512) return "SkylakeX";
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return "Haswell";
#endif
    return 0;
}
