/* Throughput of the MoE layer at the default size: D=128, hidden=512, E=16, K=4, 4608 tokens
 * (e.g. a batch of 32 stays x 3 modalities x 48 reference times), Laplace gating, joint router,
 * noisy top-k and dropout 0.1 in training. Reports tokens per second for the forward, the
 * backward and both, and, as the bound to aim at, the time of the expert GEMMs alone (the same
 * six products per expert on blocks of T K / E rows, nothing else).
 *
 * Usage: bench_moe [iterations [router (0 joint, 1 per-modality, 2 disjoint) [dropout]]]
 * Each phase reports its fastest iteration: on a machine shared with other jobs the minimum is
 * the stable statistic (interference only ever adds time). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "models/moe.h"
#include "src/blas_kernel.h"
#include "src/gemm.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double min2(double a, double b) {
    return a < b ? a : b;
}

int main(int argc, char **argv) {
    fm_blas_select_kernel(argv);
    const int T = 4608, iters = argc > 1 ? atoi(argv[1]) : 6;
    FmMoeConfig cfg = {.D = 128,
                       .hidden = 512,
                       .E = 16,
                       .K = 4,
                       .M = 3,
                       .gate = FM_GATE_LAPLACE,
                       .router = FM_ROUTER_JOINT,
                       .dropout = 0.1f,
                       .noisy = 1};
    if (argc > 2) cfg.router = (FmRouter)atoi(argv[2]);
    if (cfg.router == FM_ROUTER_DISJOINT) cfg.M = 2; /* 8 experts per modality, K = 4 of them */
    if (argc > 3) cfg.dropout = (float)atof(argv[3]);
    if (iters < 1) return 2;
    FmParams params;
    FmMoe moe;
    FmMoeCache *cache;
    FmError err;
    fm_params_init(&params);
    if (fm_moe_declare(&moe, &cfg, &params, "moe", &err) != FM_OK ||
        fm_params_allocate(&params, 0, &err) != FM_OK ||
        fm_moe_cache_create(&cache, &cfg, T, &err) != FM_OK) {
        fm_error_print(&err, stderr);
        return 1;
    }
    FmRng rng;
    fm_rng_seed(&rng, 1);
    fm_moe_init(&moe, &params, &rng);
    const size_t n = (size_t)T * cfg.D;
    float *x = malloc(n * sizeof(float)), *out = malloc(n * sizeof(float));
    float *dout = malloc(n * sizeof(float)), *dx = malloc(n * sizeof(float));
    int *modality = malloc((size_t)T * sizeof(int));
    if (!x || !out || !dout || !dx || !modality) return 1;
    for (size_t i = 0; i < n; i++) {
        x[i] = (float)fm_rng_normal(&rng);
        dout[i] = (float)fm_rng_normal(&rng) * 1e-3f;
    }
    for (int t = 0; t < T; t++)
        modality[t] = t / 48 % cfg.M;

    double t_fwd = 1e30, t_bwd = 1e30, t_both = 1e30;
    for (int it = -1; it < iters; it++) { /* iteration -1 warms up */
        FmMoeAux aux;
        const double t0 = now();
        fm_moe_forward(&moe, &params, cache, out, x, modality, T, 1, &rng, &aux);
        const double t1 = now();
        fm_params_zero_grad(&params);
        memset(dx, 0, n * sizeof(float));
        fm_moe_backward(&moe, &params, cache, dx, dout, 0.01f, 0.01f);
        const double t2 = now();
        if (it < 0) continue;
        t_fwd = min2(t_fwd, t1 - t0);
        t_bwd = min2(t_bwd, t2 - t1);
        t_both = min2(t_both, t2 - t0);
    }

    /* The expert GEMMs alone: per expert, forward h = x W1^T, o = a W2^T; backward da = do W2,
     * dW2 += do^T a, dx = dh W1, dW1 += dh^T x. */
    const int rows = T * cfg.K / cfg.E, D = cfg.D, H = cfg.hidden;
    float *ga = calloc((size_t)rows * D, sizeof(float)), *gh = calloc((size_t)rows * H, sizeof(float));
    float *gw1 = calloc((size_t)H * D, sizeof(float)), *gw2 = calloc((size_t)D * H, sizeof(float));
    float *go = calloc((size_t)rows * D, sizeof(float)), *gdh = calloc((size_t)rows * H, sizeof(float));
    if (!ga || !gh || !gw1 || !gw2 || !go || !gdh) return 1;
    double t_gemm = 1e30;
    for (int it = -1; it < iters; it++) {
        const double t0 = now();
        for (int e = 0; e < cfg.E; e++) {
            fm_gemm(FM_NO_TRANS, FM_TRANS, rows, H, D, 1.0f, ga, D, gw1, D, 0.0f, gh, H);
            fm_gemm(FM_NO_TRANS, FM_TRANS, rows, D, H, 1.0f, gh, H, gw2, H, 0.0f, go, D);
            fm_gemm(FM_NO_TRANS, FM_NO_TRANS, rows, H, D, 1.0f, go, D, gw2, H, 0.0f, gdh, H);
            fm_gemm(FM_TRANS, FM_NO_TRANS, D, H, rows, 1.0f, go, D, gh, H, 1.0f, gw2, H);
            fm_gemm(FM_NO_TRANS, FM_NO_TRANS, rows, D, H, 1.0f, gdh, H, gw1, D, 0.0f, ga, D);
            fm_gemm(FM_TRANS, FM_NO_TRANS, H, D, rows, 1.0f, gdh, H, ga, D, 1.0f, gw1, D);
        }
        if (it >= 0) t_gemm = min2(t_gemm, now() - t0);
    }

    /* Expert GEMM work: 2 matrices of D x hidden per (token, expert) pair, 2 flops per
     * multiply-add; the backward does twice the forward's work. */
    const double flops_fwd = 2.0 * 2.0 * cfg.D * cfg.hidden * (double)T * cfg.K;
    const char *router = cfg.router == FM_ROUTER_JOINT          ? "joint"
                         : cfg.router == FM_ROUTER_PER_MODALITY ? "per-modality"
                                                                : "disjoint";
    printf("bench_moe: D=%d hidden=%d E=%d K=%d T=%d M=%d, %s router, Laplace, noisy, dropout %.2f; "
           "OpenBLAS %s; best of %d\n",
           cfg.D, cfg.hidden, cfg.E, cfg.K, T, cfg.M, router, (double)cfg.dropout, fm_blas_kernel_name(),
           iters);
    printf("  forward           %8.1f ms  %9.0f tokens/s  %6.1f GFLOP/s in the expert GEMMs\n", 1e3 * t_fwd,
           T / t_fwd, flops_fwd / t_fwd * 1e-9);
    printf("  backward          %8.1f ms  %9.0f tokens/s  %6.1f GFLOP/s\n", 1e3 * t_bwd, T / t_bwd,
           2 * flops_fwd / t_bwd * 1e-9);
    printf("  forward+backward  %8.1f ms  %9.0f tokens/s  %6.1f GFLOP/s\n", 1e3 * t_both, T / t_both,
           3 * flops_fwd / t_both * 1e-9);
    printf("  expert GEMMs only %8.1f ms  %9.0f tokens/s  %6.1f GFLOP/s  (the layer takes %.2fx this)\n",
           1e3 * t_gemm, T / t_gemm, 3 * flops_fwd / t_gemm * 1e-9, t_both / t_gemm);
    free(ga);
    free(gh);
    free(gw1);
    free(gw2);
    free(go);
    free(gdh);
    fm_moe_cache_free(cache);
    fm_params_free(&params);
    free(x);
    free(out);
    free(dout);
    free(dx);
    free(modality);
    return 0;
}
