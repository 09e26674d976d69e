// The AVX512_BF16 kernels of bf16dot.c, for amx.c's entry points (fk_bf16_conv,
// fk_bf16_weight_grad, fk_bf16_gemm) to dispatch to; same operands and contracts as those.
#pragma once
#include <stdint.h>

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
