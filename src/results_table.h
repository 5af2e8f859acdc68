/* Results across runs: results.csv (one row per run) and the paper-style Markdown table.
 *
 * results.csv has a header row `config,split,seed,<metric>,...` and one row per run: the
 * configuration's name, the split index, the seed, then one number per metric (fractions,
 * e.g. AUROC 0.8642; an empty field or "nan" = not measured). Columns between config and split
 * describe the configuration (an ablation's axis values) and are skipped when reading, so
 * `fusemoe ablate`'s results.csv files can be merged. Example:
 *   config,split,seed,auroc,auprc
 *   laplace,0,1,0.8642,0.5121
 *   softmax,0,1,0.8533,0.4987
 * Runs are identified by (config, split, seed); the same run twice is an error, except that
 * fm_results_append_csv replaces a rerun's row.
 *
 * The table gives, per configuration and metric, mean +- sample std and the 95% t interval of
 * the mean over its runs ("86.4 +- 0.9 [85.3, 87.5]" in percent), and, against a baseline
 * configuration, the paired difference over the (split, seed) pairs both have: mean
 * difference, its 95% t interval and the two-sided paired t-test p-value (or the Wilcoxon
 * signed-rank p-value). */
#ifndef FM_RESULTS_TABLE_H
#define FM_RESULTS_TABLE_H

#include <stddef.h>

#include "src/error.h"

typedef struct {
    char *config; /* configuration name */
    long split;
    long seed;
    double *values; /* one per metric column; NaN = not measured */
} FmResultRow;

typedef struct {
    int n_metrics;
    char **metrics; /* metric column names, in column order */
    size_t n_rows;
    size_t cap;
    FmResultRow *rows;
} FmResults;

/* An empty result set (no metric columns, no rows). */
void fm_results_init(FmResults *r);

/* Releases everything; NULL is accepted; the set is left empty. */
void fm_results_free(FmResults *r);

/* Index of metric column `name`, or -1. */
int fm_results_metric_index(const FmResults *r, const char *name);

/* Adds the run (config, split, seed) with values[i] for metric names[i] (n of them). Metrics
 * not seen before become new columns (NaN for earlier rows); metrics of the set not named
 * here are NaN for this run. FM_ERR_ARG when the run is already present or a name repeats;
 * FM_ERR_NOMEM leaves the set unchanged. */
FmStatus fm_results_add(FmResults *r, const char *config, long split, long seed, const char *const *names,
                        const double *values, int n, FmError *err);

/* Reads results.csv at `path` (libcsv) and adds its rows to `r` (so several files can be
 * merged; metric columns are matched by name). Errors name the file and line:
 *   "results.csv:5: column auroc: expected a number, got \"x\"". FM_ERR_IO when unreadable,
 * FM_ERR_FORMAT for malformed content (header, field count, numbers, a run twice). On failure
 * `r` is unchanged. */
FmStatus fm_results_read_csv(FmResults *r, const char *path, FmError *err);

/* Writes `r` as results.csv, atomically. Numbers are written in their shortest exact form,
 * NaN as an empty field; names with commas, quotes or surrounding spaces are quoted. */
FmStatus fm_results_write_csv(const FmResults *r, const char *path, FmError *err);

/* Adds one run to the results.csv at `path` (created when missing): reads it, replaces the row
 * of the same (config, split, seed) if there is one, adds the run, writes the file atomically.
 * One writer at a time: concurrent appenders to one file can lose rows. */
FmStatus fm_results_append_csv(const char *path, const char *config, long split, long seed,
                               const char *const *names, const double *values, int n, FmError *err);

/* One metric column of the table. */
typedef struct {
    const char *metric; /* results column */
    const char *label;  /* header text; NULL = the metric name */
    double scale;       /* multiplier for display, e.g. 100 for percent; 0 means 1 */
    int decimals;       /* digits after the decimal point */
} FmTableColumn;

typedef struct {
    const FmTableColumn *columns;
    int n_columns;
    const char *baseline;     /* configuration compared against; NULL = no comparison */
    const char *const *order; /* configurations to show, in this order; NULL = every
                                 configuration in order of first appearance */
    int n_order;
    double level; /* interval coverage; 0 means 0.95 */
    int wilcoxon; /* 1: comparison p-values from the Wilcoxon signed-rank test
                     instead of the paired t-test */
} FmTableSpec;

/* The display of metric column `metric` ("<task>.<metric>" or "<metric>"): AUROC, AUPRC, F1
 * and their macro/micro forms in percent with 1 decimal ("AUROC (%)"), MAE in days with 2, other
 * metrics (Brier, ECE, MAE, RMSE, R^2, ...) as they are with 3. `label` (cap bytes) receives the
 * header text, which col->label then points to. */
void fm_results_column_style(const char *metric, FmTableColumn *col, char *label, size_t cap);

/* Renders the Markdown table. Columns: Configuration, Runs, one per metric
 * ("mean +- std [lo, hi]" scaled; "(n = k)" added when only k of the runs have the metric;
 * just the mean when k = 1; "n/a" when k = 0), then with a baseline one "<label> vs
 * <baseline>" column per metric: "+1.2 [+0.3, +2.1], p = 0.004" (difference this - baseline
 * over matched runs, scaled; "(n = k pairs)" when fewer pairs than runs; "baseline" in the
 * baseline's own row; "n/a" with fewer than 2 pairs). p is written "p < 0.001", "p = 0.004"
 * (below 0.01) or "p = 0.03". FM_ERR_ARG for an unknown metric, baseline or ordered
 * configuration. The caller frees *out with fm_free. */
FmStatus fm_results_table_markdown(const FmResults *r, const FmTableSpec *spec, char **out, FmError *err);

#endif
