// CKernels: the Float hot loops of the runtime that Swift does not vectorize (reductions,
// gathers, hashing), in plain C. Each function is compiled twice (AVX-512 and baseline) and
// picked at load time by the CPU (`target_clones`), so the same binary runs anywhere.
// Reductions use a fixed vector shape per build: results are bitwise reproducible on one
// machine, and every function has a naive Swift counterpart the tests compare it against.
#ifndef CKERNELS_H
#define CKERNELS_H

#include <stdint.h>

/// Columns [0, OH*OW) of a col matrix whose rows (c, kh, kw) are `ld` apart <- x (C, H, W),
/// zeros where the window leaves the input.
void fk_im2col(float *col, long ld, const float *x, int C, int H, int W, int KH, int KW,
               int stride, int padT, int padL, int OH, int OW);

/// dx (C, H, W) += the scatter of col (rows `ld` apart); the inverse of `fk_im2col`.
void fk_col2im_add(float *dx, const float *col, long ld, int C, int H, int W, int KH, int KW,
                   int stride, int padT, int padL, int OH, int OW);

/// The convolution epilogue over a chunk of S samples. acc is (O, S*P) (the GEMM result),
/// out is (S, O, P) (NCHW from the chunk's first sample). Per element:
///   z = acc + bias[o]; if preRelu z = max(z, 0); if scale: z = z*scale[o] + shift[o];
///   if postRelu z = max(z, 0); out = z;
/// and when `sum` is not null, sum[o] += z, sumsq[o] += z*z (double).
void fk_conv_epilogue(float *out, const float *acc, int O, int S, long P, const float *bias,
                      int preRelu, const float *scale, const float *shift, int postRelu,
                      double *sum, double *sumsq);

/// y = x*scale + shift, then max(y, 0) if relu; count elements (may be in place).
void fk_affine(float *y, const float *x, long count, float scale, float shift, int relu);

/// Batchnorm backward sums over one row: g = dy masked by y > 0 when y is not null;
/// *sumG += sum g, *sumGX += sum g*x.
void fk_bn_grad_sums(const float *dy, const float *y, const float *x, long count,
                     double *sumG, double *sumGX);

/// Pre-activation gradient over one row: g = dy masked by y > 0 when y is not null; with
/// x (the batchnorm input) not null: g = A*g + B + C*x, then masked by x > 0 if reluAfter.
/// Writes dz and returns sum(dz) (double).
double fk_preact_grad(float *dz, const float *dy, const float *y, const float *x, long count,
                      float A, float B, float C, int reluAfter);

/// Dropout with the counter hash: for element i (global index base+i) the key is
/// splitmix64Mix(h ^ (index + 4*golden)); kept when (key >> 11) * 2^-53 >= rate.
void fk_dropout(float *y, float *mask, const float *x, long count, uint64_t h, uint64_t base,
                double rate, float keep);

/// y = a * b, count elements.
void fk_mul(float *y, const float *a, const float *b, long count);

/// y = a + b, count elements (y may be a or b).
void fk_add(float *y, const float *a, const float *b, long count);

/// The sum of x[i]^2 in Double, in eight lanes (element i in lane i % 8, the lanes added
/// pairwise): the same bits on every CPU.
double fk_sumsq(const float *x, long count);

/// SGD with weight decay on [lo, hi): the same bits as Runtime's sgdWeightDecayUpdate.
void fk_sgd_wd(float *p, float *v, const float *g, long lo, long hi, float lr, float momentum,
               int nesterov, float wd, int decoupled);

/// 1 when every one of the count values is finite, 0 when one is a NaN or an infinity.
int fk_all_finite(const float *x, long count);

/// y = k * x, count elements (y may be x).
void fk_scale(float *y, const float *x, float k, long count);

/// 2x2 stride-2 max pooling, no padding, over planes of (H, W) with H, W even:
/// y (planes, H/2, W/2).
void fk_maxpool2x2(float *y, const float *x, long planes, int H, int W);

