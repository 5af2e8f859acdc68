/* Statistics across runs (t distribution, summaries, paired tests), the bootstrap, and the
 * results table and CSV built on them. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "src/alloc.h"
#include "src/blas_kernel.h"
#include "src/bootstrap.h"
#include "src/error.h"
#include "src/metrics.h"
#include "src/rng.h"
#include "src/summary_stats.h"
#include "tests/support/testutil.h"

static void assert_near(double got, double want, double tol, const char *what) {
    ck_assert_msg(fabs(got - want) <= tol, "%s: got %.15g, want %.15g (tol %g)", what, got, want, tol);
}

/* Student t quantiles against printed tables (values to 6 decimals as tables give them, and
 * the closed forms for df = 1: tan(pi (p - 1/2)), and df = 2: (2p - 1) sqrt(2 / (4p(1-p)))). */
START_TEST(test_t_quantiles_known_values) {
    assert_near(fm_stats_t_quantile(0.975, 4), 2.776445, 5e-7, "t_{0.975,4}");
    assert_near(fm_stats_t_quantile(0.975, 10), 2.228139, 5e-7, "t_{0.975,10}");
    assert_near(fm_stats_t_quantile(0.975, 30), 2.042272, 5e-7, "t_{0.975,30}");
    assert_near(fm_stats_t_quantile(0.95, 5), 2.015048, 5e-7, "t_{0.95,5}");
    assert_near(fm_stats_t_quantile(0.995, 3), 5.840909, 5e-7, "t_{0.995,3}");
    assert_near(fm_stats_t_quantile(0.9995, 20), 3.849516, 5e-7, "t_{0.9995,20}");
    /* Closed forms: observed agreement 1e-14 relative. */
    assert_near(fm_stats_t_quantile(0.975, 1), tan(M_PI * 0.475), 1e-12, "t_{0.975,1} = tan(0.475 pi)");
    assert_near(fm_stats_t_quantile(0.9, 1), tan(M_PI * 0.4), 1e-12, "t_{0.9,1}");
    double p = 0.975;
    assert_near(fm_stats_t_quantile(p, 2), (2 * p - 1) * sqrt(2.0 / (4 * p * (1 - p))), 1e-12, "t_{0.975,2}");
    /* Infinite df is the normal: z_{0.975} = 1.959964. */
    assert_near(fm_stats_t_quantile(0.975, INFINITY), 1.959964, 5e-7, "z_{0.975}");
    /* Symmetry, the median and the ends. */
    assert_near(fm_stats_t_quantile(0.025, 4), -fm_stats_t_quantile(0.975, 4), 0.0, "symmetry");
    ck_assert(fm_stats_t_quantile(0.5, 7) == 0.0);
    ck_assert(isinf(fm_stats_t_quantile(1.0, 3)) && fm_stats_t_quantile(1.0, 3) > 0);
    ck_assert(isinf(fm_stats_t_quantile(0.0, 3)) && fm_stats_t_quantile(0.0, 3) < 0);
    ck_assert(isnan(fm_stats_t_quantile(1.5, 3)));
    ck_assert(isnan(fm_stats_t_quantile(0.9, 0)));
    ck_assert(isnan(fm_stats_t_quantile(NAN, 3)));
    /* The quantile inverts the CDF (observed round-trip error 1e-16). */
    for (double df = 0.5; df < 200; df *= 1.7)
        for (double q = 0.01; q < 1.0; q += 0.07)
            assert_near(fm_stats_t_cdf(fm_stats_t_quantile(q, df), df), q, 1e-12, "cdf(quantile(q))");
}
END_TEST

/* CDF and p-values: df = 1 is Cauchy, P(T <= t) = 1/2 + atan(t)/pi; df = 2 has
 * P(T <= t) = 1/2 + t / (2 sqrt(2 + t^2)). Incomplete beta special cases: I_x(1, 1) = x,
 * I_x(a, 1) = x^a, I_x(2, 3) = 6x^2 - 8x^3 + 3x^4 (0.5248 at 0.4), I_{1/2}(a, a) = 1/2. */
