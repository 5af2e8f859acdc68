#include "src/metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "src/alloc.h"

/* One (score, label) pair; the ranking metrics sort these by decreasing score and then walk
 * the groups of tied scores. */
typedef struct {
    float s;
    float y;
} Pair;

/* Counts of a sorted pair array. */
typedef struct {
    size_t n_pos, n_neg;
    int has_nan; /* some score is NaN: ranking metrics are undefined */
} PairStats;

static FmStatus bad_label(FmError *err, size_t i, size_t stride, size_t col, float v) {
    if (stride == 1) return FM_FAIL(err, FM_ERR_ARG, NULL, "label[%zu] = %g: expected 0 or 1", i, (double)v);
    return FM_FAIL(err, FM_ERR_ARG, NULL, "label[%zu, %zu] = %g: expected 0 or 1", i, col, (double)v);
}

/* Checks the labels of the known entries of column `col` of (n, stride) matrices (stride 1:
 * plain vectors) and counts classes and NaN scores. */
static FmStatus check_column(const float *score, const float *label, const uint8_t *mask, size_t n,
                             size_t stride, size_t col, PairStats *st, FmError *err) {
    memset(st, 0, sizeof *st);
    for (size_t i = 0; i < n; i++) {
        size_t k = i * stride + col;
        if (mask && !mask[k]) continue;
        float y = label[k];
        if (y == 1.0f)
            st->n_pos++;
        else if (y == 0.0f)
            st->n_neg++;
        else
            return bad_label(err, i, stride, col, y);
        if (isnan(score[k])) st->has_nan = 1;
    }
    return FM_OK;
}

static int cmp_pair_desc(const void *a, const void *b) {
    float x = ((const Pair *)a)->s, y = ((const Pair *)b)->s;
    return (x < y) - (x > y);
}

/* Copies the known entries of column `col` into buf (capacity >= n) and sorts them by
 * decreasing score; returns the number copied. Scores must not be NaN. */
static size_t gather_sorted(const float *score, const float *label, const uint8_t *mask, size_t n,
                            size_t stride, size_t col, Pair *buf) {
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = i * stride + col;
        if (mask && !mask[k]) continue;
        buf[m].s = score[k];
        buf[m].y = label[k];
        m++;
    }
    qsort(buf, m, sizeof *buf, cmp_pair_desc);
    return m;
}

/* End (exclusive) of the group of scores tied with p[i]; adds its positives and negatives. */
static size_t tie_group(const Pair *p, size_t m, size_t i, size_t *pos, size_t *neg) {
    size_t j = i;
    *pos = *neg = 0;
    while (j < m && p[j].s == p[i].s) {
        if (p[j].y == 1.0f)
            (*pos)++;
        else
            (*neg)++;
        j++;
    }
    return j;
}

/* Mann-Whitney over sorted pairs: walking from the highest score down, each negative in a
 * group is beaten by every positive already seen and ties with the group's positives. */
static double auroc_sorted(const Pair *p, size_t m, size_t n_pos, size_t n_neg) {
    if (n_pos == 0 || n_neg == 0) return NAN;
    double wins = 0.0, tp = 0.0;
    for (size_t i = 0; i < m;) {
        size_t gp, gn;
        i = tie_group(p, m, i, &gp, &gn);
        wins += (double)gn * (tp + 0.5 * (double)gp);
        tp += (double)gp;
    }
    return wins / ((double)n_pos * (double)n_neg);
}

/* AP = sum_k (R_k - R_{k-1}) P_k over the distinct scores from the highest down. */
static double auprc_sorted(const Pair *p, size_t m, size_t n_pos) {
    if (n_pos == 0) return NAN;
    double ap = 0.0, tp = 0.0, fp = 0.0, prev_recall = 0.0;
    for (size_t i = 0; i < m;) {
        size_t gp, gn;
        i = tie_group(p, m, i, &gp, &gn);
        tp += (double)gp;
        fp += (double)gn;
        double recall = tp / (double)n_pos;
        ap += (recall - prev_recall) * (tp / (tp + fp));
        prev_recall = recall;
    }
    return ap;
}

