/* Statistics across runs (seeds, splits): mean, sample standard deviation and Student-t
 * confidence intervals, paired comparisons of two configurations (paired t-test and Wilcoxon
 * signed-rank test), and the distribution functions they rest on. Prefix fm_stats_.
 *
 * NaN means "not measured" (a run whose metric is undefined): summaries use the finite values
 * only and report how many that was; paired functions drop a pair when either value is NaN.
 *
 * Sources of the formulas:
 * - Student t: for T with df degrees of freedom and t >= 0,
 *     P(|T| >= t) = I_x(df/2, 1/2),  x = df / (df + t^2)
 *   (Abramowitz and Stegun 26.7.1 with 26.5.27; DLMF 8.17.E1 / 8.17.E2), where I_x(a, b) is the
 *   regularised incomplete beta function.
 * - I_x(a, b) by its continued fraction (DLMF 8.17.22), evaluated with the modified Lentz
 *   algorithm (Thompson and Barnett 1986), using I_x(a, b) = 1 - I_{1-x}(b, a) when
 *   x > (a + 1)/(a + b + 2), where the fraction converges slowly (the arrangement described
 *   in Press et al., Numerical Recipes, 3rd ed., section 6.4).
 * - Quantiles invert the CDF by bisection to double precision.
 * - Wilcoxon signed-rank (Wilcoxon 1945; Hollander, Wolfe and Chicken, Nonparametric
 *   Statistical Methods, 3rd ed., section 3.1): exact null distribution of W+ by counting the
 *   2^n equally likely sign assignments with dynamic programming over rank sums. */
#ifndef FM_SUMMARY_STATS_H
#define FM_SUMMARY_STATS_H

#include <stddef.h>

#include "src/error.h"

/* Largest number of non-zero differences for which fm_stats_wilcoxon computes the exact
 * p-value (counts up to 2^50 stay exact in 64-bit integers); above it, the normal
 * approximation. */
#define FM_STATS_WILCOXON_EXACT_MAX 50

/* Regularised incomplete beta function I_x(a, b) for a, b > 0 and x in [0, 1]; NaN outside.
 * Relative accuracy about 1e-13 for a, b up to 500 (compared with mpmath at 30 digits); the
 * log-beta term loses about a * 1e-16 beyond that (1.5e-11 at a = 10^4). */
double fm_stats_betainc(double a, double b, double x);

/* Student t CDF P(T <= t) with df > 0 degrees of freedom (df may be +inf: the standard
 * normal). NaN when df <= 0 or an argument is NaN. */
double fm_stats_t_cdf(double t, double df);

/* Two-sided p-value P(|T| >= |t|), computed directly (no 1 - CDF cancellation), so tiny
 * p-values keep their relative accuracy. */
double fm_stats_t_pvalue(double t, double df);

/* The p-quantile of Student t: the t with P(T <= t) = p, for p in (0, 1) (+-inf at 1 and 0,
 * NaN outside [0, 1] or for df <= 0). E.g. fm_stats_t_quantile(0.975, 4) = 2.776445. */
double fm_stats_t_quantile(double p, double df);

/* The p-quantile of sorted values x[0..n) by linear interpolation between order statistics
 * (Hyndman and Fan type 7, numpy's default): h = (n - 1) p, x[floor h] + frac(h) (x[floor h +
 * 1] - x[floor h]). NaN when n = 0. x must be sorted ascending and free of NaN. */
double fm_stats_quantile(const double *x, size_t n, double p);

/* Summary of one metric across runs. */
typedef struct {
    size_t n; /* finite values used */
    double mean;
    double std;          /* sample standard deviation (divisor n - 1); NaN when n < 2 */
    double ci_lo, ci_hi; /* mean -+ t_{(1+level)/2, n-1} std / sqrt(n); NaN when n < 2 */
} FmSummary;

/* Mean, sample std and the t confidence interval at `level` (0.95 for 95%) of the finite
 * values among x[0..n). NaN fields as documented above; n = 0 gives all NaN. */
FmSummary fm_stats_summary(const double *x, size_t n, double level);

/* Paired comparison of configuration A against B over matched runs (same split and seed):
 * d_i = a_i - b_i. */
typedef struct {
    size_t n;            /* pairs with both values finite */
    double mean_diff;    /* mean of d; NaN when n = 0 */
    double sd_diff;      /* sample std of d; NaN when n < 2 */
    double ci_lo, ci_hi; /* mean_diff -+ t_{(1+level)/2, n-1} sd_diff / sqrt(n) */
    double t;            /* mean_diff / (sd_diff / sqrt(n)) */
    double p;            /* two-sided paired t-test p-value, df = n - 1 */
} FmPairedT;

/* The paired t-test of a against b (n pairs; NaN pairs dropped). With n < 2 everything but
 * n and mean_diff is NaN. When every difference is equal (sd_diff = 0) the interval collapses
 * to the mean and p is 1 if the mean is 0, else 0 (the limit of the test). */
FmPairedT fm_stats_paired_t(const double *a, const double *b, size_t n, double level);

/* Wilcoxon signed-rank test of a against b. */
typedef struct {
    size_t n;         /* pairs with both values finite */
    size_t n_nonzero; /* of which with a non-zero difference (zeros are dropped: Wilcoxon's
                         original convention, scipy's zero_method="wilcox") */
    double w_plus;    /* sum of the ranks of |d| over positive d; tied |d| share their
                         average rank */
    double p;         /* two-sided p-value: min(1, 2 min(P(W+ <= w), P(W+ >= w))) */
    int exact;        /* 1: exact null distribution; 0: normal approximation */
} FmWilcoxon;

/* Computes the test over the pairs with both values finite. For n_nonzero <=
 * FM_STATS_WILCOXON_EXACT_MAX the p-value is exact: W+ is compared with its distribution over
 * all 2^n_nonzero sign assignments of the observed ranks (with ties this is the exact
 * conditional distribution given the tie pattern, where scipy falls back to the normal
 * approximation). Above that, the normal approximation with mean m(m+1)/4 and variance
 * m(m+1)(2m+1)/24 - sum over tie groups (t^3 - t)/48, without continuity correction.
 * n_nonzero = 0 gives p = 1; n = 0 gives p = NaN. FM_ERR_NOMEM on allocation failure. */
FmStatus fm_stats_wilcoxon(const double *a, const double *b, size_t n, FmWilcoxon *out, FmError *err);

#endif