START_TEST(test_t_cdf_and_betainc) {
    for (double t = -30; t <= 30; t += 0.37) {
        assert_near(fm_stats_t_cdf(t, 1), 0.5 + atan(t) / M_PI, 1e-13, "Cauchy CDF");
        assert_near(fm_stats_t_cdf(t, 2), 0.5 + t / (2 * sqrt(2 + t * t)), 1e-13, "t2 CDF");
        assert_near(fm_stats_t_cdf(t, INFINITY), 0.5 * erfc(-t / sqrt(2.0)), 1e-15, "normal CDF");
    }
    /* A far tail keeps its relative accuracy: P(|T_1| >= 1e6) = 1 - 2 atan(1e6)/pi = 2/pi * atan(1e-6). */
    double p = fm_stats_t_pvalue(1e6, 1), want = 2.0 / M_PI * atan(1e-6);
    ck_assert_msg(fabs(p - want) <= 1e-12 * want, "tail p %.17g vs %.17g", p, want);
    /* scipy.stats.t.sf(2, 4) * 2 = 0.116116523516816 (observed difference 1e-16). */
    assert_near(fm_stats_t_pvalue(2.0, 4), 0.116116523516816, 1e-14, "p(|T_4| >= 2)");
    assert_near(fm_stats_t_pvalue(-2.0, 4), 0.116116523516816, 1e-14, "p symmetric");
    ck_assert(fm_stats_t_pvalue(INFINITY, 3) == 0.0);
    ck_assert(isnan(fm_stats_t_pvalue(1.0, -1)));
    for (double x = 0.0; x <= 1.0; x += 0.05) {
        assert_near(fm_stats_betainc(1, 1, x), x, 1e-14, "I_x(1,1)");
        assert_near(fm_stats_betainc(3.5, 1, x), pow(x, 3.5), 1e-14, "I_x(a,1)");
        assert_near(fm_stats_betainc(2, 3, x), 6 * x * x - 8 * x * x * x + 3 * x * x * x * x, 1e-14, "I_x(2,3)");
    }
    assert_near(fm_stats_betainc(2, 3, 0.4), 0.5248, 1e-14, "I_0.4(2,3)");
    assert_near(fm_stats_betainc(40, 40, 0.5), 0.5, 1e-13, "I_0.5(a,a)");
    ck_assert(isnan(fm_stats_betainc(0, 1, 0.5)));
    ck_assert(isnan(fm_stats_betainc(1, 1, 1.5)));
}
END_TEST

/* 1..5: mean 3, sample std sqrt(2.5), CI 3 -+ 2.776445 sqrt(2.5) / sqrt(5). NaN runs are left
 * out and counted. */
START_TEST(test_summary_known_values) {
    const double x[] = {1, 2, NAN, 3, 4, 5};
    FmSummary s = fm_stats_summary(x, 6, 0.95);
    ck_assert_uint_eq(s.n, 5);
    assert_near(s.mean, 3.0, 1e-15, "mean");
    assert_near(s.std, sqrt(2.5), 1e-15, "std");
    double half = fm_stats_t_quantile(0.975, 4) * sqrt(2.5) / sqrt(5.0);
    assert_near(half, 2.776445105198 * sqrt(0.5), 1e-11, "half width");
    assert_near(s.ci_lo, 3.0 - half, 1e-14, "ci lo");
    assert_near(s.ci_hi, 3.0 + half, 1e-14, "ci hi");
    s = fm_stats_summary(x, 1, 0.95);
    ck_assert_uint_eq(s.n, 1);
    assert_near(s.mean, 1.0, 0.0, "single value mean");
    ck_assert(isnan(s.std) && isnan(s.ci_lo) && isnan(s.ci_hi));
    s = fm_stats_summary(x + 2, 1, 0.95);
    ck_assert(s.n == 0 && isnan(s.mean));
    s = fm_stats_summary(NULL, 0, 0.95);
    ck_assert(s.n == 0 && isnan(s.mean));
    /* Quantiles, type 7: 1 2 3 4 at p = 0.1 -> 1 + 0.3 * 1. */
    const double q[] = {1, 2, 3, 4};
    assert_near(fm_stats_quantile(q, 4, 0.1), 1.3, 1e-15, "quantile");
    assert_near(fm_stats_quantile(q, 4, 1.0), 4.0, 0.0, "quantile max");
    assert_near(fm_stats_quantile(q, 1, 0.7), 1.0, 0.0, "quantile one value");
    ck_assert(isnan(fm_stats_quantile(q, 0, 0.5)));
}
END_TEST

