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
#include "src/results_table.h"
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
        assert_near(fm_stats_betainc(2, 3, x), 6 * x * x - 8 * x * x * x + 3 * x * x * x * x, 1e-14,
                    "I_x(2,3)");
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
    for (int i = 0; i < 60; i++)
        d[i] = (i + 1) * (i % 3 ? 1.0 : -1.0);
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

/* A metric with a known standard error: the mean of the predictions. */
static FmStatus mean_metric(const void *ctx, const float *pred, const float *target, size_t n, double *out,
                            FmError *err) {
    (void)ctx, (void)target, (void)err;
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += pred[i];
    *out = n ? s / (double)n : NAN;
    return FM_OK;
}

/* The mean over several sets: its estimate is the mean of the sets' metrics, one set gives
 * fm_bootstrap_ci's interval, and the interval has the analytic width of a mean of means. */
START_TEST(test_bootstrap_mean_of_sets) {
    enum { N = 400 };
    float a[N], b[N], la[N], lb[N];
    FmRng r;
    fm_rng_seed(&r, 11);
    for (int i = 0; i < N; i++) {
        a[i] = (float)fm_rng_normal(&r);          /* variance 1 */
        b[i] = (float)(2.0 * fm_rng_normal(&r)); /* variance 4 */
        la[i] = lb[i] = 0.0f;
    }
    const float *pred[2] = {a, b}, *target[2] = {la, lb};
    const size_t n[2] = {N, N};
    FmBootstrapConfig cfg = fm_bootstrap_default();
    cfg.n_resamples = 4000;
    FmBootstrapCI one, two, ref;
    FmError err;
    ck_assert_int_eq(fm_bootstrap_mean_ci(mean_metric, NULL, 1, pred, target, n, &cfg, &one, &err), FM_OK);
    ck_assert_int_eq(fm_bootstrap_ci(mean_metric, NULL, a, la, N, &cfg, &ref, &err), FM_OK);
    ck_assert(one.lo == ref.lo && one.hi == ref.hi && one.estimate == ref.estimate);
    ck_assert_int_eq(fm_bootstrap_mean_ci(mean_metric, NULL, 2, pred, target, n, &cfg, &two, &err), FM_OK);
    double ma, mb;
    mean_metric(NULL, a, la, N, &ma, NULL);
    mean_metric(NULL, b, lb, N, &mb, NULL);
    assert_near(two.estimate, 0.5 * (ma + mb), 1e-12, "mean of the sets' metrics");
    /* se of (mean_a + mean_b) / 2 = sqrt(1/N + 4/N) / 2 = 0.0559 (sample variances: within a
     * few percent); one set: 1/sqrt(N) = 0.05. */
    const double want = 0.5 * sqrt(5.0 / N);
    ck_assert_msg(fabs(two.se - want) < 0.08 * want, "se %g, analytic %g", two.se, want);
    ck_assert_msg(fabs(one.se - 0.05) < 0.08 * 0.05, "se %g, analytic 0.05", one.se);
    ck_assert(two.lo < two.estimate && two.estimate < two.hi);
    /* an empty set leaves the interval undefined; no set at all is an error */
    const size_t n0[2] = {N, 0};
    ck_assert_int_eq(fm_bootstrap_mean_ci(mean_metric, NULL, 2, pred, target, n0, &cfg, &two, &err), FM_OK);
    ck_assert(isnan(two.lo) && isnan(two.hi));
    ck_assert_int_eq(fm_bootstrap_mean_ci(mean_metric, NULL, 0, pred, target, n, &cfg, &two, &err), FM_ERR_ARG);
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

/* ---- results.csv and the results table ---- */

/* Five seeds of "laplace" and "softmax" on split 0. AUROC in percent:
 *   laplace 86 87 85 88 86: mean 86.4, squared deviations sum 5.2, std sqrt(1.3) = 1.140,
 *     CI 86.4 -+ 2.776445 * 1.140 / sqrt(5) = 86.4 -+ 1.416 -> [85.0, 87.8]
 *   softmax 84 86 85 85 84: mean 84.8, sum 2.8, std sqrt(0.7) = 0.837, half width 1.039
 *     -> [83.8, 85.8]
 *   softmax - laplace per seed: -2 -1 0 -3 -2: mean -1.6, std sqrt(1.3), CI -1.6 -+ 1.416
 *     -> [-3.0, -0.2], paired t p = 0.0349 (scipy.stats.ttest_rel) -> "p = 0.03".
 * "gaussian" has three runs, matched to laplace seeds 1..3, and one AUPRC not measured. */
static void synthetic_results(FmResults *r) {
    const double lap[] = {0.86, 0.87, 0.85, 0.88, 0.86}, smx[] = {0.84, 0.86, 0.85, 0.85, 0.84};
    const double lap_pr[] = {0.50, 0.52, 0.48, 0.55, 0.50}, smx_pr[] = {0.49, 0.50, 0.47, 0.52, 0.50};
    const char *names[] = {"auroc", "auprc"};
    fm_results_init(r);
    for (int k = 0; k < 5; k++) {
        double v[2] = {lap[k], lap_pr[k]};
        ck_assert_int_eq(fm_results_add(r, "laplace", 0, k + 1, names, v, 2, NULL), FM_OK);
    }
    for (int k = 0; k < 5; k++) {
        double v[2] = {smx[k], smx_pr[k]};
        ck_assert_int_eq(fm_results_add(r, "softmax", 0, k + 1, names, v, 2, NULL), FM_OK);
    }
    const double ga[] = {0.87, 0.88, 0.86}, ga_pr[] = {0.51, NAN, 0.50};
    for (int k = 0; k < 3; k++) {
        double v[2] = {ga[k], ga_pr[k]};
        ck_assert_int_eq(fm_results_add(r, "gaussian", 0, k + 1, names, v, 2, NULL), FM_OK);
    }
}

START_TEST(test_results_table_known_values) {
    FmResults r;
    synthetic_results(&r);
    FmTableColumn cols[] = {{"auroc", "AUROC (%)", 100, 1}, {"auprc", "AUPRC (%)", 100, 1}};
    FmTableSpec spec = {cols, 2, "laplace", NULL, 0, 0.95, 0};
    char *md;
    FmError err;
    ck_assert_int_eq(fm_results_table_markdown(&r, &spec, &md, &err), FM_OK);
    /* The laplace and softmax AUROC cells and the comparison as derived above. */
    ck_assert_msg(strstr(md, "| laplace | 5 | 86.4 +- 1.1 [85.0, 87.8] |"), "%s", md);
    ck_assert_msg(strstr(md, "| softmax | 5 | 84.8 +- 0.8 [83.8, 85.8] |"), "%s", md);
    ck_assert_msg(strstr(md, "| -1.6 [-3.0, -0.2], p = 0.03 |"), "%s", md);
    /* The whole table. AUPRC in percent, by hand:
     *   laplace 50 52 48 55 50: mean 51.0, deviations sum of squares 28, std sqrt(7) = 2.646,
     *     half width 2.776445 * 2.646 / sqrt(5) = 3.285 -> [47.7, 54.3]
     *   softmax 49 50 47 52 50: mean 49.6, sum 13.2, std sqrt(3.3) = 1.817, half 2.256
     *     -> [47.3, 51.9]; minus laplace per seed -1 -2 -1 -3 0: mean -1.4, std sqrt(1.3),
     *     [-2.816, +0.016], t = -2.746 on 4 df, p = 0.052
     *   gaussian AUROC 87 88 86: mean 87, std 1, half 4.302653 / sqrt(3) = 2.484; minus
     *     laplace (86 87 85) is +1 every time: std 0, interval [+1, +1], p -> 0 (< 0.001)
     *   gaussian AUPRC 51, not measured, 50: n = 2, mean 50.5, std 0.707, half 12.706 * 0.5
     *     = 6.353; pairs with laplace (50, 48): differences 1, 2, mean 1.5, half 6.353, t = 3 on
     *     1 df, p = 1 - 2 atan(3) / pi = 0.205. */
    const char *want =
        "| Configuration | Runs | AUROC (%) | AUPRC (%) | AUROC (%) vs laplace | AUPRC (%) vs laplace |\n"
        "|---|---:|---|---|---|---|\n"
        "| laplace | 5 | 86.4 +- 1.1 [85.0, 87.8] | 51.0 +- 2.6 [47.7, 54.3] | baseline | baseline |\n"
        "| softmax | 5 | 84.8 +- 0.8 [83.8, 85.8] | 49.6 +- 1.8 [47.3, 51.9] | -1.6 [-3.0, -0.2], p = 0.03 | "
        "-1.4 [-2.8, +0.0], p = 0.05 |\n"
        "| gaussian | 3 | 87.0 +- 1.0 [84.5, 89.5] | 50.5 +- 0.7 [44.1, 56.9] (n = 2) | +1.0 [+1.0, +1.0], p "
        "< 0.001 | "
        "+1.5 [-4.9, +7.9], p = 0.20 (n = 2 pairs) |\n";
    ck_assert_msg(strcmp(md, want) == 0, "table:\n%s", md);
    fm_free(md);

    /* Order, Wilcoxon p-values, no baseline. With 5 pairs all of one sign the exact Wilcoxon
     * p is 2/32 = 0.0625; softmax AUROC differences -2 -1 0 -3 -2 drop the zero: 4 pairs,
     * all negative: p = 2/16 = 0.125. */
    const char *order[] = {"softmax", "laplace"};
    FmTableSpec spec2 = {cols, 1, "laplace", order, 2, 0.95, 1};
    ck_assert_int_eq(fm_results_table_markdown(&r, &spec2, &md, &err), FM_OK);
    ck_assert_msg(strstr(md, "| softmax | 5 | 84.8 +- 0.8 [83.8, 85.8] | -1.6 [-3.0, -0.2], p = 0.12 |\n"
                             "| laplace |"),
                  "%s", md);
    ck_assert_ptr_null(strstr(md, "gaussian"));
    fm_free(md);
    FmTableSpec spec3 = {cols, 2, NULL, NULL, 0, 0, 0};
    ck_assert_int_eq(fm_results_table_markdown(&r, &spec3, &md, &err), FM_OK);
    ck_assert_ptr_null(strstr(md, " vs "));
    ck_assert_msg(strstr(md, "| Configuration | Runs | AUROC (%) | AUPRC (%) |\n|---|---:|---|---|\n"), "%s",
                  md);
    fm_free(md);

    /* Unknown names are refused. */
    FmTableColumn bad_col = {"brier", NULL, 1, 3};
    FmTableSpec bad = {&bad_col, 1, NULL, NULL, 0, 0, 0};
    ck_assert_int_eq(fm_results_table_markdown(&r, &bad, &md, &err), FM_ERR_ARG);
    ck_assert_str_eq(err.message, "results have no metric column \"brier\"");
    spec.baseline = "gate_softmax";
    ck_assert_int_eq(fm_results_table_markdown(&r, &spec, &md, &err), FM_ERR_ARG);
    ck_assert_str_eq(err.message, "results have no configuration \"gate_softmax\"");
    ck_assert_ptr_null(md);
    /* A run twice is refused. */
    const char *names[] = {"auroc"};
    double v = 0.5;
    ck_assert_int_eq(fm_results_add(&r, "laplace", 0, 3, names, &v, 1, &err), FM_ERR_ARG);
    ck_assert_str_eq(err.message, "run (config \"laplace\", split 0, seed 3) is already present");
    fm_results_free(&r);
}
END_TEST

START_TEST(test_results_csv_round_trip) {
    char dir[1024], path[1200];
    fm_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/results.csv", dir);
    FmResults r, back;
    synthetic_results(&r);
    const char *names[] = {"auroc", "brier"};
    double v[2] = {1.0 / 3.0, 0.125};
    ck_assert_int_eq(fm_results_add(&r, "softmax, 8 experts \"wide\"", 2, 11, names, v, 2, NULL), FM_OK);
    FmError err;
    ck_assert_int_eq(fm_results_write_csv(&r, path, &err), FM_OK);
    fm_results_init(&back);
    ck_assert_int_eq(fm_results_read_csv(&back, path, &err), FM_OK);
    ck_assert_int_eq(back.n_metrics, 3);
    ck_assert_uint_eq(back.n_rows, r.n_rows);
    for (size_t i = 0; i < r.n_rows; i++) {
        ck_assert_str_eq(back.rows[i].config, r.rows[i].config);
        ck_assert_int_eq(back.rows[i].split, r.rows[i].split);
        ck_assert_int_eq(back.rows[i].seed, r.rows[i].seed);
        for (int m = 0; m < 3; m++) {
            double a = r.rows[i].values[m], b = back.rows[i].values[m];
            ck_assert_msg((isnan(a) && isnan(b)) || a == b, "row %zu metric %d: %.17g vs %.17g", i, m, a, b);
        }
    }
    size_t len;
    FILE *f = fopen(path, "rb");
    char text[4096];
    len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[len] = '\0';
    ck_assert_msg(strncmp(text, "config,split,seed,auroc,auprc,brier\nlaplace,0,1,0.86,0.5,\n", 58) == 0,
                  "%s", text);
    ck_assert_ptr_nonnull(
        strstr(text, "\n\"softmax, 8 experts \"\"wide\"\"\",2,11,0.3333333333333333,,0.125\n"));
    ck_assert_ptr_nonnull(strstr(text, "\ngaussian,0,2,0.88,,\n"));
    /* Reading the same file again into the merged set finds every run twice. */
    ck_assert_int_eq(fm_results_read_csv(&back, path, &err), FM_ERR_FORMAT);
    char where[1300];
    snprintf(where, sizeof where, "%s:2", path);
    ck_assert_str_eq(err.where, where);
    ck_assert_uint_eq(back.n_rows, r.n_rows); /* unchanged */
    fm_results_free(&back);
    fm_results_free(&r);

    /* Append: new file, more runs, a rerun replacing its row, a new metric column. */
    snprintf(path, sizeof path, "%s/appended.csv", dir);
    const char *m1[] = {"auroc"}, *m2[] = {"auroc", "auprc"};
    double a1 = 0.8, a2 = 0.81, a3[2] = {0.82, 0.4};
    ck_assert_int_eq(fm_results_append_csv(path, "laplace", 0, 1, m1, &a1, 1, &err), FM_OK);
    ck_assert_int_eq(fm_results_append_csv(path, "laplace", 0, 2, m1, &a2, 1, &err), FM_OK);
    ck_assert_int_eq(fm_results_append_csv(path, "laplace", 0, 1, m2, a3, 2, &err), FM_OK);
    fm_results_init(&back);
    ck_assert_int_eq(fm_results_read_csv(&back, path, &err), FM_OK);
    ck_assert_uint_eq(back.n_rows, 2);
    ck_assert_int_eq(back.n_metrics, 2);
    ck_assert(back.rows[0].seed == 2 && back.rows[0].values[0] == 0.81 && isnan(back.rows[0].values[1]));
    ck_assert(back.rows[1].seed == 1 && back.rows[1].values[0] == 0.82 && back.rows[1].values[1] == 0.4);
    fm_results_free(&back);
    fm_test_rmtree(dir);
}
END_TEST

/* An ablation's results.csv (axis columns between config and split) merges with a plain one:
 * the axis columns are skipped, the metrics matched by name. */
START_TEST(test_results_csv_descriptive_columns) {
    char dir[1024], a[1200], b[1200];
    fm_test_tmpdir(dir, sizeof dir);
    snprintf(a, sizeof a, "%s/ablation.csv", dir);
    snprintf(b, sizeof b, "%s/baselines.csv", dir);
    FILE *f = fopen(a, "w");
    fputs("config,model.gate,data.modalities,split,seed,mortality.auroc,train_seconds\n"
          "laplace/all,laplace,vitals+labs,0,1,0.86,12.5\nsoftmax/all,softmax,vitals+labs,0,1,0.85,11\n", f);
    fclose(f);
    f = fopen(b, "w");
    fputs("config,split,seed,mortality.auroc\nlogreg,0,1,0.84\n", f);
    fclose(f);
    FmResults r;
    fm_results_init(&r);
    FmError err;
    ck_assert_int_eq(fm_results_read_csv(&r, a, &err), FM_OK);
    ck_assert_int_eq(fm_results_read_csv(&r, b, &err), FM_OK);
    ck_assert_uint_eq(r.n_rows, 3);
    ck_assert_int_eq(r.n_metrics, 2);
    int auroc = fm_results_metric_index(&r, "mortality.auroc");
    ck_assert_str_eq(r.rows[1].config, "softmax/all");
    ck_assert_double_eq(r.rows[1].values[auroc], 0.85);
    ck_assert_str_eq(r.rows[2].config, "logreg");
    ck_assert_double_eq(r.rows[2].values[auroc], 0.84);
    ck_assert(isnan(r.rows[2].values[fm_results_metric_index(&r, "train_seconds")]));
    fm_results_free(&r);
    fm_test_rmtree(dir);
}
END_TEST

/* Malformed results.csv files: status, file:line and message. */
START_TEST(test_results_csv_errors) {
    static const struct {
        const char *text;
        int line; /* 0: no line in `where` */
        FmStatus code;
        const char *message;
    } cases[] = {
        {"config,split,seed,auroc\nlaplace,0,1,0.8\n\nlaplace,0,2,high\n", 4, FM_ERR_FORMAT,
         "column auroc: expected a number, got \"high\""},
        {"config,split,seed,auroc\nlaplace,0,1\n", 2, FM_ERR_FORMAT, "3 fields, expected 4"},
        {"config,split,seed,auroc\nlaplace,zero,1,0.8\n", 2, FM_ERR_FORMAT,
         "column split: expected an integer, got \"zero\""},
        {"config,seed,split,auroc\n", 1, FM_ERR_FORMAT,
         "header: expected a split column followed by seed, got \"auroc\" after \"split\""},
        {"seed,config,split,auroc\n", 1, FM_ERR_FORMAT,
         "header: expected the columns config, split, seed first, got \"seed\""},
        {"config,split,seed,auroc,auroc\n", 1, FM_ERR_FORMAT, "header: column \"auroc\" appears twice"},
        {"config,split,seed,auroc\nlaplace,0,1,0.8\nlaplace,0,1,0.7\n", 3, FM_ERR_FORMAT,
         "run (config \"laplace\", split 0, seed 1) is already present"},
        {"config,split,seed,auroc\nlap\"lace,0,1,0.8\n", 2, FM_ERR_FORMAT,
         "malformed CSV (a quote in an unquoted field, or text after a closing quote)"},
        {"config,split,seed,auroc\n\"laplace,0,1,0.8\n", 2, FM_ERR_FORMAT, "unterminated quoted field"},
        {"", 0, FM_ERR_FORMAT, "empty file: expected a header config,split,seed,..."},
    };
    char dir[1024], path[1200];
    fm_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/results.csv", dir);
    for (size_t k = 0; k < sizeof cases / sizeof *cases; k++) {
        FILE *f = fopen(path, "w");
        fputs(cases[k].text, f);
        fclose(f);
        FmResults r;
        fm_results_init(&r);
        FmError err;
        FmStatus st = fm_results_read_csv(&r, path, &err);
        ck_assert_msg(st == cases[k].code, "case %zu: status %d", k, st);
        char where[1300];
        if (cases[k].line)
            snprintf(where, sizeof where, "%s:%d", path, cases[k].line);
        else
            snprintf(where, sizeof where, "%s", path);
        ck_assert_msg(strcmp(err.where, where) == 0, "case %zu: where %s", k, err.where);
        ck_assert_msg(strcmp(err.message, cases[k].message) == 0, "case %zu: message %s", k, err.message);
        ck_assert_uint_eq(r.n_rows, 0);
        fm_results_free(&r);
    }
    FmResults r;
    fm_results_init(&r);
    FmError err;
    snprintf(path, sizeof path, "%s/none.csv", dir);
    ck_assert_int_eq(fm_results_read_csv(&r, path, &err), FM_ERR_IO);
    ck_assert_str_eq(err.where, path);
    fm_test_rmtree(dir);
}
END_TEST

START_TEST(test_results_alloc_failure) {
    char dir[1024], path[1200];
    fm_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/results.csv", dir);
    FmResults base;
    synthetic_results(&base);
    ck_assert_int_eq(fm_results_write_csv(&base, path, NULL), FM_OK);
    FmTableColumn cols[] = {{"auroc", "AUROC (%)", 100, 1}, {"auprc", NULL, 100, 1}};
    FmTableSpec spec = {cols, 2, "laplace", NULL, 0, 0.95, 1};
    const char *names[] = {"auroc", "new_metric"};
    double v[2] = {0.5, 0.25};
    for (int which = 0; which < 3; which++) {
        for (long k = 1;; k++) {
            FmResults r;
            synthetic_results(&r);
            char *md = NULL;
            FmError err;
            fm_alloc_fail_after(k);
            FmStatus st = FM_OK;
            switch (which) {
            case 0: st = fm_results_add(&r, "new", 1, 1, names, v, 2, &err); break;
            case 1: st = fm_results_read_csv(&r, path, &err); break; /* duplicates: FORMAT once it gets far */
            case 2: st = fm_results_table_markdown(&r, &spec, &md, &err); break;
            }
            long calls = fm_alloc_calls();
            fm_alloc_fail_reset();
            size_t rows = r.n_rows;
            int metrics = r.n_metrics;
            fm_results_free(&r);
            if (st != FM_ERR_NOMEM) {
                ck_assert_int_gt(k, calls);
                ck_assert(st == (which == 1 ? FM_ERR_FORMAT : FM_OK));
                fm_free(md);
                break;
            }
            ck_assert_ptr_null(md);
            ck_assert_uint_eq(rows, 13); /* unchanged */
            ck_assert_int_eq(metrics, 2);
        }
    }
    fm_results_free(&base);
    fm_test_rmtree(dir);
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
    tcase_add_test(tc, test_bootstrap_mean_of_sets);
    tcase_add_test(tc, test_bootstrap_coverage);
    tcase_add_test(tc, test_bootstrap_alloc_failure);
    tcase_add_test(tc, test_results_table_known_values);
    tcase_add_test(tc, test_results_csv_round_trip);
    tcase_add_test(tc, test_results_csv_errors);
    tcase_add_test(tc, test_results_csv_descriptive_columns);
    tcase_add_test(tc, test_results_alloc_failure);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) {
    fm_blas_select_kernel(argv);
    return fm_test_run_suite(stats_suite());
}
