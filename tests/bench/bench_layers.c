/* Forward and backward time of each layer at the model's default sizes: a batch of 32 stays,
 * 3 modalities x 48 reference times = 144 tokens, width 128, 8 heads, expert hidden width 512,
 * time-embedding width 64.
 *
 *   bench_layers [--reps N] [--threads N]     (defaults: 20 timed calls, 1 OpenBLAS thread)
 *
 * Prints the best and median wall time per call in milliseconds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "src/activation.h"
#include "src/alloc.h"
#include "src/attention.h"
#include "src/blas_kernel.h"
#include "src/dropout.h"
#include "src/layernorm.h"
#include "src/linear.h"
#include "src/rng.h"
#include "src/softmax.h"
#include "src/time2vec.h"

enum { B = 32, T = 144, D = 128, H = 8, HID = 512, DT = 64 };
#define NTOK ((size_t)B * T)

static double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static float *buffer(FmRng *rng, size_t n, float scale) {
    float *x = fm_malloc_array(n, sizeof *x);
    if (!x) {
        fprintf(stderr, "bench_layers: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++)
        x[i] = scale * (float)(2.0 * fm_rng_uniform(rng) - 1.0);
    return x;
}

/* Everything one timed call needs, so that each case is a small function. */
typedef struct {
    FmRng rng;
    float *x, *y, *dy, *dx, *w, *b, *dw, *db, *h, *dh, *mean, *rstd, *cache, *scratch, *t, *wt, *bt;
    uint8_t *keep, *mask;
    FmAttnShape as;
} Bench;

typedef void (*CaseFn)(Bench *);

static void linear_fwd(Bench *s) {
    fm_linear_forward(s->h, s->x, s->w, s->b, (int)NTOK, D, HID);
}
static void linear_bwd(Bench *s) {
    fm_linear_backward(s->dx, s->dw, s->db, s->dh, s->x, s->w, (int)NTOK, D, HID);
}
static void layernorm_fwd(Bench *s) {
    fm_layernorm_forward(s->y, s->mean, s->rstd, s->x, s->w, s->b, (int)NTOK, D);
}
static void layernorm_bwd(Bench *s) {
    fm_layernorm_backward(s->dx, s->dw, s->db, s->dy, s->x, s->mean, s->rstd, s->w, (int)NTOK, D);
}
static void gelu_fwd(Bench *s) {
    fm_gelu_forward(s->dh, s->h, NTOK * HID);
}
static void gelu_bwd(Bench *s) {
    fm_gelu_backward(s->dh, s->h, s->h, NTOK * HID);
}
static void softplus_fwd(Bench *s) {
    fm_softplus_forward(s->dh, s->h, NTOK * HID);
}
static void dropout_fwd(Bench *s) {
    fm_dropout_forward(s->dh, s->keep, s->h, NTOK * HID, 0.1f, &s->rng);
}
static void dropout_bwd(Bench *s) {
    fm_dropout_backward(s->dh, s->h, s->keep, NTOK * HID, 0.1f);
}
static void softmax_fwd(Bench *s) {
    fm_softmax_forward(s->dh, s->h, NULL, (int)(NTOK * HID / T), T);
}
static void softmax_bwd(Bench *s) {
    fm_softmax_backward(s->dh, s->h, s->h, (int)(NTOK * HID / T), T);
}
static void attention_fwd(Bench *s) {
    fm_attention_forward(s->y, s->cache, s->x, s->mask, s->h, s->h + 3 * D * D, s->w, s->b, s->as);
}
static void attention_bwd(Bench *s) {
    fm_attention_backward(s->dx, s->dh, s->dh + 3 * D * D, s->dw, s->db, s->scratch, s->dy, s->x, s->cache,
                          s->mask, s->h, s->w, s->as);
}
static void time2vec_fwd(Bench *s) {
    fm_time2vec_forward(s->h, s->t, s->wt, s->bt, (int)NTOK, DT);
}
static void time2vec_bwd(Bench *s) {
    fm_time2vec_backward(s->dx, s->dw, s->db, s->dh, s->t, s->wt, s->bt, (int)NTOK, DT);
}

