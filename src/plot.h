/* Evaluation plots drawn with cairo: ROC curves, reliability diagrams and heatmaps.
 *
 * The format follows the file name: ".svg" (vector, sizes in points) or ".png" (raster at
 * twice the point size, e.g. 1000 x 1000 pixels for the 500 x 500 pt ROC plot). Files are
 * written atomically (temporary file, then rename). Text is set in DejaVu Sans; colours are
 * the Okabe-Ito colour-blind-safe palette for curves and a light-to-dark blue scale for
 * heatmaps. Inputs are borrowed. Errors: FM_ERR_ARG for a path without .png/.svg or unusable
 * data, FM_ERR_IO when the file cannot be written, FM_ERR_UNSUPPORTED when cairo fails. */
#ifndef FM_PLOT_H
#define FM_PLOT_H

#include <stddef.h>

#include "src/error.h"
#include "src/metrics.h"

/* One curve of a line plot. Points with a non-finite coordinate are skipped (the line breaks
 * there). */
typedef struct {
    const char *label; /* legend text; NULL = "" */
    const double *x;
    const double *y;
    size_t n;
    double value; /* shown in the legend after the label (AUROC, ECE); NaN = not shown */
} FmPlotSeries;

/* ROC curves on the unit square (false-positive rate against true-positive rate) with the
 * chance diagonal, one colour per curve (up to 7 distinct colours; more repeat), and a legend
 * "label (AUROC 0.842)". x/y are typically an FmCurve from fm_metrics_roc_curve and value its
 * AUROC. FM_ERR_ARG when n_curves < 1 or a curve has no point. */
FmStatus fm_plot_roc(const char *path, const FmPlotSeries *curves, int n_curves, const char *title,
                     FmError *err);

/* One model's calibration bins for fm_plot_calibration. */
typedef struct {
    const char *label;
    const FmCalibration *cal; /* from fm_metrics_calibration_curve */
    double ece;               /* shown in the legend; NaN = not shown */
} FmPlotCalibration;

/* Reliability diagram: per non-empty bin, mean predicted probability against the fraction of
 * positives, joined by lines, with markers whose area grows with the bin's sample count, the
 * bin edges as light vertical lines (first series), and the diagonal of perfect calibration.
 * FM_ERR_ARG when n_series < 1 or a series has no bins or more than 1000. */
FmStatus fm_plot_calibration(const char *path, const FmPlotCalibration *series, int n_series,
                             const char *title, FmError *err);

/* A heatmap of values (rows, cols), row-major, e.g. expert utilisation with rows = modalities
 * and columns = experts. */
typedef struct {
    const double *values; /* (rows, cols); NaN cells are drawn grey */
    int rows, cols;
    const char *const *row_labels; /* rows names, NULL = "0", "1", ... */
    const char *const *col_labels; /* cols names, NULL = "0", "1", ... */
    const char *title;
    const char *x_label;     /* e.g. "expert" */
    const char *y_label;     /* e.g. "modality" */
    const char *value_label; /* colour bar caption, e.g. "share of tokens" */
    double vmin, vmax;       /* colour scale; NaN = the finite data range */
    int annotate;            /* 1: print each value in its cell when cells are large
                                enough (at least 30 pt wide) */
} FmHeatmap;

/* Draws the heatmap with labelled rows and columns and a colour bar. FM_ERR_ARG for rows or
 * cols < 1 or more than 256. */
FmStatus fm_plot_heatmap(const char *path, const FmHeatmap *map, FmError *err);

/* Releases the font and drawing caches cairo and fontconfig keep for the life of the process
 * (cairo_debug_reset_static_data, then FcFini), so leak checkers see a clean exit. Does nothing
 * when no plot was drawn. Call it at exit, after the last plot. */
void fm_plot_release(void);

#endif