/* Shared front end of the ranking metrics over a plain vector: validates, returns NaN cases
 * through *undefined, otherwise an allocated sorted copy in *pairs. */
static FmStatus sorted_pairs(const float *score, const float *label, size_t n, Pair **pairs, PairStats *st,
                             FmError *err) {
    *pairs = NULL;
    FmStatus rc = check_column(score, label, NULL, n, 1, 0, st, err);
    if (rc != FM_OK || st->has_nan || n == 0) return rc;
    *pairs = fm_malloc_array(n, sizeof **pairs);
    if (!*pairs) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "metrics: out of memory sorting %zu scores", n);
    gather_sorted(score, label, NULL, n, 1, 0, *pairs);
    return FM_OK;
}

FmStatus fm_metrics_auroc(const float *score, const float *label, size_t n, double *out, FmError *err) {
    *out = NAN;
    Pair *p;
    PairStats st;
    FmStatus rc = sorted_pairs(score, label, n, &p, &st, err);
    if (rc != FM_OK || !p) return rc;
    *out = auroc_sorted(p, n, st.n_pos, st.n_neg);
    fm_free(p);
    return FM_OK;
}

FmStatus fm_metrics_auprc(const float *score, const float *label, size_t n, double *out, FmError *err) {
    *out = NAN;
    Pair *p;
    PairStats st;
    FmStatus rc = sorted_pairs(score, label, n, &p, &st, err);
    if (rc != FM_OK || !p) return rc;
    *out = auprc_sorted(p, n, st.n_pos);
    fm_free(p);
    return FM_OK;
}

/* F1 over the known entries of one column, cut score >= threshold. */
static FmStatus f1_column(const float *score, const float *label, const uint8_t *mask, size_t n,
                          size_t stride, size_t col, double threshold, double *out, FmError *err) {
    *out = NAN;
    PairStats st;
    FmStatus rc = check_column(score, label, mask, n, stride, col, &st, err);
    if (rc != FM_OK || st.has_nan || isnan(threshold)) return rc;
    size_t tp = 0, fp = 0, fn = 0;
    for (size_t i = 0; i < n; i++) {
        size_t k = i * stride + col;
        if (mask && !mask[k]) continue;
        int pred = (double)score[k] >= threshold;
        int pos = label[k] == 1.0f;
        tp += pred && pos;
        fp += pred && !pos;
        fn += !pred && pos;
    }
    if (tp + fp + fn == 0) return FM_OK;
    *out = 2.0 * (double)tp / (double)(2 * tp + fp + fn);
    return FM_OK;
}

FmStatus fm_metrics_f1(const float *score, const float *label, size_t n, double threshold, double *out,
                       FmError *err) {
    return f1_column(score, label, NULL, n, 1, 0, threshold, out, err);
}

FmStatus fm_metrics_best_f1_threshold(const float *score, const float *label, size_t n, FmThreshold *out,
                                      FmError *err) {
    out->threshold = out->f1 = out->precision = out->recall = NAN;
    Pair *p;
    PairStats st;
    FmStatus rc = sorted_pairs(score, label, n, &p, &st, err);
    if (rc != FM_OK || !p) return rc;
    if (st.n_pos == 0) {
        fm_free(p);
        return FM_OK;
    }
    double tp = 0.0, fp = 0.0, best = -1.0;
    for (size_t i = 0; i < n;) {
        size_t gp, gn, start = i;
        i = tie_group(p, n, i, &gp, &gn);
        tp += (double)gp;
        fp += (double)gn;
        /* F1 = 2TP / (2TP + FP + FN) with FN = n_pos - TP. */
        double f1 = 2.0 * tp / (tp + fp + (double)st.n_pos);
        if (f1 > best) {
            best = f1;
            double cut = p[start].s;
            if (i < n) {
                double half = 0.5 * ((double)p[start].s + (double)p[i].s);
                if (isfinite(half)) cut = half;
            }
            out->threshold = cut;
            out->f1 = f1;
            out->precision = tp / (tp + fp);
            out->recall = tp / (double)st.n_pos;
        }
    }
    fm_free(p);
    return FM_OK;
}