/// Its backward: dx (planes, H, W) = dy routed to the first maximum of each window, zeros elsewhere.
void fk_maxpool2x2_grad(float *dx, const float *dy, const float *x, long planes, int H, int W);

// Winograd F(4x4,3x3) (winograd.c; the algorithm and layouts are in Runtime/Winograd.swift).
// Tiles: tH = ceil(H/4) by tW = ceil(W/4) per sample, tile t = (s*tH + th)*tW + tw over a
// chunk of S samples, nt = S*tH*tW tiles; plane xi = 6*i + j of the 6x6 transform domain.

/// U = G g G^T for output channels [o0, o1) of OIHW 3x3 weights w (O, C, 3, 3), computed in
/// double and rounded once, in panels of 16 output channels: element (xi, c, o) at
/// ((o/16)*36 + xi)*C*16 + c*16 + o%16 — each panel's 36 B operands of the tile products
/// M^T = V^T U (C x 16, rows 16 apart) contiguous, so that a thread streams its panels. With
/// `gradInput`, the transform of the convolution that computes the input gradient from the
/// output gradient (input channels O, output channels C, each filter rotated by 180 degrees):
/// element (xi, o, c) at ((c/16)*36 + xi)*O*16 + o*16 + c%16. Floats: 36 * (input channels) *
/// (output channels rounded up to 16).
void fk_winograd_filter(float *u, const float *w, int O, int C, int o0, int o1, int gradInput);

/// V = B^T d B for channels [c0, c1) and tile rows [th0, th1) of a chunk of S samples x,
/// channel c of sample s at x + s*sampleStride + c*channelStride (H x W, rows contiguous), d
/// the 6x6 input patch of each tile (rows 4*th-1.., columns 4*tw-1.., zeros outside): v element
/// (xi, c, t) at xi*ldv + c*nt + t, t = (s*(th1 - th0) + th - th0)*tW + tw,
/// nt = S*(th1 - th0)*tW. work: 36*nt + 4*tW + 2 floats.
void fk_winograd_input(float *v, long ldv, const float *x, long sampleStride, long channelStride, int S, int C,
                       int c0, int c1, int H, int W, int th0, int th1, float *work);

/// Y = A^T m A for output channels [o0, o1) and tile rows [th0, th1), m element (xi, t, o - o0)
/// at xi*ldm + t*ldt + (o - o0) (the tile product M^T, channels contiguous; t numbered as in
/// fk_winograd_input), then the epilogue of `fk_conv_epilogue` (bias, preRelu, scale and shift,
/// postRelu), written to out (S, O, H, W) clipped to H x W; when `sum` is not null,
/// sum[o] += z and sumsq[o] += z*z over the written elements (double).
void fk_winograd_output(float *out, const float *m, long ldm, long ldt, int S, int O, int o0, int o1, int H, int W,
                        int th0, int th1, const float *bias, int preRelu, const float *scale, const float *shift,
                        int postRelu, double *sum, double *sumsq);

/// The weight gradient's transform of the output gradient (the adjoint of the output
/// transform): Z = A g A^T (6x6) for each 4x4 tile g of dy (zeros outside H x W), for every
/// channel [0, O) of a chunk of S samples, channel o of sample s at dy + s*sampleStride +
/// o*channelStride (H x W, rows contiguous): z element (xi, o, t) at xi*ldz + o*nt + t, tiles
/// numbered as in fk_winograd_input (nt = S*tH*tW). work: 16*nt floats.
void fk_winograd_grad_output(float *z, long ldz, const float *dy, long sampleStride, long channelStride, int S, int O,
                             int H, int W, float *work);

/// dw (O, C, 3, 3) rows [o0, o1) = G^T dU G (the adjoint of the filter transform), dU the sum of
/// the `parts` partials du[0..parts) (in order, in double), each (36, O, C): element (xi, o, c) at
/// xi*O*C + o*C + c. In double, rounded once.
void fk_winograd_weight_fold(float *dw, const float *const *du, int parts, int O, int C, int o0, int o1);

