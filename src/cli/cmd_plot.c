/* fusemoe plot: ROC curves and reliability diagrams from predictions.csv files (src/plot.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/alloc.h"
#include "src/cli/cmd_common.h"
#include "src/cli/commands.h"
#include "src/metrics.h"
#include "src/plot.h"
#include "src/predictions_read.h"

#define MAX_CURVES 16
#define MAX_FILES 64

static void usage(FILE *out) {
    fprintf(out,
            "usage: fusemoe plot roc|calibration --predictions A.csv[+A2.csv...][,B.csv...]\n"
            "                    --labels NAME_A[,NAME_B...] --task COLUMN --out PLOT.png|PLOT.svg\n"
            "                    [--title TEXT] [--bins N]\n"
            "\n"
            "One curve per comma-separated item of --predictions; files joined with '+' are pooled\n"
            "into one curve (e.g. the test parts of several splits). --task names the label column\n"
            "(mortality, los_gt_7d, ...). roc: ROC curves with the AUROC of each in the legend;\n"
            "calibration: the reliability diagram (N equal-width bins, default 10) with each ECE.\n"
            "The format follows the extension of --out; the file is written atomically.\n"
            "\n"
            "example:\n"
            "  fusemoe plot roc --predictions runs/a/predictions.csv,runs/b/predictions.csv \\\n"
            "      --labels laplace,softmax --task mortality --out roc.png\n");
}

typedef struct {
    float *score, *label;
    size_t n;
    FmCurve roc;
    FmCalibration cal;
} Curve;

int fm_cmd_plot(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *kind = argv[1];
    if (strcmp(kind, "roc") != 0 && strcmp(kind, "calibration") != 0) {
        fprintf(stderr, "fusemoe plot: unknown plot '%s' (roc or calibration)\n", kind);
        return 2;
    }
    char *preds = NULL, *labels = NULL;
    const char *task = NULL, *out = NULL, *title = NULL;
    long bins = 10;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "fusemoe plot: %s: missing value (or unknown option)\n", a);
            return 2;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--predictions") == 0) preds = (char *)v;
        else if (strcmp(a, "--labels") == 0) labels = (char *)v;
        else if (strcmp(a, "--task") == 0) task = v;
        else if (strcmp(a, "--out") == 0) out = v;
        else if (strcmp(a, "--title") == 0) title = v;
        else if (strcmp(a, "--bins") == 0) {
            if (!fm_cli_parse_long("plot", "--bins", v, 2, 100, &bins)) return 2;
        } else {
            fprintf(stderr, "fusemoe plot: unknown option %s\n", a);
            return 2;
        }
    }
    if (!preds || !labels || !task || !out) {
        fprintf(stderr, "fusemoe plot: --predictions, --labels, --task and --out are required\n");
        usage(stderr);
        return 2;
    }
    char *groups[MAX_CURVES], *names[MAX_CURVES];
    int n_curves = fm_cli_split(preds, ",", groups, MAX_CURVES), n_names = fm_cli_split(labels, ",", names, MAX_CURVES);
    if (n_curves <= 0 || n_curves != n_names) {
        fprintf(stderr, "fusemoe plot: give one label per curve (%d curves, %d labels; at most %d)\n", n_curves,
                n_names, MAX_CURVES);
        return 2;
    }
    Curve curves[MAX_CURVES];
    memset(curves, 0, sizeof curves);
    FmPlotSeries series[MAX_CURVES];
    FmPlotCalibration cals[MAX_CURVES];
    FmError err;
    FmStatus st = FM_OK;
    for (int c = 0; c < n_curves && st == FM_OK; c++) {
        char *files[MAX_FILES];
        int n_files = fm_cli_split(groups[c], "+", files, MAX_FILES);
        if (n_files <= 0) {
            st = FM_FAIL(&err, FM_ERR_ARG, "--predictions", "curve %d: no file, or more than %d", c + 1, MAX_FILES);
            break;
        }
        Curve *cv = &curves[c];
        st = fm_predictions_read((const char *const *)files, n_files, task, &cv->score, &cv->label, &cv->n, &err);
        double value = NAN;
        if (st == FM_OK && kind[0] == 'r') {
            st = fm_metrics_roc_curve(cv->score, cv->label, cv->n, &cv->roc, &err);
            if (st == FM_OK) st = fm_metrics_auroc(cv->score, cv->label, cv->n, &value, &err);
            series[c] = (FmPlotSeries){.label = names[c], .x = cv->roc.x, .y = cv->roc.y, .n = cv->roc.n, .value = value};
        } else if (st == FM_OK) {
            st = fm_metrics_calibration_curve(cv->score, cv->label, cv->n, (int)bins, &cv->cal, &err);
            if (st == FM_OK) st = fm_metrics_ece(cv->score, cv->label, cv->n, (int)bins, &value, &err);
            cals[c] = (FmPlotCalibration){.label = names[c], .cal = &cv->cal, .ece = value};
        }
        if (st != FM_OK) fm_error_prefix(&err, "curve %s", names[c]);
    }
    if (st == FM_OK)
        st = kind[0] == 'r' ? fm_plot_roc(out, series, n_curves, title, &err)
                            : fm_plot_calibration(out, cals, n_curves, title, &err);
    for (int c = 0; c < n_curves; c++) {
        fm_free(curves[c].score);
        fm_free(curves[c].label);
        fm_metrics_curve_free(&curves[c].roc);
        fm_metrics_calibration_free(&curves[c].cal);
    }
    if (st != FM_OK) {
        fm_cli_report("plot", &err);
        return 1;
    }
    printf("fusemoe plot: wrote %s\n", out);
    return 0;
}