/* Checks that every prob is NaN or in [0, 1] (NaN is reported through *has_nan). */
static FmStatus check_probs(const float *prob, size_t n, int *has_nan, FmError *err) {
    *has_nan = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(prob[i]))
            *has_nan = 1;
        else if (prob[i] < 0.0f || prob[i] > 1.0f)
            return FM_FAIL(err, FM_ERR_ARG, NULL, "probability[%zu] = %g: expected a value in [0, 1]", i,
                           (double)prob[i]);
    }
    return FM_OK;
}

FmStatus fm_metrics_brier(const float *prob, const float *label, size_t n, double *out, FmError *err) {
    *out = NAN;
    PairStats st;
    int has_nan;
    FmStatus rc = check_column(prob, label, NULL, n, 1, 0, &st, err);
    if (rc == FM_OK) rc = check_probs(prob, n, &has_nan, err);
    if (rc != FM_OK || has_nan || n == 0) return rc;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)prob[i] - (double)label[i];
        sum += d * d;
    }
    *out = sum / (double)n;
    return FM_OK;
}

/* Bin of a probability in [0, 1] among M right-closed bins (b/M, (b+1)/M], 0 in the first. */
static int calibration_bin(float prob, int M) {
    int b = (int)ceil((double)prob * (double)M) - 1;
    if (b < 0) b = 0;
    if (b > M - 1) b = M - 1;
    return b;
}

/* Accumulates per-bin counts, probability sums and positive counts (arrays of M, zeroed). */
static void calibration_sums(const float *prob, const float *label, size_t n, int M, size_t *count,
                             double *sum_prob, double *sum_pos) {
    for (size_t i = 0; i < n; i++) {
        int b = calibration_bin(prob[i], M);
        count[b]++;
        sum_prob[b] += (double)prob[i];
        sum_pos[b] += (double)label[i];
    }
}

FmStatus fm_metrics_calibration_curve(const float *prob, const float *label, size_t n, int n_bins,
                                      FmCalibration *out, FmError *err) {
    memset(out, 0, sizeof *out);
    if (n_bins < 1) return FM_FAIL(err, FM_ERR_ARG, NULL, "calibration: n_bins = %d: expected >= 1", n_bins);
    PairStats st;
    int has_nan;
    FmStatus rc = check_column(prob, label, NULL, n, 1, 0, &st, err);
    if (rc == FM_OK) rc = check_probs(prob, n, &has_nan, err);
    if (rc != FM_OK) return rc;
    if (has_nan) return FM_FAIL(err, FM_ERR_ARG, NULL, "calibration: a probability is NaN");
    size_t *count = fm_calloc((size_t)n_bins, sizeof *count);
    double *mean_prob = fm_calloc((size_t)n_bins, sizeof *mean_prob);
    double *frac_pos = fm_calloc((size_t)n_bins, sizeof *frac_pos);
    if (!count || !mean_prob || !frac_pos) {
        fm_free(count);
        fm_free(mean_prob);
        fm_free(frac_pos);
        return FM_FAIL(err, FM_ERR_NOMEM, NULL, "calibration: out of memory");
    }
    calibration_sums(prob, label, n, n_bins, count, mean_prob, frac_pos);
    for (int b = 0; b < n_bins; b++) {
        if (count[b] == 0) {
            mean_prob[b] = frac_pos[b] = NAN;
        } else {
            mean_prob[b] /= (double)count[b];
            frac_pos[b] /= (double)count[b];
        }
    }
    out->n_bins = n_bins;
    out->count = count;
    out->mean_prob = mean_prob;
    out->frac_pos = frac_pos;
    return FM_OK;
}

void fm_metrics_calibration_free(FmCalibration *cal) {
    if (!cal) return;
    fm_free(cal->count);
    fm_free(cal->mean_prob);
    fm_free(cal->frac_pos);
    memset(cal, 0, sizeof *cal);
}

