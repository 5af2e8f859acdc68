/* Evaluation metrics: binary classification, regression and multi-label classification.
 *
 * Conventions shared by every function here:
 * - `score` holds one real number per sample; ranking metrics (AUROC, AUPRC, F1, curves) only
 *   use its order, probability metrics (Brier, ECE, calibration curve) need it in [0, 1].
 * - `label` holds 0 or 1 per sample (exactly 0.0f or 1.0f, as the batch's label array does);
 *   any other value (NaN included) is a caller error: FM_ERR_ARG naming the index. Samples
 *   with an unknown label must be left out by the caller (the multi-label functions take a
 *   mask for that).
 * - Tied scores are always handled as one group: the result never depends on the order of the
 *   samples.
 * - "Undefined" results are NaN with status FM_OK: n = 0, a class that the metric needs is
 *   absent, or a NaN score (NaN means "not measured"; the metric of a set with an unmeasured
 *   score is itself not measured). Curves, which cannot be plotted empty, fail instead.
 * - Sums are accumulated in double; counts are exact.
 * - Memory: inputs are borrowed; the only outputs that own memory are FmCurve and
 *   FmCalibration, released with their _free function. FM_ERR_NOMEM leaves outputs empty. */
#ifndef FM_METRICS_H
#define FM_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "src/error.h"

/* The number of equal-width bins of the expected calibration error and the reliability diagram
 * unless a caller asks for another number. */
#define FM_METRICS_CALIBRATION_BINS 10

/* ---------------------------------------------------------------------------------------------
 * Binary classification. score (n), label (n).
 * ------------------------------------------------------------------------------------------- */

/* Area under the ROC curve as the Mann-Whitney statistic: the fraction of (positive, negative)
 * pairs in which the positive scores higher, a tied pair counting one half:
 *   AUROC = (sum over pairs [s_pos > s_neg] + 0.5 [s_pos == s_neg]) / (n_pos * n_neg).
 * This equals the trapezoidal area under the ROC curve (scikit-learn's roc_auc_score).
 * NaN when n_pos = 0 or n_neg = 0, or a score is NaN. */
FmStatus fm_metrics_auroc(const float *score, const float *label, size_t n, double *out, FmError *err);

/* Area under the precision-recall curve as average precision, the step-wise sum that
 * scikit-learn's average_precision_score computes:
 *   AP = sum_k (R_k - R_{k-1}) P_k
 * over the distinct scores t_1 > t_2 > ... (all samples with score >= t_k predicted positive),
 * with P_k, R_k the precision and recall at t_k and R_0 = 0. Tied scores enter together, so
 * there is no interpolation between them. NaN when there is no positive or a score is NaN;
 * 1 when every sample is positive. */
FmStatus fm_metrics_auprc(const float *score, const float *label, size_t n, double *out, FmError *err);

/* F1 = 2 TP / (2 TP + FP + FN) predicting positive when score >= threshold.
 * NaN when TP + FP + FN = 0 (no positive label and no positive prediction), or when the
 * threshold or a score is NaN. */
FmStatus fm_metrics_f1(const float *score, const float *label, size_t n, double threshold, double *out,
                       FmError *err);

/* A decision threshold and what it achieves on the samples it was chosen on. */
typedef struct {
    double threshold; /* predict positive when score >= threshold */
    double f1;
    double precision;
    double recall;
} FmThreshold;

/* The threshold that maximises F1 on these samples (choose it on validation, then apply it on
 * test with fm_metrics_f1). Every distinct score t is a candidate cut "score >= t"; among
 * equal F1 the highest cut wins (fewest positive predictions). The threshold returned lies
 * halfway between the lowest score predicted positive and the next lower distinct score, so
 * the cut is not on a sample's exact score (when the lowest score is chosen, or the halfway
 * point is not finite, the chosen score itself). All fields are NaN when there is no positive
 * label or a score is NaN. */
FmStatus fm_metrics_best_f1_threshold(const float *score, const float *label, size_t n, FmThreshold *out,
                                      FmError *err);

