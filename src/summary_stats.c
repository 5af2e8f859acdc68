#include "src/summary_stats.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "src/alloc.h"

/* The continued fraction of DLMF 8.17.22,
 *   I_x(a, b) = x^a (1-x)^b / (a B(a, b)) * 1 / (1 + d_1 / (1 + d_2 / (1 + ...))),
 *   d_{2m+1} = -(a + m)(a + b + m) x / ((a + 2m)(a + 2m + 1)),
 *   d_{2m}   = m (b - m) x / ((a + 2m - 1)(a + 2m)).
 * Returns the denominator 1 + d_1 / (1 + d_2 / ...) by the modified Lentz algorithm: the
 * value is the running product of ratios C_j D_j of successive convergents, with a tiny value
 * substituted for any zero denominator. Converges fast for x < (a + 1)/(a + b + 2). */
static double beta_fraction(double a, double b, double x) {
    const double tiny = 1e-300, eps = 1e-16;
    double f = 1.0, C = 1.0, D = 0.0;
    for (int k = 1; k <= 10000; k++) {
        double m = (double)(k / 2), dk;
        if (k % 2)
            dk = -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1));
        else
            dk = m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m));
        D = 1.0 + dk * D;
        if (fabs(D) < tiny) D = tiny;
        C = 1.0 + dk / C;
        if (fabs(C) < tiny) C = tiny;
        D = 1.0 / D;
        double delta = C * D;
        f *= delta;
        if (fabs(delta - 1.0) < eps) break;
    }
    return f;
}

/* I_x(a, b) given both x and y = 1 - x, so that callers who know 1 - x more accurately than
 * the subtraction would give (as the t distribution does) can pass it. */
static double betainc_xy(double a, double b, double x, double y) {
    if (!(a > 0) || !(b > 0) || !(x >= 0) || !(y >= 0) || x > 1 || y > 1) return NAN;
    if (x == 0) return 0.0;
    if (y == 0) return 1.0;
    /* x^a y^b / (a B(a, b)) in logs. */
    double log_front = a * log(x) + b * log(y) - (lgamma(a) + lgamma(b) - lgamma(a + b));
    if (x < (a + 1) / (a + b + 2)) return exp(log_front) / (a * beta_fraction(a, b, x));
    return 1.0 - exp(log_front) / (b * beta_fraction(b, a, y));
}

double fm_stats_betainc(double a, double b, double x) {
    return betainc_xy(a, b, x, 1.0 - x);
}

/* P(|T| >= |t|) = I_{df/(df+t^2)}(df/2, 1/2); 1 - x = t^2/(df + t^2) is passed exactly. */
double fm_stats_t_pvalue(double t, double df) {
    if (isnan(t) || isnan(df) || !(df > 0)) return NAN;
    if (isinf(t)) return 0.0;
    if (isinf(df)) return erfc(fabs(t) / sqrt(2.0));
    double t2 = t * t;
    return betainc_xy(0.5 * df, 0.5, df / (df + t2), t2 / (df + t2));
}

double fm_stats_t_cdf(double t, double df) {
    double tail = 0.5 * fm_stats_t_pvalue(t, df); /* P(T >= |t|) */
    if (isnan(tail)) return NAN;
    return t >= 0 ? 1.0 - tail : tail;
}

double fm_stats_t_quantile(double p, double df) {
    if (isnan(p) || isnan(df) || !(df > 0) || p < 0 || p > 1) return NAN;
    if (p == 0) return -INFINITY;
    if (p == 1) return INFINITY;
    if (p == 0.5) return 0.0;
    if (p < 0.5) return -fm_stats_t_quantile(1.0 - p, df);
    /* Solve P(T >= t) = 1 - p for t > 0: bracket by doubling, then bisect until the bracket
     * stops shrinking in double precision. */
    double q = 1.0 - p, lo = 0.0, hi = 1.0;
    while (0.5 * fm_stats_t_pvalue(hi, df) > q && hi < 1e300) {
        lo = hi;
        hi *= 2.0;
    }
    for (int it = 0; it < 2000; it++) {
        double mid = 0.5 * (lo + hi);
        if (mid <= lo || mid >= hi) break;
        if (0.5 * fm_stats_t_pvalue(mid, df) > q)
            lo = mid;
        else
            hi = mid;
    }
    return 0.5 * (lo + hi);
}

double fm_stats_quantile(const double *x, size_t n, double p) {
    if (n == 0 || isnan(p)) return NAN;
    if (p <= 0) return x[0];
    if (p >= 1) return x[n - 1];
    double h = (double)(n - 1) * p;
    size_t lo = (size_t)floor(h);
    if (lo + 1 >= n) return x[n - 1];
    return x[lo] + (h - (double)lo) * (x[lo + 1] - x[lo]);
}

/* Mean and sample std of the finite values (two passes for accuracy). */
static void mean_std(const double *x, size_t n, size_t *m, double *mean, double *std) {
    double sum = 0.0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i])) {
            sum += x[i];
            k++;
        }
    *m = k;
    *mean = k ? sum / (double)k : NAN;
    *std = NAN;
    if (k < 2) return;
    double ss = 0.0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i])) ss += (x[i] - *mean) * (x[i] - *mean);
    *std = sqrt(ss / (double)(k - 1));
}

