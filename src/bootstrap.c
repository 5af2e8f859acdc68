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

/* One evaluation set prepared for resampling: source indices with the positives first (all
 * indices in order when not stratified) and the replicate's buffers. */
typedef struct {
    const float *pred, *target;
    size_t n, n_pos;
    size_t *pool;
    float *bp, *bt;
} ResampleSet;

static FmStatus set_prepare(ResampleSet *r, const float *pred, const float *target, size_t n, int stratified,
                            FmError *err) {
    *r = (ResampleSet){.pred = pred, .target = target, .n = n};
    r->pool = fm_malloc_array(n, sizeof *r->pool);
    r->bp = fm_malloc_array(n, sizeof *r->bp);
    r->bt = fm_malloc_array(n, sizeof *r->bt);
    if (n && (!r->pool || !r->bp || !r->bt))
        return FM_FAIL(err, FM_ERR_NOMEM, NULL, "bootstrap: out of memory for %zu samples", n);
    if (!stratified) {
        for (size_t i = 0; i < n; i++)
            r->pool[i] = i;
        return FM_OK;
    }
    for (size_t i = 0; i < n; i++) {
        if (target[i] == 1.0f)
            r->pool[r->n_pos++] = i;
        else if (target[i] != 0.0f)
            return FM_FAIL(err, FM_ERR_ARG, NULL, "bootstrap: label[%zu] = %g: stratified resampling needs 0 or 1",
                           i, (double)target[i]);
    }
    size_t k = r->n_pos;
    for (size_t i = 0; i < n; i++)
        if (target[i] == 0.0f) r->pool[k++] = i;
    return FM_OK;
}

static void set_release(ResampleSet *r) {
    fm_free(r->pool);
    fm_free(r->bp);
    fm_free(r->bt);
}

/* Draws the set's replicate into bp/bt from `rng`. */
static void set_resample(ResampleSet *r, FmRng *rng, int stratified) {
    if (stratified) {
        if (r->n_pos) draw(rng, r->pool, r->n_pos, r->n_pos, r->pred, r->target, r->bp, r->bt, 0);
        if (r->n > r->n_pos)
            draw(rng, r->pool + r->n_pos, r->n - r->n_pos, r->n - r->n_pos, r->pred, r->target, r->bp, r->bt,
                 r->n_pos);
    } else {
        draw(rng, r->pool, r->n, r->n, r->pred, r->target, r->bp, r->bt, 0);
    }
}

FmStatus fm_bootstrap_mean_ci(FmMetricFn metric, const void *ctx, int n_sets, const float *const *pred,
                              const float *const *target, const size_t *n, const FmBootstrapConfig *cfg,
                              FmBootstrapCI *out, FmError *err) {
    out->estimate = out->lo = out->hi = out->se = NAN;
    out->n_valid = 0;
    if (n_sets < 1) return FM_FAIL(err, FM_ERR_ARG, NULL, "bootstrap: %d evaluation sets", n_sets);
    if (cfg->n_resamples < 0)
        return FM_FAIL(err, FM_ERR_ARG, NULL, "bootstrap: %d resamples", cfg->n_resamples);
    if (!(cfg->level > 0.0 && cfg->level < 1.0))
        return FM_FAIL(err, FM_ERR_ARG, NULL, "bootstrap: level %g is not in (0, 1)", cfg->level);
    ResampleSet *sets = fm_calloc((size_t)n_sets, sizeof *sets);
    double *rep = fm_malloc_array((size_t)cfg->n_resamples, sizeof *rep);
    FmStatus rc = FM_OK;
    int empty = 0;
    if (!sets || (cfg->n_resamples > 0 && !rep)) {
        rc = FM_FAIL(err, FM_ERR_NOMEM, NULL, "bootstrap: out of memory");
        goto done;
    }
    double estimate = 0.0;
    for (int s = 0; s < n_sets && rc == FM_OK; s++) {
        rc = set_prepare(&sets[s], pred[s], target[s], n[s], cfg->stratified, err);
        double v = NAN;
        if (rc == FM_OK) rc = metric(ctx, pred[s], target[s], n[s], &v, err);
        estimate += v;
        empty |= n[s] == 0;
    }
    if (rc != FM_OK) goto done;
    out->estimate = estimate / n_sets;
    if (empty) goto done;

    FmRng root;
    fm_rng_seed(&root, cfg->seed);
    int valid = 0;
    for (int b = 0; b < cfg->n_resamples; b++) {
        /* The replicate's stream draws the sets in order: one set gives fm_bootstrap_ci's draws. */
        FmRng rng = fm_rng_split(&root, (uint64_t)b);
        double sum = 0.0;
        for (int s = 0; s < n_sets && rc == FM_OK; s++) {
            set_resample(&sets[s], &rng, cfg->stratified);
            double v;
            rc = metric(ctx, sets[s].bp, sets[s].bt, sets[s].n, &v, err);
            sum += v;
        }
        if (rc != FM_OK) goto done;
        if (isfinite(sum)) rep[valid++] = sum / n_sets;
    }
    out->n_valid = valid;
    if (valid >= 2) {
        qsort(rep, (size_t)valid, sizeof *rep, cmp_double);
        out->lo = fm_stats_quantile(rep, (size_t)valid, 0.5 * (1.0 - cfg->level));
        out->hi = fm_stats_quantile(rep, (size_t)valid, 0.5 * (1.0 + cfg->level));
        out->se = fm_stats_summary(rep, (size_t)valid, cfg->level).std;
    }
done:
    for (int s = 0; sets && s < n_sets; s++)
        set_release(&sets[s]);
    fm_free(sets);
    fm_free(rep);
    if (rc != FM_OK) {
        out->estimate = out->lo = out->hi = out->se = NAN;
        out->n_valid = 0;
    }
    return rc;
}

FmStatus fm_bootstrap_ci(FmMetricFn metric, const void *ctx, const float *pred, const float *target, size_t n,
                         const FmBootstrapConfig *cfg, FmBootstrapCI *out, FmError *err) {
    return fm_bootstrap_mean_ci(metric, ctx, 1, &pred, &target, &n, cfg, out, err);
}

FmStatus fm_bootstrap_metric(const FmMetricSpec *spec, const float *pred, const float *target, size_t n,
                             int n_resamples, uint64_t seed, FmBootstrapCI *out, FmError *err) {
    FmBootstrapConfig cfg = fm_bootstrap_default();
    cfg.n_resamples = n_resamples;
    cfg.seed = seed;
    cfg.stratified = fm_metrics_is_binary(spec->kind);
    return fm_bootstrap_ci(fm_metrics_eval, spec, pred, target, n, &cfg, out, err);
}