/* Brier score: mean over samples of (prob - label)^2. prob must lie in [0, 1] (FM_ERR_ARG
 * otherwise: logits passed by mistake are caught here). NaN when n = 0 or a prob is NaN. */
FmStatus fm_metrics_brier(const float *prob, const float *label, size_t n, double *out, FmError *err);

/* Expected calibration error of the positive-class probability with n_bins equal-width bins
 * (FM_METRICS_CALIBRATION_BINS = 10 is the standard choice):
 *   ECE = sum_b (n_b / n) |mean(label in b) - mean(prob in b)|,
 * bin b (0-based) holding the probabilities in (b/M, (b+1)/M], the first bin also holding 0
 * (the right-closed bins of Guo et al. 2017 and of scikit-learn's calibration_curve); empty
 * bins contribute nothing. prob must lie in [0, 1]; n_bins >= 1 (FM_ERR_ARG otherwise).
 * NaN when n = 0 or a prob is NaN. */
FmStatus fm_metrics_ece(const float *prob, const float *label, size_t n, int n_bins, double *out,
                        FmError *err);

/* Points of a curve in the order of decreasing threshold. */
typedef struct {
    size_t n;          /* number of points */
    double *x;         /* ROC: false-positive rate; PR: recall */
    double *y;         /* ROC: true-positive rate; PR: precision */
    double *threshold; /* the cut "score >= threshold" of each point; +inf for the first */
} FmCurve;

/* The ROC curve: (0, 0) at threshold +inf, then one point (FP/n_neg, TP/n_pos) per distinct
 * score from the highest down, ending at (1, 1) (scikit-learn's roc_curve with
 * drop_intermediate=False). FM_ERR_ARG when a class is absent or a score is NaN. The caller
 * frees *out with fm_metrics_curve_free. */
FmStatus fm_metrics_roc_curve(const float *score, const float *label, size_t n, FmCurve *out, FmError *err);

/* The precision-recall curve: (recall 0, precision 1) at threshold +inf, then one point
 * (TP/n_pos, TP/(TP+FP)) per distinct score from the highest down. The area fm_metrics_auprc
 * reports is the step sum over these points. FM_ERR_ARG when there is no positive or a score
 * is NaN. Free with fm_metrics_curve_free. */
FmStatus fm_metrics_pr_curve(const float *score, const float *label, size_t n, FmCurve *out, FmError *err);

/* Releases a curve's arrays and empties it; NULL and empty curves are accepted. */
void fm_metrics_curve_free(FmCurve *curve);

/* A reliability diagram: per equal-width bin (the bins of fm_metrics_ece), the number of
 * samples, their mean probability and their fraction of positives (NaN for an empty bin). */
typedef struct {
    int n_bins;
    size_t *count;
    double *mean_prob;
    double *frac_pos;
} FmCalibration;

/* Bins prob (n) as fm_metrics_ece does. prob must lie in [0, 1]; a NaN prob is FM_ERR_ARG
 * here (it has no bin). n may be 0 (every bin empty). Free with fm_metrics_calibration_free. */
FmStatus fm_metrics_calibration_curve(const float *prob, const float *label, size_t n, int n_bins,
                                      FmCalibration *out, FmError *err);

/* Releases the bins' arrays; NULL is accepted. */
void fm_metrics_calibration_free(FmCalibration *cal);

/* ---------------------------------------------------------------------------------------------
 * Regression. pred (n), target (n). NaN when n = 0 or any value is NaN or infinite.
 * ------------------------------------------------------------------------------------------- */

/* Mean absolute error: mean |pred - target|. */
double fm_metrics_mae(const float *pred, const float *target, size_t n);

/* Root mean squared error: sqrt(mean (pred - target)^2). */
double fm_metrics_rmse(const float *pred, const float *target, size_t n);

/* Coefficient of determination R^2 = 1 - sum (target - pred)^2 / sum (target - mean(target))^2
 * (scikit-learn's r2_score); negative when worse than predicting the mean. NaN when the
 * targets are all equal (the denominator is 0). */
