/* fusemoe bootstrap: metrics averaged over the test parts of several runs, with bootstrap
 * intervals of the average (src/bootstrap.h, fm_bootstrap_mean_ci). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "src/alloc.h"
#include "src/atomic_file.h"
#include "src/bootstrap.h"
#include "src/cli/cmd_common.h"
#include "src/cli/commands.h"
#include "src/metrics.h"
#include "src/predictions_read.h"
#include "src/results_table.h"
#include "src/strbuf.h"

#define MAX_ROWS 32
#define MAX_RUNS 64
#define MAX_METRICS 8

static void usage(FILE *out) {
    fputs(
        "usage: fusemoe bootstrap --predictions A1.csv[+A2.csv...][,B1.csv...] --labels NAME_A[,NAME_B...]\n"
        "                         --task COLUMN [--metrics auroc,auprc,brier,ece] [--replicates N]\n"
        "                         [--seed S] [--title TEXT] [--out TABLE.md]\n"
        "\n"
        "One row per comma-separated item of --predictions; the files joined with '+' are the\n"
        "runs of that row (e.g. the test parts of five splits, each scored by its own model).\n"
        "Each metric is computed on every run's predictions of label column --task and\n"
        "averaged over the runs; its 95% interval is the percentile bootstrap interval of that\n"
        "average: each replicate resamples the stays of every run (positives and negatives\n"
        "separately for binary metrics) and averages the runs' metrics. Metrics: auroc, auprc,\n"
        "brier, ece (binary columns), mae, rmse, r2 (regression columns, on the predicted\n"
        "scale). Prints a Markdown table; --out also writes it (atomically).\n"
        "\n"
        "options:\n"
        "  --replicates N  bootstrap replicates (default 1000)\n"
        "  --seed S        seed of the replicates (default 1)\n"
        "\n"
        "example:\n"
        "  fusemoe bootstrap --predictions "
        "runs/a/split0-seed1/predictions.csv+runs/a/split1-seed1/predictions.csv \\\n"
        "      --labels laplace --task mortality --metrics auroc,auprc\n",
        out);
}

typedef struct {
    const char *name;
    int n_runs;
    float *score[MAX_RUNS], *label[MAX_RUNS];
    size_t n[MAX_RUNS];
} Row;

static void row_free(Row *r) {
    for (int i = 0; i < r->n_runs; i++) {
        fm_free(r->score[i]);
        fm_free(r->label[i]);
    }
}

/* Reads the row's runs: one predictions file each. */
static FmStatus row_read(Row *r, char *files, const char *task, FmError *err) {
    char *paths[MAX_RUNS];
    int n = fm_cli_split(files, "+", paths, MAX_RUNS);
    if (n <= 0)
        return FM_FAIL(err, FM_ERR_ARG, "--predictions", "row %s: no file, or more than %d", r->name,
                       MAX_RUNS);
    for (int i = 0; i < n; i++) {
        FmStatus st = fm_predictions_read((const char *const *)&paths[i], 1, task, &r->score[i], &r->label[i],
                                          &r->n[i], err);
        if (st != FM_OK) return st;
        r->n_runs++;
    }
    return FM_OK;
}

/* Appends the table: Configuration, Runs, Stays (summed over runs), then per metric
 * "estimate [lo, hi]" in the display style of results tables. */
static FmStatus table(FmStrBuf *md, const char *title, Row *rows, int n_rows, const FmMetricSpec *specs,
                      char **names, int n_metrics, int replicates, uint64_t seed, FmError *err) {
    FmTableColumn cols[MAX_METRICS];
    char labels[MAX_METRICS][64];
    for (int m = 0; m < n_metrics; m++)
        fm_results_column_style(names[m], &cols[m], labels[m], sizeof labels[m]);
    if (title) fm_strbuf_appendf(md, "%s\n\n", title);
    fm_strbuf_append(md, "| Configuration | Runs | Stays |");
    for (int m = 0; m < n_metrics; m++)
        fm_strbuf_appendf(md, " %s [95%% bootstrap CI] |", cols[m].label);
    fm_strbuf_append(md, "\n|---|---:|---:|");
    for (int m = 0; m < n_metrics; m++)
        fm_strbuf_append(md, "---|");
    fm_strbuf_append(md, "\n");
    FmBootstrapConfig cfg = fm_bootstrap_default();
    cfg.n_resamples = replicates;
    cfg.seed = seed;
    for (int r = 0; r < n_rows; r++) {
        Row *row = &rows[r];
        size_t stays = 0;
        for (int i = 0; i < row->n_runs; i++)
            stays += row->n[i];
        fm_strbuf_appendf(md, "| %s | %d | %zu |", row->name, row->n_runs, stays);
        for (int m = 0; m < n_metrics; m++) {
            FmBootstrapCI ci;
            cfg.stratified = fm_metrics_is_binary(specs[m].kind);
            FmStatus st = fm_bootstrap_mean_ci(fm_metrics_eval, &specs[m], row->n_runs,
                                               (const float *const *)row->score,
                                               (const float *const *)row->label, row->n, &cfg, &ci, err);
            if (st != FM_OK) {
                fm_error_prefix(err, "row %s, %s", row->name, names[m]);
                return st;
            }
            const double k = cols[m].scale;
            const int d = cols[m].decimals;
            if (isfinite(ci.lo))
                fm_strbuf_appendf(md, " %.*f [%.*f, %.*f] |", d, k * ci.estimate, d, k * ci.lo, d, k * ci.hi);
            else
                fm_strbuf_appendf(md, " %.*f |", d, k * ci.estimate);
        }
        fm_strbuf_append(md, "\n");
    }
    return FM_OK;
}