FmStatus fm_metrics_ece(const float *prob, const float *label, size_t n, int n_bins, double *out,
                        FmError *err) {
    *out = NAN;
    if (n_bins < 1) return FM_FAIL(err, FM_ERR_ARG, NULL, "ECE: n_bins = %d: expected >= 1", n_bins);
    PairStats st;
    int has_nan;
    FmStatus rc = check_column(prob, label, NULL, n, 1, 0, &st, err);
    if (rc == FM_OK) rc = check_probs(prob, n, &has_nan, err);
    if (rc != FM_OK || has_nan || n == 0) return rc;
    FmCalibration cal;
    rc = fm_metrics_calibration_curve(prob, label, n, n_bins, &cal, err);
    if (rc != FM_OK) return rc;
    double ece = 0.0;
    for (int b = 0; b < n_bins; b++)
        if (cal.count[b]) ece += (double)cal.count[b] * fabs(cal.frac_pos[b] - cal.mean_prob[b]);
    fm_metrics_calibration_free(&cal);
    *out = ece / (double)n;
    return FM_OK;
}

/* ROC (is_roc) or PR points over sorted pairs: one start point plus one per tie group. */
static FmStatus curve_points(const Pair *p, size_t m, size_t n_pos, size_t n_neg, int is_roc, FmCurve *out,
                             FmError *err) {
    size_t groups = 0;
    for (size_t i = 0; i < m; groups++) {
        size_t gp, gn;
        i = tie_group(p, m, i, &gp, &gn);
    }
    size_t k = groups + 1;
    out->x = fm_malloc_array(k, sizeof(double));
    out->y = fm_malloc_array(k, sizeof(double));
    out->threshold = fm_malloc_array(k, sizeof(double));
    if (!out->x || !out->y || !out->threshold) {
        fm_metrics_curve_free(out);
        return FM_FAIL(err, FM_ERR_NOMEM, NULL, "curve: out of memory for %zu points", k);
    }
    out->n = k;
    out->x[0] = 0.0;
    out->y[0] = is_roc ? 0.0 : 1.0;
    out->threshold[0] = INFINITY;
    double tp = 0.0, fp = 0.0;
    size_t j = 1;
    for (size_t i = 0; i < m; j++) {
        size_t gp, gn, start = i;
        i = tie_group(p, m, i, &gp, &gn);
        tp += (double)gp;
        fp += (double)gn;
        out->threshold[j] = p[start].s;
        if (is_roc) {
            out->x[j] = fp / (double)n_neg;
            out->y[j] = tp / (double)n_pos;
        } else {
            out->x[j] = tp / (double)n_pos;
            out->y[j] = tp / (tp + fp);
        }
    }
    return FM_OK;
}

static FmStatus curve(const float *score, const float *label, size_t n, int is_roc, FmCurve *out,
                      FmError *err) {
    memset(out, 0, sizeof *out);
    const char *name = is_roc ? "ROC curve" : "precision-recall curve";
    PairStats st;
    FmStatus rc = check_column(score, label, NULL, n, 1, 0, &st, err);
    if (rc != FM_OK) return rc;
    if (st.has_nan) return FM_FAIL(err, FM_ERR_ARG, NULL, "%s: a score is NaN", name);
    if (st.n_pos == 0) return FM_FAIL(err, FM_ERR_ARG, NULL, "%s: no positive label", name);
    if (is_roc && st.n_neg == 0) return FM_FAIL(err, FM_ERR_ARG, NULL, "%s: no negative label", name);
    Pair *p;
    rc = sorted_pairs(score, label, n, &p, &st, err);
    if (rc != FM_OK) return rc;
    rc = curve_points(p, n, st.n_pos, st.n_neg, is_roc, out, err);
    fm_free(p);
    return rc;
}

FmStatus fm_metrics_roc_curve(const float *score, const float *label, size_t n, FmCurve *out, FmError *err) {
    return curve(score, label, n, 1, out, err);
}

FmStatus fm_metrics_pr_curve(const float *score, const float *label, size_t n, FmCurve *out, FmError *err) {
    return curve(score, label, n, 0, out, err);
}

void fm_metrics_curve_free(FmCurve *c) {
    if (!c) return;
    fm_free(c->x);
    fm_free(c->y);
    fm_free(c->threshold);
    memset(c, 0, sizeof *c);
}

/* ---- regression ---- */

/* 1 when every value of both arrays is finite. */
static int all_finite(const float *a, const float *b, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(a[i]) || !isfinite(b[i])) return 0;
    return 1;
}