FmSummary fm_stats_summary(const double *x, size_t n, double level) {
    FmSummary s;
    mean_std(x, n, &s.n, &s.mean, &s.std);
    s.ci_lo = s.ci_hi = NAN;
    if (s.n >= 2) {
        double half = fm_stats_t_quantile(0.5 * (1.0 + level), (double)(s.n - 1)) * s.std / sqrt((double)s.n);
        s.ci_lo = s.mean - half;
        s.ci_hi = s.mean + half;
    }
    return s;
}

FmPairedT fm_stats_paired_t(const double *a, const double *b, size_t n, double level) {
    FmPairedT r;
    r.n = 0;
    r.mean_diff = r.sd_diff = r.ci_lo = r.ci_hi = r.t = r.p = NAN;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(a[i]) && isfinite(b[i])) {
            sum += a[i] - b[i];
            r.n++;
        }
    if (r.n == 0) return r;
    r.mean_diff = sum / (double)r.n;
    if (r.n < 2) return r;
    double ss = 0.0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(a[i]) && isfinite(b[i])) {
            double d = a[i] - b[i] - r.mean_diff;
            ss += d * d;
        }
    r.sd_diff = sqrt(ss / (double)(r.n - 1));
    double se = r.sd_diff / sqrt((double)r.n), df = (double)(r.n - 1);
    double half = fm_stats_t_quantile(0.5 * (1.0 + level), df) * se;
    r.ci_lo = r.mean_diff - half;
    r.ci_hi = r.mean_diff + half;
    if (se == 0.0) {
        r.ci_lo = r.ci_hi = r.mean_diff;
        r.t = r.mean_diff == 0.0 ? 0.0 : copysign(INFINITY, r.mean_diff);
        r.p = r.mean_diff == 0.0 ? 1.0 : 0.0;
        return r;
    }
    r.t = r.mean_diff / se;
    r.p = fm_stats_t_pvalue(r.t, df);
    return r;
}

typedef struct {
    double abs_d;
    int positive;
} SignedDiff;

static int cmp_abs(const void *a, const void *b) {
    double x = ((const SignedDiff *)a)->abs_d, y = ((const SignedDiff *)b)->abs_d;
    return (x > y) - (x < y);
}

FmStatus fm_stats_wilcoxon(const double *a, const double *b, size_t n, FmWilcoxon *out, FmError *err) {
    memset(out, 0, sizeof *out);
    out->w_plus = out->p = NAN;
    SignedDiff *d = fm_malloc_array(n, sizeof *d);
    if (!d) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "Wilcoxon test: out of memory");
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) continue;
        out->n++;
        double diff = a[i] - b[i];
        if (diff == 0.0) continue;
        d[m].abs_d = fabs(diff);
        d[m].positive = diff > 0;
        m++;
    }
    out->n_nonzero = m;
    if (out->n == 0) {
        fm_free(d);
        return FM_OK;
    }
    qsort(d, m, sizeof *d, cmp_abs);
    /* Ranks doubled so that average ranks of ties (k.5) stay integers: tied positions
     * i..j-1 (0-based) share the rank (i + 1 + j) / 2, doubled i + 1 + j. */
    uint64_t *rank2 = fm_malloc_array(m ? m : 1, sizeof *rank2);
    if (!rank2) {
        fm_free(d);
        return FM_FAIL(err, FM_ERR_NOMEM, NULL, "Wilcoxon test: out of memory");
    }
    uint64_t w2 = 0, total2 = 0;
    double tie_term = 0.0;
    for (size_t i = 0; i < m;) {
        size_t j = i;
        while (j < m && d[j].abs_d == d[i].abs_d)
            j++;
        double t = (double)(j - i);
        tie_term += t * t * t - t;
        for (size_t k = i; k < j; k++) {
            rank2[k] = (uint64_t)(i + 1 + j);
            total2 += rank2[k];
            if (d[k].positive) w2 += rank2[k];
        }
        i = j;
    }
    out->w_plus = 0.5 * (double)w2;
    if (m == 0) {
        out->p = 1.0;
        out->exact = 1;
    } else if (m <= FM_STATS_WILCOXON_EXACT_MAX) {
        /* count[s] = number of sign assignments whose doubled positive-rank sum is s. */
        uint64_t *count = fm_calloc((size_t)total2 + 1, sizeof *count);
        if (!count) {
            fm_free(rank2);
            fm_free(d);
            return FM_FAIL(err, FM_ERR_NOMEM, NULL, "Wilcoxon test: out of memory");
        }
        count[0] = 1;
        uint64_t reach = 0;
        for (size_t k = 0; k < m; k++) {
            for (uint64_t s = reach + 1; s-- > 0;)
                if (count[s]) count[s + rank2[k]] += count[s];
            reach += rank2[k];
        }
        uint64_t le = 0, ge = 0;
        for (uint64_t s = 0; s <= total2; s++) {
            if (s <= w2) le += count[s];
            if (s >= w2) ge += count[s];
        }
        double all = ldexp(1.0, (int)m);
        double p = 2.0 * fmin((double)le, (double)ge) / all;
        out->p = fmin(1.0, p);
        out->exact = 1;
        fm_free(count);
    } else {
        double mm = (double)m;
        double mean = mm * (mm + 1) / 4.0;
        double var = mm * (mm + 1) * (2 * mm + 1) / 24.0 - tie_term / 48.0;
        double z = var > 0 ? (out->w_plus - mean) / sqrt(var) : 0.0;
        out->p = fmin(1.0, erfc(fabs(z) / sqrt(2.0)));
        out->exact = 0;
    }
    fm_free(rank2);
    fm_free(d);
    return FM_OK;
}