/* a = 3 5 4 6 7, b = 1 4 4 3 5: d = 2 1 0 3 2, mean 1.6, sd sqrt(1.3), t = 1.6 / (sd/sqrt 5) =
 * 3.1378581622109443, scipy.stats.ttest_rel p = 0.03491970667453905; CI half width
 * 2.776445 * sd / sqrt(5) = 1.4157147769822749 (scipy). */
START_TEST(test_paired_t_known_values) {
    const double a[] = {3, 5, 4, 6, 7, NAN}, b[] = {1, 4, 4, 3, 5, 2};
    FmPairedT r = fm_stats_paired_t(a, b, 6, 0.95);
    ck_assert_uint_eq(r.n, 5);
    assert_near(r.mean_diff, 1.6, 1e-15, "mean diff");
    assert_near(r.sd_diff, sqrt(1.3), 1e-15, "sd diff");
    assert_near(r.t, 3.1378581622109443, 1e-13, "t");
    assert_near(r.p, 0.03491970667453905, 1e-13, "p"); /* observed difference 2e-17 */
    assert_near(r.ci_lo, 1.6 - 1.4157147769822749, 1e-12, "ci lo");
    assert_near(r.ci_hi, 1.6 + 1.4157147769822749, 1e-12, "ci hi");
    /* Swapping the configurations flips the sign, not the p-value. */
    FmPairedT s = fm_stats_paired_t(b, a, 6, 0.95);
    assert_near(s.mean_diff, -1.6, 1e-15, "flipped mean");
    assert_near(s.p, r.p, 1e-15, "flipped p");
    /* Constant differences: no spread, p is the limit 0 (or 1 when the mean is 0). */
    const double c[] = {2, 3, 4}, e[] = {1, 2, 3};
    r = fm_stats_paired_t(c, e, 3, 0.95);
    ck_assert(r.p == 0.0 && r.ci_lo == 1.0 && r.ci_hi == 1.0);
    r = fm_stats_paired_t(c, c, 3, 0.95);
    ck_assert(r.p == 1.0 && r.mean_diff == 0.0);
    r = fm_stats_paired_t(c, e, 1, 0.95);
    ck_assert(r.n == 1 && r.mean_diff == 1.0 && isnan(r.p) && isnan(r.ci_lo));
    r = fm_stats_paired_t(NULL, NULL, 0, 0.95);
    ck_assert(r.n == 0 && isnan(r.mean_diff));
}
END_TEST

/* Wilcoxon by hand.
 * (1) d = 1 2 3 4 5: W+ = 15, only the all-positive assignment of 2^5 reaches it: p = 2/32.
 * (2) d = -0.5 1 2 3 4: ranks 1..5, W+ = 14; P(W+ >= 14) = P(W- <= 1) = 2/32: p = 4/32.
 * (3) ties d = 1 -1 2 2 3: |d| ranks 1.5 1.5 3.5 3.5 5, W+ = 13.5; doubled ranks 3 3 7 7 10,
 *     P(2W+ >= 27) = P(complement sum <= 3) = #{{}, {3a}, {3b}} / 32 = 3/32: p = 6/32.
 * (4) zeros are dropped: d = 0 0 1 2 3 4 5 is case (1).
 * scipy.stats.wilcoxon gives 0.0625 and 0.125 for (1) and (2) (exact mode). */