double fm_metrics_r2(const float *pred, const float *target, size_t n);

/* ---------------------------------------------------------------------------------------------
 * Multi-label classification. score, label (n, L) row-major; mask (n, L) with 1 = label known
 * (NULL: every label known). Only known entries are used and validated.
 * ------------------------------------------------------------------------------------------- */

/* Macro AUROC: the mean of the per-label AUROCs over the labels whose known entries contain
 * both classes. per_label (L, may be NULL) receives each label's AUROC (NaN when excluded or
 * when one of its known scores is NaN); *n_used (may be NULL) the number of labels averaged.
 * NaN when no label qualifies or a qualifying label has a NaN score. */
FmStatus fm_metrics_macro_auroc(const float *score, const float *label, const uint8_t *mask, size_t n, int L,
                                double *per_label, int *n_used, double *out, FmError *err);

/* Micro AUROC: one AUROC over all known (sample, label) entries pooled. NaN when the pool
 * lacks a class or holds a NaN score. */
FmStatus fm_metrics_micro_auroc(const float *score, const float *label, const uint8_t *mask, size_t n, int L,
                                double *out, FmError *err);

/* Macro F1: the mean of the per-label F1 scores (fm_metrics_f1 over the known entries, cut
 * "score >= threshold[l]"; threshold NULL: 0.5 for every label) over the labels that have at
 * least one known positive. per_label (L, may be NULL) receives each label's F1 (NaN when
 * excluded); *n_used (may be NULL) the number averaged. NaN when no label qualifies or a known
 * entry's score is NaN. */
FmStatus fm_metrics_macro_f1(const float *score, const float *label, const uint8_t *mask, size_t n, int L,
                             const double *threshold, double *per_label, int *n_used, double *out,
                             FmError *err);

/* ---------------------------------------------------------------------------------------------
 * Metrics chosen by name, behind one signature (for bootstrapping, model selection, tables).
 * ------------------------------------------------------------------------------------------- */

typedef enum {
    FM_METRIC_AUROC,
    FM_METRIC_AUPRC,
    FM_METRIC_F1, /* at FmMetricSpec.threshold */
    FM_METRIC_BRIER,
    FM_METRIC_ECE, /* with FmMetricSpec.n_bins bins (0: FM_METRICS_CALIBRATION_BINS) */
    FM_METRIC_MAE,
    FM_METRIC_RMSE,
    FM_METRIC_R2
} FmMetricKind;

#define FM_METRIC_KIND_COUNT 8

typedef struct {
    FmMetricKind kind;
    double threshold; /* F1 only */
    int n_bins;       /* ECE only; 0 = FM_METRICS_CALIBRATION_BINS */
} FmMetricSpec;

/* A metric of n paired values: (score, label) for binary metrics, (prediction, target) for
 * regression. `ctx` carries the metric's settings. Same result conventions as above. */
typedef FmStatus (*FmMetricFn)(const void *ctx, const float *pred, const float *target, size_t n, double *out,
                               FmError *err);

/* The FmMetricFn for any kind: ctx is a `const FmMetricSpec *`. */
FmStatus fm_metrics_eval(const void *spec, const float *pred, const float *target, size_t n, double *out,
                         FmError *err);

/* The lower-case name ("auroc", "auprc", "f1", "brier", "ece", "mae", "rmse", "r2"). */
const char *fm_metrics_name(FmMetricKind kind);

/* Looks a name up; FM_ERR_ARG (listing the known names) when it is not one. */
FmStatus fm_metrics_parse_kind(const char *name, FmMetricKind *out, FmError *err);

/* 1 for metrics of binary labels (AUROC ... ECE), 0 for regression metrics. */
int fm_metrics_is_binary(FmMetricKind kind);

/* 1 when larger values are better (AUROC, AUPRC, F1, R^2), 0 for errors (Brier, ECE, MAE,
 * RMSE). */
int fm_metrics_higher_is_better(FmMetricKind kind);

#endif
