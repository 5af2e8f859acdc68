/* The results of an ablation: one row per run, results.csv, and the paper-style tables of
 * results.md (src/results_table.h), one per task.
 *
 * results.csv columns: config, one column per axis (its key, e.g. model.gate) with the run's
 * value, split, seed, one column per metric (<task>.<metric>, fractions as in metrics.json),
 * train_seconds (training time of the run's model, from its timing.json). Rows follow the
 * grid: configurations in order, then splits, then seeds. An empty field is "not measured"
 * (an incomplete run has every metric empty).
 *
 * results.md: a header naming the grid, then per task a table: per configuration mean +- std
 * [95% t interval] over its runs, and the paired difference against the baseline over the
 * (split, seed) pairs both have, with its interval and the paired t-test p-value. AUROC,
 * AUPRC, F1 and their macro/micro forms are shown in percent (1 decimal); Brier, ECE, MAE,
 * RMSE and R^2 as they are (3 decimals), MAE in days with 2. Training time is not in the
 * tables, so results.md depends only on the metrics. */
#ifndef FM_ABLATE_RESULTS_H
#define FM_ABLATE_RESULTS_H

#include "src/ablate_grid.h"
#include "src/error.h"

/* One run of the grid. */
typedef struct {
    int config;
    long split, seed;
    int complete;          /* metrics.json was read */
    double *values;        /* (grid->n_metrics); NaN = not measured */
    double train_seconds;  /* NaN when unknown */
} FmAblateRow;

/* Reads the grid's metrics from metrics.json at `path` into values (n_metrics): for
 * "<task>.<metric>" the member tasks.<task>.<metric> (its "value" when it is an object), for
 * "experts.<metric>" the member experts.<metric> (src/evaluate_experts.h); NaN when absent or
 * null (a baseline model has no experts). FM_ERR_IO / FM_ERR_FORMAT naming the file when it cannot be read. */
FmStatus fm_ablate_results_read_metrics(const FmAblateGrid *g, const char *path, double *values, FmError *err);

/* The training seconds recorded in timing.json at `path`; NaN when unreadable. */
double fm_ablate_results_read_seconds(const char *path);

/* Writes dir/results.csv and dir/results.md from rows[0..n) and returns the Markdown in
 * *markdown (fm_free). */
FmStatus fm_ablate_results_write(const FmAblateGrid *g, const FmAblateRow *rows, int n, const char *dir,
                                 char **markdown, FmError *err);

#endif