START_TEST(test_wilcoxon_by_hand) {
    FmWilcoxon w;
    FmError err;
    const double zero[] = {0, 0, 0, 0, 0, 0, 0};
    const double d1[] = {1, 2, 3, 4, 5};
    ck_assert_int_eq(fm_stats_wilcoxon(d1, zero, 5, &w, &err), FM_OK);
    ck_assert(w.exact && w.n == 5 && w.n_nonzero == 5);
    assert_near(w.w_plus, 15, 0, "W+ (1)");
    assert_near(w.p, 2.0 / 32, 1e-15, "p (1)");
    const double d2[] = {-0.5, 1, 2, 3, 4};
    ck_assert_int_eq(fm_stats_wilcoxon(d2, zero, 5, &w, &err), FM_OK);
    assert_near(w.w_plus, 14, 0, "W+ (2)");
    assert_near(w.p, 4.0 / 32, 1e-15, "p (2)");
    const double d3[] = {1, -1, 2, 2, 3};
    ck_assert_int_eq(fm_stats_wilcoxon(d3, zero, 5, &w, &err), FM_OK);
    assert_near(w.w_plus, 13.5, 0, "W+ (3)");
    assert_near(w.p, 6.0 / 32, 1e-15, "p (3) with ties");
    const double d4[] = {0, 0, 1, 2, 3, 4, 5};
    ck_assert_int_eq(fm_stats_wilcoxon(d4, zero, 7, &w, &err), FM_OK);
    ck_assert(w.n == 7 && w.n_nonzero == 5);
    assert_near(w.p, 2.0 / 32, 1e-15, "p (4) zeros dropped");
    /* As a comparison of two vectors: a - b = case (2), NaN pairs dropped. */
    const double a[] = {0.5, 1, 2, 3, 4, NAN}, b[] = {1, 0, 0, 0, 0, 1};
    ck_assert_int_eq(fm_stats_wilcoxon(a, b, 6, &w, &err), FM_OK);
    ck_assert_uint_eq(w.n, 5);
    assert_near(w.p, 4.0 / 32, 1e-15, "p (2) from vectors");
    /* All differences zero: no evidence, p = 1; no pairs: NaN. */
    ck_assert_int_eq(fm_stats_wilcoxon(zero, zero, 3, &w, &err), FM_OK);
    ck_assert(w.p == 1.0 && w.n_nonzero == 0);
    ck_assert_int_eq(fm_stats_wilcoxon(NULL, NULL, 0, &w, &err), FM_OK);
    ck_assert(isnan(w.p));
}
END_TEST

/* n = 20 with signs (-,+,+) repeating on d = 1..20: W- = 70; scipy exact p = 0.20244979858398438
 * (= 212282 / 2^20). n = 60 in the same pattern uses the normal approximation: scipy
 * (mode="approx", no continuity correction) p = 0.016733071607703435. */
START_TEST(test_wilcoxon_against_scipy) {
    double d[60], zero[60] = {0};
    for (int i = 0; i < 60; i++) d[i] = (i + 1) * (i % 3 ? 1.0 : -1.0);
    FmWilcoxon w;
    ck_assert_int_eq(fm_stats_wilcoxon(d, zero, 20, &w, NULL), FM_OK);
    ck_assert(w.exact);
    assert_near(w.w_plus, 140, 0, "W+ n=20");
    assert_near(w.p, 0.20244979858398438, 1e-15, "exact p n=20");
    ck_assert_int_eq(fm_stats_wilcoxon(d, zero, 60, &w, NULL), FM_OK);
    ck_assert(!w.exact);
    assert_near(w.p, 0.016733071607703435, 1e-12, "approx p n=60"); /* observed 1e-17 */
}
END_TEST

START_TEST(test_wilcoxon_alloc_failure) {
    const double d[] = {1, -1, 2, 2, 3}, zero[5] = {0};
    FmWilcoxon w;
    FmError err;
    for (long k = 1;; k++) {
        fm_alloc_fail_after(k);
        FmStatus st = fm_stats_wilcoxon(d, zero, 5, &w, &err);
        long calls = fm_alloc_calls();
        fm_alloc_fail_reset();
        if (st == FM_OK) {
            ck_assert_int_gt(k, calls);
            ck_assert_int_ge(k, 3);
            break;
        }
        ck_assert_int_eq(st, FM_ERR_NOMEM);
        ck_assert(isnan(w.p));
    }
}
END_TEST

/* ---- bootstrap ---- */

/* A binary set: 60 positives scored N(1, 1), 140 negatives N(0, 1), squashed to (0, 1). */
static void binary_set(uint64_t seed, float *score, float *label, int n, int n_pos, double shift) {
    FmRng r;
    fm_rng_seed(&r, seed);
    for (int i = 0; i < n; i++) {
        label[i] = i < n_pos ? 1.0f : 0.0f;
        double z = fm_rng_normal(&r) + (i < n_pos ? shift : 0.0);
        score[i] = (float)(1.0 / (1.0 + exp(-z)));
    }
}