// Small-matrix sgemm (gemm.c): row-major C (M x N, rows ldc apart) = op(A) (M x K) * B (K x N),
// plus the old C when `accumulate` is not 0; op(A) = A (M x K, rows lda apart), or A^T when
// `transA` (A is K x M, rows lda apart). For the Winograd tile products and batch-1
// convolutions, where OpenBLAS's packing costs as much as the product. AVX2 + FMA when the CPU
// has them (see fk_sgemm_has_simd), plain C otherwise.
void fk_sgemm(int transA, int M, int N, int K, const float *A, long lda, const float *B, long ldb, float *C,
              long ldc, int accumulate);

/// fk_sgemm with B in panels of 16 columns: element (k, j) of B at
/// B + k*ldb + (j/16)*panelStride + j%16 (panelStride 16 is a plain row-major B). The Winograd
/// tile products over several panels of the transformed filters in one call.
void fk_sgemm_panels(int transA, int M, int N, int K, const float *A, long lda, const float *B, long ldb,
                     long panelStride, float *C, long ldc, int accumulate);

/// 1 when fk_sgemm (and the Winograd output transform) run their AVX2 + FMA code on this CPU,
/// 0 when they run the plain C loops.
int fk_sgemm_has_simd(void);

/// With 0, fk_sgemm and the Winograd output transform run their plain C loops even where the
/// CPU has AVX2 and FMA (tests use it to check the paths other CPUs take); 1 restores.
void fk_allow_simd(int allowed);

/// The kernel level fk_sgemm runs on this CPU within the limit of fk_limit_simd: 2 AVX-512F
/// (12 x 16 zmm kernel), 1 AVX2 + FMA (6 x 16), 0 plain C.
int fk_simd_level(void);

/// Caps the level of fk_simd_level (2: whatever the CPU has, 1: AVX2 at most, 0: plain C) so
/// that tests run the paths other CPUs take; fk_allow_simd(1) restores 2.
void fk_limit_simd(int level);

/// The best OpenBLAS core type (OPENBLAS_CORETYPE) this CPU can run, by its features:
/// "Cooperlake" (AVX-512F/BW/VL/DQ and AVX512_BF16), "SkylakeX" (AVX-512F/BW/VL/DQ), "Haswell"
/// (AVX2 + FMA), or NULL (none of these, or not x86-64).
const char *fk_best_blas_core(void);

// bf16 convolution and dense-layer products (amx.c; bf16dot.c), for plans compiled with
// --compute bf16 (inference) or trained with `compute = bf16` (training): on AMX tiles where the
// CPU has them, else with AVX512_BF16's dot product where it beats f32 (AMD's cores), else not at
// all (the callers run f32).

/// Which unit computes the bf16 products, within fk_limit_bf16: 2 AMX (AMX-TILE, AMX-BF16 and
/// AVX-512F/BW/VL, and Linux granted the process the tile state), 1 AVX512_BF16's vdpbf16ps
/// (with AVX-512F/BW/VL; under the default cap only where fk_bf16_dot_pays), 0 none (bf16 plans
/// then run in f32).
int fk_bf16_level(void);

/// 1 where AVX512_BF16's dot product, if the CPU has it, beats the f32 FMA (AMD's cores: twice
/// its rate on Zen 4), 0 where it does not (Intel's: half), so that fk_bf16_level uses it only
/// where it pays.
int fk_bf16_dot_pays(void);

/// 1 where the CPU has AVX512_BF16 (and AVX-512F/BW/VL), whether or not fk_bf16_level uses it.
int fk_bf16_dot_cpu(void);

/// Caps fk_bf16_level (2: whatever the CPU has; 1: the dot product even on AMX; 0: none), so that
/// tests run every path a CPU has and the f32 fallback.
void fk_limit_bf16(int level);

/// The fk_limit_bf16 cap under which the bf16 products run on any unit this CPU has, the default
/// one or not: 1 where its only unit is an AVX512_BF16 that is not the default (Intel's cores
/// without usable AMX), else 2. Tests use it to run the dot product wherever it exists.
int fk_bf16_any_unit_limit(void);

