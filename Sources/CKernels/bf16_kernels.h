// The AVX512_BF16 kernels of bf16dot.c, for amx.c's entry points (fk_bf16_conv,
// fk_bf16_weight_grad, fk_bf16_gemm) to dispatch to; same operands and contracts as those.
#pragma once
#include <stdint.h>

#if defined(__x86_64__) && defined(__clang__)
#include <immintrin.h>
/// fk_bf16_round (to nearest, ties to even; NaN stays NaN) of 16 lanes, for the vector paths of
/// amx.c and bf16dot.c; the callers check the CPU.
__attribute__((target("avx512f"))) static inline __m512i fk_bf16_round16(__m512 v) {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    const __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
    const __m512i abs = _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff));
    const __mmask16 nan = _mm512_cmpgt_epu32_mask(abs, _mm512_set1_epi32(0x7f800000));
    const __m512i q = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
    return _mm512_mask_blend_epi32(nan, r, q);
}
#endif

/// 1 when this CPU has AVX512_BF16 and AVX-512F/BW/VL (with the OS's zmm state).
int fk_bf16_dot_cpu(void);

/// 1 when this CPU has AVX-512F/BW/VL (amx.c).
int fk_avx512_cpu(void);

void fk_bf16_dot_conv(float *acc, long ldacc, const uint16_t *Wt, int O, int Cpad, int KH, int KW, const uint32_t *X,
                      long rowLen, int Wp, long pBegin, long pEnd, int oBegin, int oEnd);
void fk_bf16_dot_weight_grad(float *acc, const uint16_t *A, long rowLen, const uint32_t *B, long ldB, int KH, int KW,
                             int Wp, int Cpad, int Opad, long Kpad, int accumulate);
void fk_bf16_dot_gemm(float *C, long ldc, const uint16_t *Ap, const uint32_t *Bp, int Kp, int mBegin, int mEnd,
                      int nBegin, int nEnd, int nOuter);