int fm_cmd_bootstrap(int argc, char **argv) {
    char *preds = NULL, *labels = NULL, metric_list[256] = "auroc,auprc,brier,ece";
    const char *task = NULL, *out = NULL, *title = NULL;
    long replicates = 1000, seed = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "fusemoe bootstrap: %s: missing value (or unknown option)\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--predictions") == 0)
            preds = (char *)v;
        else if (strcmp(a, "--labels") == 0)
            labels = (char *)v;
        else if (strcmp(a, "--task") == 0)
            task = v;
        else if (strcmp(a, "--out") == 0)
            out = v;
        else if (strcmp(a, "--title") == 0)
            title = v;
        else if (strcmp(a, "--metrics") == 0)
            snprintf(metric_list, sizeof metric_list, "%s", v);
        else if (strcmp(a, "--replicates") == 0) {
            if (!fm_cli_parse_long("bootstrap", a, v, 2, 1000000, &replicates)) return 2;
        } else if (strcmp(a, "--seed") == 0) {
            if (!fm_cli_parse_long("bootstrap", a, v, 0, 2147483647, &seed)) return 2;
        } else {
            fprintf(stderr, "fusemoe bootstrap: unknown option %s\n", a);
            return 2;
        }
    }
    if (!preds || !labels || !task) {
        fprintf(stderr, "fusemoe bootstrap: --predictions, --labels and --task are required\n");
        usage(stderr);
        return 2;
    }
    char *groups[MAX_ROWS], *names[MAX_ROWS], *metrics[MAX_METRICS];
    int n_rows = fm_cli_split(preds, ",", groups, MAX_ROWS),
        n_names = fm_cli_split(labels, ",", names, MAX_ROWS);
    int n_metrics = fm_cli_split(metric_list, ",", metrics, MAX_METRICS);
    if (n_rows <= 0 || n_rows != n_names) {
        fprintf(stderr, "fusemoe bootstrap: give one label per row (%d rows, %d labels; at most %d)\n",
                n_rows, n_names, MAX_ROWS);
        return 2;
    }
    if (n_metrics <= 0) {
        fprintf(stderr, "fusemoe bootstrap: --metrics: give 1 to %d metrics\n", MAX_METRICS);
        return 2;
    }
    FmError err;
    FmMetricSpec specs[MAX_METRICS];
    for (int m = 0; m < n_metrics; m++) {
        specs[m] = (FmMetricSpec){0};
        if (fm_metrics_parse_kind(metrics[m], &specs[m].kind, &err) != FM_OK) {
            fm_cli_report("bootstrap", &err);
            return 2;
        }
        if (specs[m].kind == FM_METRIC_F1) {
            fprintf(stderr, "fusemoe bootstrap: --metrics: f1 needs each run's decision threshold, which "
                            "predictions.csv does not hold (metrics.json has F1 with its interval)\n");
            return 2;
        }
    }
    Row *rows = fm_calloc(MAX_ROWS, sizeof *rows);
    FmStrBuf md;
    fm_strbuf_init(&md);
    FmStatus st = rows ? FM_OK : FM_FAIL(&err, FM_ERR_NOMEM, NULL, "out of memory");
    for (int r = 0; r < n_rows && st == FM_OK; r++) {
        rows[r].name = names[r];
        st = row_read(&rows[r], groups[r], task, &err);
    }
    if (st == FM_OK)
        st =
            table(&md, title, rows, n_rows, specs, metrics, n_metrics, (int)replicates, (uint64_t)seed, &err);
    if (st == FM_OK && md.failed) st = FM_FAIL(&err, FM_ERR_NOMEM, NULL, "out of memory");
    if (st == FM_OK && out) st = fm_atomic_write_all(out, md.data, md.len, &err);
    if (st == FM_OK) fputs(md.data, stdout);
    for (int r = 0; rows && r < n_rows; r++)
        row_free(&rows[r]);
    fm_free(rows);
    fm_strbuf_free(&md);
    if (st != FM_OK) {
        fm_cli_report("bootstrap", &err);
        return 1;
    }
    return 0;
}