/// f rounded to bf16 (to nearest, ties to even; NaN stays NaN), the rounding of every bf16 path.
uint16_t fk_bf16_round(float f);

/// dst[KH*KW][Opad][Cpad] = w (O, C, KH, KW) rounded to bf16, tap-major, zeros in the padding
/// (Opad a multiple of 16 >= O, Cpad a multiple of 32 >= C).
void fk_bf16_pack_conv_weights(uint16_t *dst, const float *w, int O, int C, int KH, int KW, int Opad, int Cpad);

/// The weights of the input gradient of a stride-1 convolution w (O, C, KH, KW), itself a
/// convolution of the output gradient (O channels) into C channels with the kernel flipped:
/// dst[KH*KW][Cpad][Opad] with dst[ky*KW + kx][c][o] = bf16(w[o][c][KH-1-ky][KW-1-kx]), zeros in
/// the padding (Cpad a multiple of 16 >= C, Opad a multiple of 32 >= O). Channels [cBegin, cEnd)
/// of Cpad only (threads split them).
void fk_bf16_pack_conv_weights_flipped(uint16_t *dst, const float *w, int O, int C, int KH, int KW, int Cpad, int Opad,
                                       int cBegin, int cEnd);

/// Pairs [pairBegin, pairEnd) of the padded grid of samples [0, S) of x (sample s's channel c
/// the H x W plane at x + s*xStride + c*channelStride, rows contiguous; channelStride = H*W for
/// NCHW, the chunk width for a [C][S*H*W] panel): dst[j][s*Hp*Wp + y*Wp + xx] =
/// bf16(x[s][2j][y - padTop][xx - padLeft]) | bf16(x[s][2j+1][...]) << 16, zeros outside the
/// input, for channels >= C, and from S*Hp*Wp to rowLen (rows rowLen dwords apart).
void fk_bf16_pad_pairs(uint32_t *dst, long rowLen, const float *x, long xStride, long channelStride, int S, int C,
                       int H, int W, int Hp, int Wp, int padTop, int padLeft, int pairBegin, int pairEnd);

/// acc[o][p] (rows ldacc apart), o in [oBegin, oEnd), p in [pBegin, pEnd), = the stride-1 convolution on the
/// flattened grid: sum over ky < KH, kx < KW, c < Cpad of Wt[ky*KW + kx][o][c] * X(c, p + ky*Wp +
/// kx), X in the pair layout of fk_bf16_pad_pairs; bf16 products, f32 sums (fk_bf16_level's unit). X's
/// rows must hold pEnd rounded up to 16 plus (KH-1)*Wp + KW - 1 dwords. Needs Cpad % 32 == 0
/// and pBegin % 16 == 0, oBegin % 16 == 0, oEnd <= O (Wt packed for O). A dense layer is the
/// case C = in features, H = W = KH = KW = 1. Returns 0 (computing nothing) where fk_bf16_level
/// is 0.
int fk_bf16_conv(float *acc, long ldacc, const uint16_t *Wt, int O, int Cpad, int KH, int KW,
                 const uint32_t *X, long rowLen, int Wp, long pBegin, long pEnd, int oBegin, int oEnd);

/// The weights of a stride-1 convolution for fk_bf16_conv_compact, as pairs of input channels:
/// dst[(j*KH*KW + t)*OutPad + o] = bf16(v(o, 2j, t)) | bf16(v(o, 2j+1, t)) << 16 for output
/// channel o < OutPad, input pair j in [jBegin, jEnd) (threads split them), tap t = ky*KW + kx,
/// zeros in the padding. v is w (O, C, KH, KW) itself (`flipped` 0: Out = O, In = C), or the
/// input gradient's flipped kernel (`flipped` 1: Out = C, In = O, v(c, o, t) = w[o][c][taps-1-t]).
void fk_bf16_pack_conv_pairs(uint32_t *dst, const float *w, int O, int C, int KH, int KW, int flipped, int OutPad,
                             int jBegin, int jEnd);

