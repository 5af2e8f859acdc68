/* Bootstrap confidence intervals of any metric of one evaluation set.
 *
 * Replicate b draws n samples with replacement from the evaluation set and recomputes the
 * metric; the interval is the percentile interval of the replicates (Efron and Tibshirani,
 * An Introduction to the Bootstrap, 1993, chapter 13). Stratified resampling (for binary
 * labels) draws n_pos samples from the positives and n_neg from the negatives, so every
 * replicate keeps the original prevalence and AUROC/AUPRC are defined in every replicate.
 *
 * Determinism: replicate b uses the random stream fm_rng_split(seed stream, b), so the result
 * depends on the seed and the data only (not on threads or on other random draws). */
#ifndef FM_BOOTSTRAP_H
#define FM_BOOTSTRAP_H

#include <stddef.h>
#include <stdint.h>

#include "src/error.h"
#include "src/metrics.h"

typedef struct {
    int n_resamples; /* B replicates (config eval.bootstrap, 1000 by default); 0 = no interval */
    uint64_t seed;
    int stratified; /* 1: resample positives and negatives separately (target must be 0/1) */
    double level;   /* central coverage of the interval, in (0, 1); 0.95 by default */
} FmBootstrapConfig;

/* B = 1000, seed 1, not stratified, level 0.95. */
FmBootstrapConfig fm_bootstrap_default(void);

typedef struct {
    double estimate; /* the metric on the evaluation set itself */
    double lo, hi;   /* percentile interval: the (1-level)/2 and (1+level)/2 quantiles (type 7
                        interpolation, fm_stats_quantile) of the finite replicates */
    double se;       /* standard deviation of the finite replicates (bootstrap standard error) */
    int n_valid;     /* replicates whose metric was finite (NaN replicates are left out; with
                        plain resampling of a binary metric, a replicate can lack a class) */
} FmBootstrapCI;

/* Bootstraps `metric` (with its settings `ctx`) over pred/target (n). lo, hi and se are NaN
 * when fewer than 2 replicates are finite or n_resamples = 0; everything is NaN when n = 0.
 * FM_ERR_ARG for n_resamples < 0, a level outside (0, 1), or (stratified) a target that is not
 * 0/1; FM_ERR_NOMEM on allocation failure; a failure of the metric itself is passed on. The
 * inputs are borrowed; nothing is kept. */
FmStatus fm_bootstrap_ci(FmMetricFn metric, const void *ctx, const float *pred, const float *target, size_t n,
                         const FmBootstrapConfig *cfg, FmBootstrapCI *out, FmError *err);

/* The mean of `metric` over n_sets (>= 1) evaluation sets (pred[s], target[s], n[s] values;
 * e.g. the test parts of several splits, scored by their own models) with a bootstrap interval
 * of that mean: replicate b resamples every set independently (stratified as cfg says, each set
 * keeping its size and prevalence) and averages the metric over the sets. estimate is the mean
 * of the sets' metrics; with one set this is fm_bootstrap_ci, replicate for replicate. lo, hi
 * and se are NaN when a set is empty or fewer than 2 replicates are finite. Errors as
 * fm_bootstrap_ci's, and FM_ERR_ARG for n_sets < 1. */
FmStatus fm_bootstrap_mean_ci(FmMetricFn metric, const void *ctx, int n_sets, const float *const *pred,
                              const float *const *target, const size_t *n, const FmBootstrapConfig *cfg,
                              FmBootstrapCI *out, FmError *err);

/* Bootstraps a metric chosen by FmMetricSpec with B replicates and `seed` at level 0.95,
 * stratified for binary metrics and plain for regression metrics. */
FmStatus fm_bootstrap_metric(const FmMetricSpec *spec, const float *pred, const float *target, size_t n,
                             int n_resamples, uint64_t seed, FmBootstrapCI *out, FmError *err);

#endif
