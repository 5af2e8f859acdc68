/* Cost of a competition step of the MoE layer against a normal step at the default size:
 * D=128, hidden=512, E=16, K=4, 4608 tokens, Laplace gating, noisy top-k and dropout 0.1 in
 * training (as bench_moe). Times the forward, the backward and both for fm_moe_forward/backward
 * and fm_moe_compete_forward/backward on the same inputs, and prints the ratios next to the ratio
 * of their expert GEMM work: a competition forward runs every expert on every token (E / K times
 * the routed forward's expert work); its backward recomputes the winners' fc1 and then does the
 * routed backward's work (winners only), so forward + backward costs (2E + 5K) / 6K times a
 * normal step's expert work (2.17 at E = 16, K = 4).
 *
 * Usage: bench_compete [iterations [router (0 joint, 1 per-modality, 2 disjoint) [dropout]]]
 * The two modes alternate within each iteration and each phase reports its fastest iteration (on
 * a machine shared with other jobs the minimum is the stable statistic). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "models/moe.h"
#include "models/moe_compete.h"
#include "src/blas_kernel.h"

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
    const int T = 4608, iters = argc > 1 ? atoi(argv[1]) : 5;
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
        fm_moe_cache_create_compete(&cache, &cfg, T, &err) != FM_OK) {
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

    const float c = FM_COMPETE_COEF_DEFAULT;
    double best[2][3] = {{1e30, 1e30, 1e30}, {1e30, 1e30, 1e30}}; /* [mode][forward, backward, both] */
    for (int it = -1; it < iters; it++) {                         /* iteration -1 warms up */
        for (int mode = 0; mode < 2; mode++) {
            const double t0 = now();
            if (mode == 0)
                fm_moe_forward(&moe, &params, cache, out, x, modality, T, 1, &rng, NULL);
            else
                fm_moe_compete_forward(&moe, &params, cache, out, x, modality, T, 1, &rng, 0.0f, NULL);
            const double t1 = now();
            fm_params_zero_grad(&params);
            memset(dx, 0, n * sizeof(float));
            if (mode == 0)
                fm_moe_backward(&moe, &params, cache, dx, dout, c, 0.0f);
            else
                fm_moe_compete_backward(&moe, &params, cache, dx, dout, c, c, c);
            const double t2 = now();
            if (it < 0) continue;
            best[mode][0] = min2(best[mode][0], t1 - t0);
            best[mode][1] = min2(best[mode][1], t2 - t1);
            best[mode][2] = min2(best[mode][2], t2 - t0);
        }
    }
    const int Er = moe.experts_per_router, K = cfg.K;
    const char *router = cfg.router == FM_ROUTER_JOINT          ? "joint"
                         : cfg.router == FM_ROUTER_PER_MODALITY ? "per-modality"
                                                                : "disjoint";
    printf("bench_compete: D=%d hidden=%d E=%d (E_r=%d) K=%d T=%d, %s router, Laplace, noisy, dropout %.2f; "
           "OpenBLAS %s; best of %d\n",
           cfg.D, cfg.hidden, cfg.E, Er, K, T, router, (double)cfg.dropout, fm_blas_kernel_name(), iters);
    const char *phase[3] = {"forward", "backward", "forward+backward"};
    const double work[3] = {(double)Er / K, 5.0 * K / (4.0 * K), (2.0 * Er + 5.0 * K) / (6.0 * K)};
    printf("  %-17s %10s %12s %7s %16s\n", "", "normal", "competition", "ratio", "expert GEMM work");
    for (int p = 0; p < 3; p++)
        printf("  %-17s %7.1f ms %9.1f ms %6.2fx %15.2fx\n", phase[p], 1e3 * best[0][p], 1e3 * best[1][p],
               best[1][p] / best[0][p], work[p]);
    fm_moe_cache_free(cache);
    fm_params_free(&params);
    free(x);
    free(out);
    free(dout);
    free(dx);
    free(modality);
    return 0;
}