/// acc[o][q] (rows ldacc apart), o in [oBegin, oEnd), q in [qBegin, qEnd), for the compact output
/// positions q = s*OH*OW + oy*OW + ox of the chunk: the convolution of fk_bf16_conv at grid
/// position s*Hp*Wp + oy*Wp + ox, without the grid's extra columns and rows (a "same" 3x3
/// convolution computes 25 products per 5x5 plane instead of 36). Wq from fk_bf16_pack_conv_pairs
/// (OutPad a multiple of 16 >= oEnd), X from fk_bf16_pad_pairs (pairs rows). On AVX512_BF16's dot
/// product only: returns 0 (computing nothing) unless fk_bf16_level is 1, or for more than 64
/// taps.
int fk_bf16_conv_compact(float *acc, long ldacc, const uint32_t *Wq, int OutPad, int pairs, int KH, int KW,
                         const uint32_t *X, long rowLen, int Hp, int Wp, int OH, int OW, long qBegin, long qEnd,
                         int oBegin, int oEnd);

/// The weight gradient's A panel (bf16 training): channels [cBegin, cEnd) of the padded grid of
/// samples [0, S) of x (each C x H x W, xStride floats apart), one channel per row of rowLen
/// bf16: dst[c][s*Hp*Wp + y*Wp + xx] = bf16(x[s][c][y - padTop][xx - padLeft]), zeros outside
/// the input, in rows c >= C and from S*Hp*Wp to rowLen.
void fk_bf16_pad_rows(uint16_t *dst, long rowLen, const float *x, long xStride, int S, int C, int H, int W, int Hp,
                      int Wp, int padTop, int padLeft, int cBegin, int cEnd);

/// The weight gradient's B panel: the output gradient dz ([O][S*OH*OW], rows ld floats apart)
/// placed on the grid (position s*Hp*Wp + y*Wp + xx; zeros where y >= OH or xx >= OW and from
/// S*Hp*Wp to Kpad), in position pairs: dst[r*ldB + o] = bf16(g[o][2r]) | bf16(g[o][2r+1]) << 16,
/// r < Kpad/2, zeros for o >= O; output channels [oBegin, oEnd). work: Kpad floats.
void fk_bf16_grid_pairs_transposed(uint32_t *dst, long ldB, float *work, const float *dz, long ld, int O, int S, int OH,
                                   int OW, int Hp, int Wp, long Kpad, int oBegin, int oEnd);

/// acc[t][c][o] (Cpad x Opad f32 per tap t = ky*KW + kx) = (accumulate ? acc : 0) + the sum over
/// grid positions k < Kpad of A[c][k + ky*Wp + kx] * B(k, o), A from fk_bf16_pad_rows (rows
/// rowLen bf16 apart, at least Kpad + (KH-1)*Wp + KW - 1 long), B from
/// fk_bf16_grid_pairs_transposed (rows ldB dwords apart); bf16 products, f32 sums. Needs Cpad,
/// Opad multiples of 16 and Kpad of 32; returns 0 (nothing computed) where fk_bf16_level is 0.
int fk_bf16_weight_grad(float *acc, const uint16_t *A, long rowLen, const uint32_t *B, long ldB, int KH, int KW, int Wp,
                        int Cpad, int Opad, long Kpad, int accumulate);

/// The weight gradient's A panel for compact positions (the dot product unit's path, where the
/// grid has cells that are not outputs): one row per tap and channel, dst[(t*Cpad + c)*rowLen2 +
/// q] = A[c*rowLen + s*Hp*Wp + oy*Wp + ox + ky*Wp + kx] for q = s*OH*OW + oy*OW + ox < S*OH*OW,
/// zeros from there to Kpad; A from fk_bf16_pad_rows. Channels [cBegin, cEnd) of Cpad. With it,
/// fk_bf16_weight_grad(acc, dst, rowLen2, B, ldB, 1, 1, 1, KH*KW*Cpad, Opad, Kpad, ...) and B
/// from fk_bf16_grid_pairs_transposed on the plane itself (Hp = OH, Wp = OW) sum over the outputs
/// only, into the same acc[t][c][o].
void fk_bf16_tap_rows(uint16_t *dst, long rowLen2, const uint16_t *A, long rowLen, int Cpad, int S, int OH, int OW,
                      int Hp, int Wp, int KH, int KW, long Kpad, int cBegin, int cEnd);