START_TEST(test_bootstrap_deterministic) {
    enum { N = 200 };
    float s[N], l[N];
    binary_set(3, s, l, N, 60, 1.0);
    FmMetricSpec spec = {FM_METRIC_AUROC, 0, 0};
    FmBootstrapCI a, b, c;
    FmError err;
    ck_assert_int_eq(fm_bootstrap_metric(&spec, s, l, N, 300, 42, &a, &err), FM_OK);
    ck_assert_int_eq(fm_bootstrap_metric(&spec, s, l, N, 300, 42, &b, &err), FM_OK);
    ck_assert_int_eq(fm_bootstrap_metric(&spec, s, l, N, 300, 43, &c, &err), FM_OK);
    ck_assert(a.lo == b.lo && a.hi == b.hi && a.se == b.se && a.estimate == b.estimate);
    ck_assert(a.lo != c.lo || a.hi != c.hi);
    ck_assert_int_eq(a.n_valid, 300);
    double auc;
    ck_assert_int_eq(fm_metrics_auroc(s, l, N, &auc, &err), FM_OK);
    ck_assert(a.estimate == auc);
    ck_assert(a.lo < auc && auc < a.hi);
    /* Replicate b does not depend on how many are drawn: the intervals from 300 and 1000
     * replicates are close (observed differences 0.003 and 0.001). */
    ck_assert_int_eq(fm_bootstrap_metric(&spec, s, l, N, 1000, 42, &c, &err), FM_OK);
    ck_assert(fabs(c.lo - a.lo) < 0.02 && fabs(c.hi - a.hi) < 0.02);
    /* The Hanley-McNeil standard error for AUROC 0.74 with 60 positives and 140 negatives is
     * 0.041; the bootstrap one must be of that size (observed 0.037). */
    ck_assert_msg(a.se > 0.025 && a.se < 0.05, "bootstrap se %g", a.se);

    /* Stratified replicates keep both classes: AUROC is finite in every one, even with 3
     * positives; plain resampling loses some replicates. */
    binary_set(4, s, l, 40, 3, 1.0);
    FmBootstrapConfig cfg = fm_bootstrap_default();
    cfg.n_resamples = 400;
    cfg.stratified = 1;
    ck_assert_int_eq(fm_bootstrap_ci(fm_metrics_eval, &spec, s, l, 40, &cfg, &a, &err), FM_OK);
    ck_assert_int_eq(a.n_valid, 400);
    cfg.stratified = 0;
    ck_assert_int_eq(fm_bootstrap_ci(fm_metrics_eval, &spec, s, l, 40, &cfg, &b, &err), FM_OK);
    /* P(no positive in 40 draws) = (37/40)^40 = 4.4%: about 18 of 400 lost (observed 16). */
    ck_assert_msg(b.n_valid < 400 && b.n_valid > 360, "plain replicates valid: %d", b.n_valid);
}
END_TEST

START_TEST(test_bootstrap_edge_cases) {
    FmMetricSpec spec = {FM_METRIC_AUROC, 0, 0};
    FmBootstrapCI r;
    FmError err;
    const float s[] = {0.1f, 0.4f, 0.35f, 0.8f}, l[] = {0, 0, 1, 1}, bad[] = {0, 0.5f, 1, 1};
    ck_assert_int_eq(fm_bootstrap_metric(&spec, NULL, NULL, 0, 100, 1, &r, &err), FM_OK);
    ck_assert(isnan(r.estimate) && isnan(r.lo) && r.n_valid == 0);
    ck_assert_int_eq(fm_bootstrap_metric(&spec, s, l, 4, 0, 1, &r, &err), FM_OK);
    assert_near(r.estimate, 0.75, 1e-12, "estimate without replicates");
    ck_assert(isnan(r.lo) && isnan(r.hi));
    ck_assert_int_eq(fm_bootstrap_metric(&spec, s, bad, 4, 10, 1, &r, &err), FM_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(err.message, "label[1] = 0.5"));
    ck_assert(isnan(r.estimate));
    FmBootstrapConfig cfg = fm_bootstrap_default();
    cfg.level = 1.0;
    ck_assert_int_eq(fm_bootstrap_ci(fm_metrics_eval, &spec, s, l, 4, &cfg, &r, &err), FM_ERR_ARG);
    cfg = fm_bootstrap_default();
    cfg.n_resamples = -1;
    ck_assert_int_eq(fm_bootstrap_ci(fm_metrics_eval, &spec, s, l, 4, &cfg, &r, &err), FM_ERR_ARG);
    /* A constant metric has a zero-width interval. */
    const float p[] = {1, 2, 3}, t[] = {1, 2, 3};
    FmMetricSpec mae = {FM_METRIC_MAE, 0, 0};
    ck_assert_int_eq(fm_bootstrap_metric(&mae, p, t, 3, 50, 1, &r, &err), FM_OK);
    ck_assert(r.lo == 0.0 && r.hi == 0.0 && r.se == 0.0);
}
END_TEST