double fm_metrics_mae(const float *pred, const float *target, size_t n) {
    if (n == 0 || !all_finite(pred, target, n)) return NAN;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += fabs((double)pred[i] - (double)target[i]);
    return sum / (double)n;
}

double fm_metrics_rmse(const float *pred, const float *target, size_t n) {
    if (n == 0 || !all_finite(pred, target, n)) return NAN;
    double sum = 0.0;
    for (size_t i = 0; i < n; i++) {
        double d = (double)pred[i] - (double)target[i];
        sum += d * d;
    }
    return sqrt(sum / (double)n);
}

double fm_metrics_r2(const float *pred, const float *target, size_t n) {
    if (n == 0 || !all_finite(pred, target, n)) return NAN;
    double mean = 0.0;
    for (size_t i = 0; i < n; i++)
        mean += (double)target[i];
    mean /= (double)n;
    double ss_res = 0.0, ss_tot = 0.0;
    for (size_t i = 0; i < n; i++) {
        double r = (double)target[i] - (double)pred[i], t = (double)target[i] - mean;
        ss_res += r * r;
        ss_tot += t * t;
    }
    if (ss_tot == 0.0) return NAN;
    return 1.0 - ss_res / ss_tot;
}

/* ---- multi-label ---- */

FmStatus fm_metrics_macro_auroc(const float *score, const float *label, const uint8_t *mask, size_t n, int L,
                                double *per_label, int *n_used, double *out, FmError *err) {
    *out = NAN;
    if (n_used) *n_used = 0;
    if (L < 0) return FM_FAIL(err, FM_ERR_ARG, NULL, "macro AUROC: L = %d", L);
    for (int l = 0; per_label && l < L; l++)
        per_label[l] = NAN;
    /* Validate everything first so that a bad label anywhere is reported, whatever else. */
    PairStats *st = fm_calloc((size_t)L, sizeof *st);
    Pair *buf = fm_malloc_array(n, sizeof *buf);
    if (!st || !buf) {
        fm_free(st);
        fm_free(buf);
        return FM_FAIL(err, FM_ERR_NOMEM, NULL, "macro AUROC: out of memory");
    }
    FmStatus rc = FM_OK;
    int has_nan = 0;
    for (int l = 0; l < L && rc == FM_OK; l++) {
        rc = check_column(score, label, mask, n, (size_t)L, (size_t)l, &st[l], err);
        has_nan |= st[l].has_nan && st[l].n_pos && st[l].n_neg;
    }
    double sum = 0.0;
    int used = 0;
    for (int l = 0; l < L && rc == FM_OK; l++) {
        if (!st[l].n_pos || !st[l].n_neg || st[l].has_nan) continue;
        size_t m = gather_sorted(score, label, mask, n, (size_t)L, (size_t)l, buf);
        double a = auroc_sorted(buf, m, st[l].n_pos, st[l].n_neg);
        if (per_label) per_label[l] = a;
        sum += a;
        used++;
    }
    fm_free(st);
    fm_free(buf);
    if (rc != FM_OK) return rc;
    if (n_used) *n_used = used;
    if (used > 0 && !has_nan) *out = sum / used;
    return FM_OK;
}

FmStatus fm_metrics_micro_auroc(const float *score, const float *label, const uint8_t *mask, size_t n, int L,
                                double *out, FmError *err) {
    *out = NAN;
    if (L < 0) return FM_FAIL(err, FM_ERR_ARG, NULL, "micro AUROC: L = %d", L);
    /* Row-major (n, L) matrices are one vector of n * L entries for pooling. */
    size_t total = n * (size_t)L;
    for (size_t k = 0; k < total; k++)
        if ((!mask || mask[k]) && label[k] != 0.0f && label[k] != 1.0f)
            return bad_label(err, k / (size_t)L, (size_t)L, k % (size_t)L, label[k]);
    PairStats st;
    FmStatus rc = check_column(score, label, mask, total, 1, 0, &st, err);
    FM_ASSERT(rc == FM_OK); /* the labels were checked above */
    if (st.has_nan || !st.n_pos || !st.n_neg) return FM_OK;
    Pair *buf = fm_malloc_array(total, sizeof *buf);
    if (!buf) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "micro AUROC: out of memory");
    size_t m = gather_sorted(score, label, mask, total, 1, 0, buf);
    *out = auroc_sorted(buf, m, st.n_pos, st.n_neg);
    fm_free(buf);
    return FM_OK;
}

