/* Evaluation results from predictions: per-task summaries for model selection and the epoch
 * log, decision thresholds chosen on validation, and the per-task reports of metrics.json.
 *
 * Tasks are read from the model configuration (kind, label columns); predictions and labels
 * from an FmPredictions. Only stays whose label is known enter a metric. */
#ifndef FM_EVALUATE_REPORT_H
#define FM_EVALUATE_REPORT_H

#include <cJSON.h>
#include <stdint.h>

#include "models/model.h"
#include "src/error.h"
#include "src/evaluate.h"

/* One task's headline metrics (NaN when undefined or not of the task's kind). Binary: AUROC,
 * AUPRC, F1 at 0.5. Multi-label: the macro averages over its labels of AUROC, AUPRC (each over
 * the labels where it is defined) and F1 at 0.5. Regression: MAE, RMSE, R^2. */
typedef struct {
    double auroc, auprc, f1;
    double mae, rmse, r2;
} FmTaskSummary;

/* Fills out[t] for every task of `mc`. */
FmStatus fm_evaluate_summarise(const FmModelConfig *mc, const FmPredictions *p, FmTaskSummary *out, FmError *err);

/* The metrics train.select_metric can name, in the schema's order. */
typedef enum { FM_SELECT_AUROC, FM_SELECT_AUPRC, FM_SELECT_F1, FM_SELECT_LOSS } FmSelectMetric;

/* The model-selection value: for AUROC, AUPRC and F1 the mean of the task summaries' value
 * over the binary and multi-label tasks whose value is finite (NaN when none is); a study of
 * regression tasks only, or FM_SELECT_LOSS, uses `loss` (the validation task loss) instead.
 * *higher_is_better receives 1 for the metrics, 0 for the loss. */
double fm_evaluate_select_value(const FmModelConfig *mc, const FmTaskSummary *s, FmSelectMetric metric, double loss,
                                int *higher_is_better);

/* Decision thresholds chosen on these (validation) predictions: for every binary and
 * multi-label column the cut that maximises F1 (fm_metrics_best_f1_threshold); 0.5 when it is
 * undefined (no known positive); NaN for regression columns. threshold has n_labels entries. */
FmStatus fm_evaluate_choose_thresholds(const FmModelConfig *mc, const FmPredictions *p, double *threshold,
                                       FmError *err);

/* Settings of the metrics.json reports. */
typedef struct {
    int bootstrap;              /* replicates (0: no intervals) */
    uint64_t seed;              /* of the bootstrap */
    double los_log_offset_days; /* regression columns named los_log_days also get their MAE in days */
} FmReportOptions;

/* Adds one object per task to `tasks` (named by the task):
 *   binary      fm_json_add_binary_report with F1 at the validation threshold ("f1",
 *               "threshold") and "f1_at_0.5", each with its stratified bootstrap interval
 *   regression  fm_json_add_regression_report, and "mae_days" for los_log_days (MAE of
 *               exp(pred) - offset against exp(y) - offset)
 *   multilabel  fm_json_add_multilabel_report with per-label F1 at the validation thresholds
 *               ("macro_f1"), plus "macro_f1_at_0.5", and bootstrap intervals ("ci_low",
 *               "ci_high", "se", "replicates") added to macro_auroc, micro_auroc, macro_f1 and
 *               macro_f1_at_0.5 by resampling stays (not stratified: there is no single class
 *               to stratify by; a replicate without both classes for a label leaves that label
 *               out of its macro mean)
 * `label_names` name the columns (per-label entries of multi-label tasks); `threshold` holds
 * the validation thresholds (n_labels). */
FmStatus fm_evaluate_report(cJSON *tasks, const FmModelConfig *mc, const char *const *label_names,
                            const FmPredictions *p, const double *threshold, const FmReportOptions *opt,
                            FmError *err);

#endif