/* Coverage sanity: over many independent data sets with a known true value, the 95% interval
 * contains the truth in about 95% of them.
 * - MAE of N(0, 1) errors: true value sqrt(2/pi); plain bootstrap, n = 100.
 * - AUROC of N(1, 1) positives against N(0, 1) negatives: true value Phi(1/sqrt 2) =
 *   0.760250; stratified bootstrap, 40 positives, 80 negatives.
 * 200 data sets x 200 replicates each; the binomial standard error of a 95% coverage over 200
 * sets is 1.5%, so the bounds below are more than 4 standard errors wide; percentile
 * intervals tend to under-cover slightly at these sizes (observed: MAE 0.915, AUROC 0.95). */
START_TEST(test_bootstrap_coverage) {
    enum { SETS = 200, B = 200, N = 120 };
    float pred[N], target[N];
    FmRng r;
    fm_rng_seed(&r, 99);
    int hit_mae = 0, hit_auc = 0;
    const double true_mae = sqrt(2.0 / M_PI), true_auc = 0.5 * erfc(-(1.0 / sqrt(2.0)) / sqrt(2.0));
    FmMetricSpec mae = {FM_METRIC_MAE, 0, 0}, auc = {FM_METRIC_AUROC, 0, 0};
    for (int k = 0; k < SETS; k++) {
        for (int i = 0; i < 100; i++) {
            pred[i] = (float)fm_rng_normal(&r);
            target[i] = 0.0f;
        }
        FmBootstrapCI ci;
        ck_assert_int_eq(fm_bootstrap_metric(&mae, pred, target, 100, B, (uint64_t)k, &ci, NULL), FM_OK);
        hit_mae += ci.lo <= true_mae && true_mae <= ci.hi;
        for (int i = 0; i < N; i++) {
            target[i] = i < 40 ? 1.0f : 0.0f;
            pred[i] = (float)(fm_rng_normal(&r) + (i < 40 ? 1.0 : 0.0));
        }
        ck_assert_int_eq(fm_bootstrap_metric(&auc, pred, target, N, B, (uint64_t)k, &ci, NULL), FM_OK);
        hit_auc += ci.lo <= true_auc && true_auc <= ci.hi;
    }
    double cov_mae = (double)hit_mae / SETS, cov_auc = (double)hit_auc / SETS;
    ck_assert_msg(cov_mae >= 0.88 && cov_mae <= 0.995, "MAE coverage %.3f", cov_mae);
    ck_assert_msg(cov_auc >= 0.86 && cov_auc <= 0.995, "AUROC coverage %.3f", cov_auc);
}
END_TEST

START_TEST(test_bootstrap_alloc_failure) {
    enum { N = 30 };
    float s[N], l[N];
    binary_set(8, s, l, N, 10, 1.0);
    FmMetricSpec spec = {FM_METRIC_AUPRC, 0, 0};
    FmBootstrapCI r;
    FmError err;
    for (long k = 1;; k++) {
        fm_alloc_fail_after(k);
        FmStatus st = fm_bootstrap_metric(&spec, s, l, N, 20, 7, &r, &err);
        long calls = fm_alloc_calls();
        fm_alloc_fail_reset();
        if (st == FM_OK) {
            ck_assert_int_gt(k, calls);
            break;
        }
        ck_assert_int_eq(st, FM_ERR_NOMEM); /* the metric's own allocations fail too */
        ck_assert(isnan(r.estimate) && isnan(r.lo));
    }
}
END_TEST

static Suite *stats_suite(void) {
    Suite *s = suite_create("stats");
    TCase *tc = tcase_create("stats");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_t_quantiles_known_values);
    tcase_add_test(tc, test_t_cdf_and_betainc);
    tcase_add_test(tc, test_summary_known_values);
    tcase_add_test(tc, test_paired_t_known_values);
    tcase_add_test(tc, test_wilcoxon_by_hand);
    tcase_add_test(tc, test_wilcoxon_against_scipy);
    tcase_add_test(tc, test_wilcoxon_alloc_failure);
    tcase_add_test(tc, test_bootstrap_deterministic);
    tcase_add_test(tc, test_bootstrap_edge_cases);
    tcase_add_test(tc, test_bootstrap_coverage);
    tcase_add_test(tc, test_bootstrap_alloc_failure);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) {
    fm_blas_select_kernel(argv);
    return fm_test_run_suite(stats_suite());
}