FmStatus fm_metrics_macro_f1(const float *score, const float *label, const uint8_t *mask, size_t n, int L,
                             const double *threshold, double *per_label, int *n_used, double *out,
                             FmError *err) {
    *out = NAN;
    if (n_used) *n_used = 0;
    if (L < 0) return FM_FAIL(err, FM_ERR_ARG, NULL, "macro F1: L = %d", L);
    for (int l = 0; per_label && l < L; l++)
        per_label[l] = NAN;
    double sum = 0.0;
    int used = 0, has_nan = 0;
    for (int l = 0; l < L; l++) {
        PairStats st;
        FmStatus rc = check_column(score, label, mask, n, (size_t)L, (size_t)l, &st, err);
        if (rc != FM_OK) return rc;
        if (st.n_pos == 0) continue;
        if (st.has_nan) {
            has_nan = 1;
            continue;
        }
        double f1;
        rc = f1_column(score, label, mask, n, (size_t)L, (size_t)l, threshold ? threshold[l] : 0.5, &f1, err);
        if (rc != FM_OK) return rc;
        if (isnan(f1)) {
            has_nan = 1;
            continue;
        }
        if (per_label) per_label[l] = f1;
        sum += f1;
        used++;
    }
    if (n_used) *n_used = used;
    if (used > 0 && !has_nan) *out = sum / used;
    return FM_OK;
}

/* ---- metrics by name ---- */

static const char *const METRIC_NAMES[FM_METRIC_KIND_COUNT] = {"auroc", "auprc", "f1",   "brier",
                                                               "ece",   "mae",   "rmse", "r2"};

const char *fm_metrics_name(FmMetricKind kind) {
    FM_ASSERT((int)kind >= 0 && (int)kind < FM_METRIC_KIND_COUNT);
    return METRIC_NAMES[kind];
}

FmStatus fm_metrics_parse_kind(const char *name, FmMetricKind *out, FmError *err) {
    for (int k = 0; k < FM_METRIC_KIND_COUNT; k++)
        if (strcmp(name, METRIC_NAMES[k]) == 0) {
            *out = (FmMetricKind)k;
            return FM_OK;
        }
    return FM_FAIL(err, FM_ERR_ARG, NULL,
                   "unknown metric \"%s\" (known: auroc, auprc, f1, brier, ece, mae, rmse, r2)", name);
}

int fm_metrics_is_binary(FmMetricKind kind) {
    return kind <= FM_METRIC_ECE;
}

int fm_metrics_higher_is_better(FmMetricKind kind) {
    return kind == FM_METRIC_AUROC || kind == FM_METRIC_AUPRC || kind == FM_METRIC_F1 || kind == FM_METRIC_R2;
}

FmStatus fm_metrics_eval(const void *ctx, const float *pred, const float *target, size_t n, double *out,
                         FmError *err) {
    const FmMetricSpec *spec = ctx;
    switch (spec->kind) {
    case FM_METRIC_AUROC: return fm_metrics_auroc(pred, target, n, out, err);
    case FM_METRIC_AUPRC: return fm_metrics_auprc(pred, target, n, out, err);
    case FM_METRIC_F1: return fm_metrics_f1(pred, target, n, spec->threshold, out, err);
    case FM_METRIC_BRIER: return fm_metrics_brier(pred, target, n, out, err);
    case FM_METRIC_ECE:
        return fm_metrics_ece(pred, target, n, spec->n_bins > 0 ? spec->n_bins : FM_METRICS_CALIBRATION_BINS,
                              out, err);
    case FM_METRIC_MAE: *out = fm_metrics_mae(pred, target, n); return FM_OK;
    case FM_METRIC_RMSE: *out = fm_metrics_rmse(pred, target, n); return FM_OK;
    case FM_METRIC_R2: *out = fm_metrics_r2(pred, target, n); return FM_OK;
    }
    FM_ASSERT(!"unknown metric kind");
    return FM_ERR_ARG;
}
