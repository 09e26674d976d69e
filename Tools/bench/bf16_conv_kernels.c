// One core, one chunk: the rate of the bf16 convolution kernels on a "same" 3x3 convolution, in
// GFLOP/s of the products the layer needs (2 * O * C * 9 per output), for the grid path (every
// cell of the shared-padding grid, the extra ones dropped) and the compact one (the outputs
// only; docs/performance.md, round eight): the forward product, the weight gradient, and the
// weight packing each needs. The two forwards are compared value by value. Needs a CPU with
// AVX512_BF16 (the dot product unit); x86-64 Linux, clang, Debian's OpenBLAS (CKernels links it).
//
//   clang -O2 -I Sources/CKernels/include Tools/bench/bf16_conv_kernels.c Sources/CKernels/*.c \
//       -lopenblas -lm -lpthread -o /tmp/bf16_conv && /tmp/bf16_conv 512 512 5 15
//
// Arguments: input channels, output channels, plane side, samples in the chunk.
#include "ckernels.h"
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
static long ru(long v, long m) { return (v + m - 1) / m * m; }
static void *zalloc(long bytes) { void *p = aligned_alloc(64, (size_t)ru(bytes, 64)); memset(p, 0, (size_t)ru(bytes, 64)); return p; }

int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: %s C O SIDE SAMPLES (e.g. 512 512 5 15)\n", argv[0]); return 2; }
    const int C = atoi(argv[1]), O = atoi(argv[2]), H = atoi(argv[3]), S = atoi(argv[4]);
    if (C < 1 || O < 1 || H < 1 || S < 1 || C > 4096 || O > 4096 || H > 64 || S > 256) {
        fprintf(stderr, "C, O in 1...4096, SIDE in 1...64, SAMPLES in 1...256\n");
        return 2;
    }
    fk_limit_bf16(1);
    if (fk_bf16_level() != 1) { fprintf(stderr, "this CPU has no AVX512_BF16: nothing to measure\n"); return 1; }
    const int W = H, K = 3, taps = 9, Hp = H + 1, Wp = W + 1;  // the shared-padding grid of a "same" 3x3
    const long cells = (long)S * Hp * Wp, Q = (long)S * H * W;
    long rowLen = ru(cells + 2 * Wp + 3 + 16, 16);
    if ((rowLen / 16) % 2 == 0) rowLen += 16;
    const int Cpad = (int)ru(C, 32), pairs = Cpad / 2, Opad = (int)ru(O, 16);
    float *x = zalloc(4L * S * C * H * W), *w = zalloc(4L * O * C * taps), *dz = zalloc(4L * O * Q);
    srand(1);
    for (long i = 0; i < (long)S * C * H * W; i++) x[i] = rand() / (float)RAND_MAX - 0.5f;
    for (long i = 0; i < (long)O * C * taps; i++) w[i] = rand() / (float)RAND_MAX - 0.5f;
    for (long i = 0; i < (long)O * Q; i++) dz[i] = rand() / (float)RAND_MAX - 0.5f;

    // Forward operands: the pair grid, both weight layouts.
    uint32_t *X = zalloc(4L * pairs * rowLen);
    fk_bf16_pad_pairs(X, rowLen, x, (long)C * H * W, H * W, S, C, H, W, Hp, Wp, 1, 1, 0, pairs);
    uint16_t *Wt = zalloc(2L * taps * Opad * Cpad);
    uint32_t *Wq = zalloc(2L * taps * Opad * Cpad);
    const long ldg = ru(cells, 16), ldc = ru(Q, 16);
    float *accG = zalloc(4L * O * ldg), *accC = zalloc(4L * O * ldc);

    // Weight-gradient operands: grid rows, tap rows, dz paired on the grid and on the plane.
    const int cPad16 = (int)ru(C, 16);
    const long kG = ru(cells, 32), kC = ru(Q, 32);
    long rowA = ru(kG + 2 * Wp + 3 + 32, 32), rowA2 = ru(kC + 32, 32);
    if ((rowA / 32) % 2 == 0) rowA += 32;
    if ((rowA2 / 32) % 2 == 0) rowA2 += 32;
    long ldB = Opad;
    if ((ldB / 16) % 2 == 0) ldB += 16;
    uint16_t *A = zalloc(2L * cPad16 * rowA), *A2 = zalloc(2L * taps * cPad16 * rowA2);
    uint32_t *BG = zalloc(4L * kG / 2 * ldB), *BC = zalloc(4L * kC / 2 * ldB);
    float *work = zalloc(4L * kG), *sums = zalloc(4L * taps * cPad16 * Opad);
    fk_bf16_pad_rows(A, rowA, x, (long)C * H * W, S, C, H, W, Hp, Wp, 1, 1, 0, cPad16);
    fk_bf16_grid_pairs_transposed(BG, ldB, work, dz, Q, O, S, H, W, Hp, Wp, kG, 0, Opad);
    fk_bf16_grid_pairs_transposed(BC, ldB, work, dz, Q, O, S, H, W, H, W, kC, 0, Opad);

    const double flops = 2.0 * O * C * taps * Q;
    const int reps = 5;
    printf("%d -> %d channels, %dx%d planes, %d samples (%ld outputs, %ld grid cells), one core\n", C, O, H, W, S, Q, cells);
    for (int round = 0; round < 3; round++) {
        double t0 = now();
        for (int r = 0; r < reps; r++) fk_bf16_pack_conv_weights(Wt, w, O, C, K, K, Opad, Cpad);
        double t1 = now();
        for (int r = 0; r < reps; r++) fk_bf16_conv(accG, ldg, Wt, O, Cpad, K, K, X, rowLen, Wp, 0, cells, 0, O);
        double t2 = now();
        for (int r = 0; r < reps; r++) fk_bf16_pack_conv_pairs(Wq, w, O, C, K, K, 0, Opad, 0, pairs);
        double t3 = now();
        for (int r = 0; r < reps; r++) fk_bf16_conv_compact(accC, ldc, Wq, Opad, pairs, K, K, X, rowLen, Hp, Wp, H, W, 0, Q, 0, O);
        double t4 = now();
        for (int r = 0; r < reps; r++) fk_bf16_weight_grad(sums, A, rowA, BG, ldB, K, K, Wp, cPad16, Opad, kG, 0);
        double t5 = now();
        for (int r = 0; r < reps; r++) {
            fk_bf16_tap_rows(A2, rowA2, A, rowA, cPad16, S, H, W, Hp, Wp, K, K, kC, 0, cPad16);
            fk_bf16_weight_grad(sums, A2, rowA2, BC, ldB, 1, 1, 1, taps * cPad16, Opad, kC, 0);
        }
        double t6 = now();
        printf("forward: grid %6.1f GFLOP/s (packing %.2f ms), compact %6.1f (packing %.2f ms); "
               "weight gradient: grid %6.1f, compact %6.1f (tap rows included)\n",
               flops * reps / (t2 - t1) / 1e9, (t1 - t0) / reps * 1e3, flops * reps / (t4 - t3) / 1e9,
               (t3 - t2) / reps * 1e3, flops * reps / (t5 - t4) / 1e9, flops * reps / (t6 - t5) / 1e9);
    }
    double worst = 0, scale = 0;
    for (int o = 0; o < O; o++)
        for (int s = 0; s < S; s++)
            for (int y = 0; y < H; y++)
                for (int xx = 0; xx < W; xx++) {
                    const double g = accG[(long)o * ldg + (long)s * Hp * Wp + y * Wp + xx];
                    const double c = accC[(long)o * ldc + (long)s * H * W + y * W + xx];
                    worst = worst > (g > c ? g - c : c - g) ? worst : (g > c ? g - c : c - g);
                    scale = scale > (g > 0 ? g : -g) ? scale : (g > 0 ? g : -g);
                }
    printf("forwards: largest difference %.3g of the largest output %.3g (the sums' order)\n", worst, scale);
    return worst <= 1e-5 * scale ? 0 : 1;
}
