/* metrics.json: evaluation results as JSON (cJSON), written atomically.
 *
 * Documents are cJSON trees the caller owns (cJSON_CreateObject / cJSON_Delete). The functions
 * here add numbers (NaN and infinities become null: "not measured"), confidence intervals,
 * complete per-task reports and the resolved configuration, and write the document. They
 * route cJSON's allocations through fm_malloc (cJSON_InitHooks), so allocation failures are
 * reported as FM_ERR_NOMEM; on any failure the parent object is left as it was.
 *
 * Report layout of one binary task (fm_json_add_binary_report), values as fractions:
 *   "mortality": {
 *     "kind": "binary", "n": 800, "n_positive": 110,
 *     "auroc": {"value": 0.861, "ci_low": 0.829, "ci_high": 0.890, "se": 0.016, "replicates": 1000},
 *     "auprc": {...}, "f1": {...}, "brier": {...}, "ece": {...},
 *     "threshold": 0.31,
 *     "bootstrap": {"resamples": 1000, "seed": 1, "level": 0.95, "stratified": true}
 *   }
 * Without bootstrap each metric is {"value": v}. */
#ifndef FM_JSON_OUT_H
#define FM_JSON_OUT_H

#include <cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "src/bootstrap.h"
#include "src/config.h"
#include "src/error.h"

/* Adds "name": v to `obj` (null when v is NaN or infinite). */
FmStatus fm_json_add_number(cJSON *obj, const char *name, double v, FmError *err);

/* Adds "name": "s". */
FmStatus fm_json_add_string(cJSON *obj, const char *name, const char *s, FmError *err);

/* Adds "name": [v0, v1, ...] (NaN as null). */
FmStatus fm_json_add_numbers(cJSON *obj, const char *name, const double *v, size_t n, FmError *err);

/* Adds "name": {"value", "ci_low", "ci_high", "se", "replicates"} from a bootstrap result. */
FmStatus fm_json_add_ci(cJSON *obj, const char *name, const FmBootstrapCI *ci, FmError *err);

/* Adds the report of a binary task: n, n_positive, AUROC, AUPRC, F1 at `threshold` (chosen on
 * validation), Brier and ECE (10 bins), each with its stratified bootstrap interval when
 * `boot` is not NULL and boot->n_resamples > 0 (the stratified flag of `boot` is ignored:
 * binary metrics are always resampled by class). score must be probabilities in [0, 1]
 * (Brier and ECE need them). Failures of the metrics (bad labels, probabilities outside [0,
 * 1]) are passed on. */
FmStatus fm_json_add_binary_report(cJSON *obj, const char *name, const float *score, const float *label,
                                   size_t n, double threshold, const FmBootstrapConfig *boot, FmError *err);

/* Adds the report of a regression task: n, MAE, RMSE, R^2, with plain bootstrap intervals when
 * `boot` is not NULL and boot->n_resamples > 0. */
FmStatus fm_json_add_regression_report(cJSON *obj, const char *name, const float *pred, const float *target,
                                       size_t n, const FmBootstrapConfig *boot, FmError *err);

/* Adds the report of a multi-label task (score, label, mask (n, L) as in src/metrics.h):
 * n, labels, macro_auroc {value, labels_used}, micro_auroc, macro_f1 {value, labels_used} at
 * `threshold` (L values, NULL = 0.5), and per_label: {label name: {"auroc", "f1"}} (names
 * "0", "1", ... when `label_names` is NULL). No bootstrap intervals. */
FmStatus fm_json_add_multilabel_report(cJSON *obj, const char *name, const float *score, const float *label,
                                       const uint8_t *mask, size_t n, int L, const char *const *label_names,
                                       const double *threshold, FmError *err);

/* Adds the resolved configuration as "name": {"section": {"key": value, ...}, ...} with typed
 * values (numbers, booleans, strings, arrays). */
FmStatus fm_json_add_config(cJSON *obj, const char *name, const FmConfig *cfg, FmError *err);

/* Writes `root` to `path` as indented JSON with a final newline, atomically (temporary file,
 * then rename): a reader sees the old file or the complete new one. */
FmStatus fm_json_write(const cJSON *root, const char *path, FmError *err);

#endif
