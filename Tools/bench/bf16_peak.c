// Peak multiply-add rates of one core: f32 FMA (zmm), AVX512_BF16's vdpbf16ps (zmm) and
// AMX-BF16's tdpbf16ps, each in a loop of independent accumulators that stay in registers (or
// tiles). It decides which bf16 path is worth having on a CPU (docs/performance.md, round
// three). x86-64 Linux with clang; the AVX-512 and AMX parts run only where the CPU has them.
//
//   clang -O2 Tools/bench/bf16_peak.c -o /tmp/bf16_peak && /tmp/bf16_peak
#include <cpuid.h>
#include <immintrin.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define ACC 24

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }

__attribute__((target("avx512f"))) static double fma_rate(long n) {
    __m512 a[ACC];
    const __m512 b = _mm512_set1_ps(1.0001f), c = _mm512_set1_ps(0.9999f);
    for (int i = 0; i < ACC; i++) a[i] = _mm512_set1_ps((float)i);
    double t = now();
    for (long k = 0; k < n; k++)
        for (int i = 0; i < ACC; i++) a[i] = _mm512_fmadd_ps(a[i], b, c);
    t = now() - t;
    float s = 0;
    for (int i = 0; i < ACC; i++) s += _mm512_reduce_add_ps(a[i]);
    if (s == 1.5f) puts("");  // keep the loop
    return n * (double)ACC * 16 * 2 / t / 1e9;
}

__attribute__((target("avx512f,avx512bf16"))) static double dpbf16_rate(long n) {
    __m512 a[ACC];
    const __m512bh b = (__m512bh)_mm512_set1_epi16(0x3f80), c = (__m512bh)_mm512_set1_epi16(0x3f80);
    for (int i = 0; i < ACC; i++) a[i] = _mm512_set1_ps((float)i);
    double t = now();
    for (long k = 0; k < n; k++)
        for (int i = 0; i < ACC; i++) a[i] = _mm512_dpbf16_ps(a[i], b, c);
    t = now() - t;
    float s = 0;
    for (int i = 0; i < ACC; i++) s += _mm512_reduce_add_ps(a[i]);
    if (s == 1.5f) puts("");
    return n * (double)ACC * 32 * 2 / t / 1e9;
}

typedef struct { unsigned char palette, start, reserved[14]; unsigned short colsb[16]; unsigned char rows[16]; } tile_config;

__attribute__((target("amx-tile,amx-bf16"))) static double amx_rate(long n) {
    static unsigned short A[16 * 32] __attribute__((aligned(64))), B[16 * 32] __attribute__((aligned(64)));
    static float C[16 * 16] __attribute__((aligned(64)));
    tile_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int i = 0; i < 8; i++) { cfg.colsb[i] = 64; cfg.rows[i] = 16; }
    _tile_loadconfig(&cfg);
    _tile_loadd(4, A, 64); _tile_loadd(5, A, 64); _tile_loadd(6, B, 64); _tile_loadd(7, B, 64);
    _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
    double t = now();
    for (long k = 0; k < n; k++) {
        _tile_dpbf16ps(0, 4, 6); _tile_dpbf16ps(1, 4, 7); _tile_dpbf16ps(2, 5, 6); _tile_dpbf16ps(3, 5, 7);
    }
    t = now() - t;
    _tile_stored(0, C, 64);
    _tile_release();
    return n * 4.0 * 16 * 16 * 32 * 2 / t / 1e9;
}

int main(void) {
    unsigned a = 0, b = 0, c = 0, d = 0, a1 = 0, b1 = 0, c1 = 0, d1 = 0;
    __get_cpuid_count(7, 0, &a, &b, &c, &d);
    __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1);
    const int avx512 = (b >> 16) & 1, bf16 = (a1 >> 5) & 1, amx = ((d >> 24) & 1) && ((d >> 22) & 1);
    if (!avx512) { puts("no AVX-512F: nothing to measure"); return 0; }
    printf("f32 FMA (zmm)        %8.1f GFLOP/s\n", fma_rate(50000000));
    if (bf16) printf("vdpbf16ps (zmm)      %8.1f GFLOP/s\n", dpbf16_rate(50000000));
    else puts("vdpbf16ps: no AVX512_BF16");
    if (amx && syscall(SYS_arch_prctl, 0x1023, 18) == 0) printf("tdpbf16ps (AMX)      %8.1f GFLOP/s\n", amx_rate(5000000));
    else puts("tdpbf16ps: no AMX-BF16 (or the kernel did not grant the tile state)");
    return 0;
}