static const struct {
    const char *name;
    const char *shape;
    CaseFn fn;
} CASES[] = {
    {"linear forward", "4608 x 128 -> 512", linear_fwd},
    {"linear backward", "4608 x 128 -> 512", linear_bwd},
    {"layernorm forward", "4608 x 128", layernorm_fwd},
    {"layernorm backward", "4608 x 128", layernorm_bwd},
    {"gelu forward", "4608 x 512", gelu_fwd},
    {"gelu backward", "4608 x 512", gelu_bwd},
    {"softplus forward", "4608 x 512", softplus_fwd},
    {"dropout forward", "4608 x 512, p 0.1", dropout_fwd},
    {"dropout backward", "4608 x 512, p 0.1", dropout_bwd},
    {"softmax forward", "16384 rows x 144", softmax_fwd},
    {"softmax backward", "16384 rows x 144", softmax_bwd},
    {"attention forward", "32 x 144 x 128, 8 heads", attention_fwd},
    {"attention backward", "32 x 144 x 128, 8 heads", attention_bwd},
    {"time2vec forward", "4608 x 64", time2vec_fwd},
    {"time2vec backward", "4608 x 64", time2vec_bwd},
};

int main(int argc, char **argv) {
    fm_blas_select_kernel(argv);
    int reps = 20, threads = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--reps") == 0 && i + 1 < argc)
            reps = atoi(argv[++i]);
        else if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            threads = atoi(argv[++i]);
        else {
            fprintf(stderr, "usage: bench_layers [--reps N] [--threads N]\n");
            return 2;
        }
    }
    if (reps < 1 || threads < 1) {
        fprintf(stderr, "bench_layers: --reps and --threads take positive integers\n");
        return 2;
    }
    fm_blas_set_threads(threads);
    Bench s;
    fm_rng_seed(&s.rng, 3);
    s.as = (FmAttnShape){.B = B, .T = T, .D = D, .H = H};
    s.x = buffer(&s.rng, NTOK * D, 1.0f);
    s.y = buffer(&s.rng, NTOK * D, 1.0f);
    s.dy = buffer(&s.rng, NTOK * D, 1.0f);
    s.dx = buffer(&s.rng, NTOK * D, 0.0f);
    s.w = buffer(&s.rng, (size_t)HID * D, 0.1f);
    s.b = buffer(&s.rng, HID, 0.1f);
    s.dw = buffer(&s.rng, (size_t)HID * D, 0.0f);
    s.db = buffer(&s.rng, HID, 0.0f);
    s.h = buffer(&s.rng, NTOK * HID, 1.0f);
    s.dh = buffer(&s.rng, NTOK * HID, 1.0f);
    s.mean = buffer(&s.rng, NTOK, 0.0f);
    s.rstd = buffer(&s.rng, NTOK, 0.0f);
    s.cache = buffer(&s.rng, fm_attention_cache_size(s.as), 0.0f);
    s.scratch = buffer(&s.rng, fm_attention_scratch_size(s.as), 0.0f);
    s.t = buffer(&s.rng, NTOK, 1.0f);
    s.wt = buffer(&s.rng, DT, 3.0f);
    s.bt = buffer(&s.rng, DT, 1.0f);
    s.keep = fm_malloc(NTOK * HID);
    s.mask = fm_malloc(NTOK);
    double *times = fm_malloc_array((size_t)reps, sizeof *times);
    if (!s.keep || !s.mask || !times) return 1;
    for (size_t i = 0; i < NTOK; i++)
        s.mask[i] = (i % T) < T - (i / T) % 17; /* some padding */
    layernorm_fwd(&s);
    attention_fwd(&s);

    printf(
        "Layers at model size, %d OpenBLAS thread%s (kernel %s), best of %d calls (median in brackets)\n\n",
        threads, threads == 1 ? "" : "s", fm_blas_kernel_name(), reps);
    printf("%-22s %-26s %s\n", "layer", "shape", "ms per call");
    for (size_t c = 0; c < sizeof CASES / sizeof *CASES; c++) {
        CASES[c].fn(&s); /* warm-up */
        for (int r = 0; r < reps; r++) {
            double t0 = now_seconds();
            CASES[c].fn(&s);
            times[r] = now_seconds() - t0;
        }
        qsort(times, (size_t)reps, sizeof *times, cmp_double);
        printf("%-22s %-26s %8.3f (%.3f)\n", CASES[c].name, CASES[c].shape, 1e3 * times[0],
               1e3 * times[reps / 2]);
    }
    float *bufs[] = {s.x,  s.y,    s.dy,   s.dx,    s.w,       s.b, s.dw, s.db, s.h,
                     s.dh, s.mean, s.rstd, s.cache, s.scratch, s.t, s.wt, s.bt};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++)
        fm_free(bufs[i]);
    fm_free(s.keep);
    fm_free(s.mask);
    fm_free(times);
    return 0;
}