/// dw[o][c][t] (O, C, taps) = the sum over the T partials of fk_bf16_weight_grad's acc[t][c][o],
/// in order 0..T-1, for output channels [oBegin, oEnd).
void fk_bf16_weight_grad_fold(float *dw, const float *const *parts, int T, int O, int C, int taps, int Cpad, int Opad,
                              int oBegin, int oEnd);

/// A's tiles for C = A B (the dense layers of bf16 training): rows [mBegin, mEnd) (multiples of
/// 16; rows >= M come out zero) of the M x K matrix at src[m*rs + k*cs], rounded to bf16, as
/// dst[m/16][k/32][m%16][k%32] (K padded with zeros to a multiple of 32).
void fk_bf16_pack_a(uint16_t *dst, const float *src, long rs, long cs, int M, int K, int mBegin, int mEnd);

/// B's tiles for C = A B: columns [nBegin, nEnd) (in blocks of 16; columns >= N come out zero)
/// of the K x N matrix at src[k*rs + n*cs] in K pairs, dst[n/16][k/32][(k%32)/2][n%16] =
/// bf16(B[k][n]) | bf16(B[k+1][n]) << 16 for even k (zeros from K to K rounded up to 32).
void fk_bf16_pack_b(uint32_t *dst, const float *src, long rs, long cs, int K, int N, int nBegin, int nEnd);

/// C[m][n] (rows ldc floats apart) = sum over k < Kp of A[m][k] B[k][n] for m in [mBegin, mEnd),
/// n in [nBegin, nEnd), A and B packed by fk_bf16_pack_a / fk_bf16_pack_b for Kp (a multiple of
/// 32); bf16 products, f32 sums. mBegin and nBegin multiples of 16; the blocks (32 x 32 on AMX)
/// run with the columns outside when nOuter (then B is streamed once and A's panels
/// reread), else the rows. Returns 0 (computing nothing) where fk_bf16_level is 0.
int fk_bf16_gemm(float *C, long ldc, const uint16_t *Ap, const uint32_t *Bp, int Kp, int mBegin, int mEnd, int nBegin,
                 int nEnd, int nOuter);

/// out (S, O, OH, OW), channels [oBegin, oEnd) = the epilogue of fk_conv_epilogue (bias, relu
/// before, scale and shift, relu after) of acc[o][s*Hp*Wp + oy*Wp + ox] (rows ldacc apart);
/// when `sum` is not null, sum[o] += the written values and sumsq[o] += their squares (double),
/// for the batch statistics of a training forward.
void fk_conv_epilogue_grid(float *out, const float *acc, long ldacc, int O, int S, int OH, int OW, int Hp, int Wp,
                           const float *bias, int preRelu, const float *scale, const float *shift, int postRelu,
                           int oBegin, int oEnd, double *sum, double *sumsq);

// Worker threads (pool.c).

/// Runs fn(ctx, 0..<count) in parallel: part 0 on the calling thread, the others on the pool's
/// spinning workers; returns when all are done. Nested calls, and calls while another thread
/// runs a region, run every part on the calling thread.
void fk_parallel(int count, void (*fn)(void *ctx, int part), void *ctx);

/// Runs every region on its calling thread for the next `ns` nanoseconds (0: from now on as
/// usual), as the pool does by itself when its workers lag (another busy process holds a core).
void fk_pool_serial_for(long ns);

/// How many times the pool has set itself aside because its workers lagged.
long fk_pool_serial_spells(void);

#endif