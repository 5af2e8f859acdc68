#include "src/bootstrap.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "src/alloc.h"
#include "src/rng.h"
#include "src/summary_stats.h"

FmBootstrapConfig fm_bootstrap_default(void) {
    FmBootstrapConfig c = {1000, 1, 0, 0.95};
    return c;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Fills the replicate's pred/target (n) by drawing from `pool` (k source indices) `take`
 * times, starting at position `at`. */
static void draw(FmRng *rng, const size_t *pool, size_t k, size_t take, const float *pred,
                 const float *target, float *bp, float *bt, size_t at) {
    for (size_t i = 0; i < take; i++) {
        size_t src = pool[fm_rng_below(rng, k)];
        bp[at + i] = pred[src];
        bt[at + i] = target[src];
    }
}

FmStatus fm_bootstrap_ci(FmMetricFn metric, const void *ctx, const float *pred, const float *target, size_t n,
                         const FmBootstrapConfig *cfg, FmBootstrapCI *out, FmError *err) {
    out->estimate = out->lo = out->hi = out->se = NAN;
    out->n_valid = 0;
    if (cfg->n_resamples < 0)
        return FM_FAIL(err, FM_ERR_ARG, NULL, "bootstrap: %d resamples", cfg->n_resamples);
    if (!(cfg->level > 0.0 && cfg->level < 1.0))
        return FM_FAIL(err, FM_ERR_ARG, NULL, "bootstrap: level %g is not in (0, 1)", cfg->level);
    /* Source indices: positives first, then negatives (or all, unstratified). */
    size_t *pool = fm_malloc_array(n, sizeof *pool);
    float *bp = fm_malloc_array(n, sizeof *bp);
    float *bt = fm_malloc_array(n, sizeof *bt);
    double *rep = fm_malloc_array((size_t)cfg->n_resamples, sizeof *rep);
    FmStatus rc = FM_OK;
    if (!pool || !bp || !bt || !rep) {
        rc = FM_FAIL(err, FM_ERR_NOMEM, NULL, "bootstrap: out of memory for %zu samples", n);
        goto done;
    }
    size_t n_pos = 0;
    if (cfg->stratified) {
        for (size_t i = 0; i < n; i++) {
            if (target[i] == 1.0f)
                pool[n_pos++] = i;
            else if (target[i] != 0.0f) {
                rc = FM_FAIL(err, FM_ERR_ARG, NULL,
                             "bootstrap: label[%zu] = %g: stratified resampling needs 0 or 1", i,
                             (double)target[i]);
                goto done;
            }
        }
        size_t k = n_pos;
        for (size_t i = 0; i < n; i++)
            if (target[i] == 0.0f) pool[k++] = i;
    } else {
        for (size_t i = 0; i < n; i++)
            pool[i] = i;
    }
    rc = metric(ctx, pred, target, n, &out->estimate, err);
    if (rc != FM_OK || n == 0) goto done;

    FmRng root;
    fm_rng_seed(&root, cfg->seed);
    int valid = 0;
    for (int b = 0; b < cfg->n_resamples; b++) {
        FmRng rng = fm_rng_split(&root, (uint64_t)b);
        if (cfg->stratified) {
            if (n_pos) draw(&rng, pool, n_pos, n_pos, pred, target, bp, bt, 0);
            if (n > n_pos) draw(&rng, pool + n_pos, n - n_pos, n - n_pos, pred, target, bp, bt, n_pos);
        } else {
            draw(&rng, pool, n, n, pred, target, bp, bt, 0);
        }
        double v;
        rc = metric(ctx, bp, bt, n, &v, err);
        if (rc != FM_OK) goto done;
        if (isfinite(v)) rep[valid++] = v;
    }
    out->n_valid = valid;
    if (valid >= 2) {
        qsort(rep, (size_t)valid, sizeof *rep, cmp_double);
        out->lo = fm_stats_quantile(rep, (size_t)valid, 0.5 * (1.0 - cfg->level));
        out->hi = fm_stats_quantile(rep, (size_t)valid, 0.5 * (1.0 + cfg->level));
        out->se = fm_stats_summary(rep, (size_t)valid, cfg->level).std;
    }
done:
    fm_free(pool);
    fm_free(bp);
    fm_free(bt);
    fm_free(rep);
    if (rc != FM_OK) {
        out->estimate = out->lo = out->hi = out->se = NAN;
        out->n_valid = 0;
    }
    return rc;
}

FmStatus fm_bootstrap_metric(const FmMetricSpec *spec, const float *pred, const float *target, size_t n,
                             int n_resamples, uint64_t seed, FmBootstrapCI *out, FmError *err) {
    FmBootstrapConfig cfg = fm_bootstrap_default();
    cfg.n_resamples = n_resamples;
    cfg.seed = seed;
    cfg.stratified = fm_metrics_is_binary(spec->kind);
    return fm_bootstrap_ci(fm_metrics_eval, spec, pred, target, n, &cfg, out, err);
}
