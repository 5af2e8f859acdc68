#include "src/plot.h"

#include <cairo-svg.h>
#include <cairo.h>
#include <fontconfig/fontconfig.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "src/atomic_file.h"

/* PNG pixels per point. */
#define PNG_SCALE 2.0
#define FONT "DejaVu Sans"

/* Okabe and Ito (2008) colour-blind-safe colours, yellow left out (too light on white). */
static const double PALETTE[][3] = {
    {0.000, 0.447, 0.698}, /* blue */
    {0.835, 0.369, 0.000}, /* vermillion */
    {0.000, 0.620, 0.451}, /* bluish green */
    {0.800, 0.475, 0.655}, /* reddish purple */
    {0.902, 0.624, 0.000}, /* orange */
    {0.337, 0.706, 0.914}, /* sky blue */
    {0.000, 0.000, 0.000}, /* black */
};
#define N_PALETTE 7

/* ---------------------------------------------------------------------------------------------
 * Output: a surface for the chosen format, published atomically
 * ------------------------------------------------------------------------------------------- */

typedef struct {
    FmAtomicFile af;
    int png;
    double w, h; /* canvas in points */
    cairo_surface_t *surface;
    cairo_t *cr;
} Canvas;

static cairo_status_t write_stream(void *closure, const unsigned char *data, unsigned int length) {
    return fwrite(data, 1, length, (FILE *)closure) == length ? CAIRO_STATUS_SUCCESS
                                                              : CAIRO_STATUS_WRITE_ERROR;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcasecmp(s + n - k, suffix) == 0;
}

/* Set once a plot has been drawn: fm_plot_release then has caches to release. */
static int g_drew;

static FmStatus canvas_open(Canvas *c, const char *path, double w, double h, FmError *err) {
    memset(c, 0, sizeof *c);
    g_drew = 1;
    if (ends_with(path, ".png"))
        c->png = 1;
    else if (!ends_with(path, ".svg"))
        return FM_FAIL(err, FM_ERR_ARG, path, "plot file name must end in .png or .svg");
    FmStatus st = fm_atomic_open(&c->af, path, err);
    if (st != FM_OK) return st;
    c->w = w;
    c->h = h;
    if (c->png)
        c->surface = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, (int)ceil(w * PNG_SCALE),
                                                (int)ceil(h * PNG_SCALE));
    else
        c->surface = cairo_svg_surface_create_for_stream(write_stream, c->af.f, w, h);
    c->cr = cairo_create(c->surface);
    if (cairo_status(c->cr) != CAIRO_STATUS_SUCCESS) {
        cairo_destroy(c->cr);
        cairo_surface_destroy(c->surface);
        fm_atomic_discard(&c->af);
        return FM_FAIL(err, FM_ERR_UNSUPPORTED, path, "cairo cannot create the drawing surface");
    }
    if (c->png) cairo_scale(c->cr, PNG_SCALE, PNG_SCALE);
    cairo_set_source_rgb(c->cr, 1, 1, 1);
    cairo_paint(c->cr);
    cairo_select_font_face(c->cr, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    return FM_OK;
}

static FmStatus canvas_close(Canvas *c, FmError *err) {
    cairo_status_t cs = cairo_status(c->cr);
    cairo_destroy(c->cr);
    if (cs == CAIRO_STATUS_SUCCESS && c->png)
        cs = cairo_surface_write_to_png_stream(c->surface, write_stream, c->af.f);
    cairo_surface_finish(c->surface); /* SVG: writes the document */
    if (cs == CAIRO_STATUS_SUCCESS) cs = cairo_surface_status(c->surface);
    cairo_surface_destroy(c->surface);
    if (cs != CAIRO_STATUS_SUCCESS) {
        fm_atomic_discard(&c->af);
        if (cs == CAIRO_STATUS_WRITE_ERROR) return FM_FAIL(err, FM_ERR_IO, c->af.path, "write failed");
        return FM_FAIL(err, FM_ERR_UNSUPPORTED, c->af.path, "cairo: %s", cairo_status_to_string(cs));
    }
    return fm_atomic_close(&c->af, err);
}

/* ---------------------------------------------------------------------------------------------
 * Drawing helpers
 * ------------------------------------------------------------------------------------------- */

/* Text of `size` points anchored at (x, y): ax 0/0.5/1 = left/centre/right, ay 0/0.5/1 =
 * top/middle/bottom of the text's ink. */
static void text_at(cairo_t *cr, double x, double y, const char *s, double size, double ax, double ay,
                    int bold) {
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL,
                           bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    /* Vertical placement from the font's cap height, so that labels line up whatever their
     * letters. */
    double cap = 0.72 * size;
    cairo_move_to(cr, x - ax * e.x_advance, y + cap - ay * cap);
    cairo_show_text(cr, s);
}

/* The same, rotated a quarter turn counter-clockwise (for vertical axis labels). */
static void text_vertical(cairo_t *cr, double x, double y, const char *s, double size) {
    cairo_save(cr);
    cairo_translate(cr, x, y);
    cairo_rotate(cr, -M_PI / 2);
    text_at(cr, 0, 0, s, size, 0.5, 0.5, 0);
    cairo_restore(cr);
}

static double text_width(cairo_t *cr, const char *s, double size) {
    cairo_select_font_face(cr, FONT, CAIRO_FONT_SLANT_NORMAL, CAIRO_FONT_WEIGHT_NORMAL);
    cairo_set_font_size(cr, size);
    cairo_text_extents_t e;
    cairo_text_extents(cr, s, &e);
    return e.x_advance;
}

/* A plot area and its data ranges. */
typedef struct {
    double x0, y0, w, h;
    double xmin, xmax, ymin, ymax;
} Frame;

static double px(const Frame *f, double x) {
    return f->x0 + (x - f->xmin) / (f->xmax - f->xmin) * f->w;
}
static double py(const Frame *f, double y) {
    return f->y0 + f->h - (y - f->ymin) / (f->ymax - f->ymin) * f->h;
}

/* Grid, box, ticks at 0, 0.2, ..., 1 on both axes, tick labels, axis labels and title. */
static void unit_axes(cairo_t *cr, const Frame *f, const char *xlabel, const char *ylabel,
                      const char *title) {
    char buf[16];
    cairo_set_line_width(cr, 0.8);
    for (int k = 0; k <= 5; k++) {
        double v = 0.2 * k;
        cairo_set_source_rgb(cr, 0.90, 0.90, 0.90);
        cairo_move_to(cr, px(f, v), f->y0);
        cairo_line_to(cr, px(f, v), f->y0 + f->h);
        cairo_move_to(cr, f->x0, py(f, v));
        cairo_line_to(cr, f->x0 + f->w, py(f, v));
        cairo_stroke(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        cairo_move_to(cr, px(f, v), f->y0 + f->h);
        cairo_line_to(cr, px(f, v), f->y0 + f->h + 5);
        cairo_move_to(cr, f->x0, py(f, v));
        cairo_line_to(cr, f->x0 - 5, py(f, v));
        cairo_stroke(cr);
        snprintf(buf, sizeof buf, "%.1f", v);
        text_at(cr, px(f, v), f->y0 + f->h + 9, buf, 12, 0.5, 0, 0);
        text_at(cr, f->x0 - 9, py(f, v), buf, 12, 1, 0.5, 0);
    }
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 1.2);
    cairo_rectangle(cr, f->x0, f->y0, f->w, f->h);
    cairo_stroke(cr);
    text_at(cr, f->x0 + f->w / 2, f->y0 + f->h + 30, xlabel, 14, 0.5, 0, 0);
    text_vertical(cr, f->x0 - 46, f->y0 + f->h / 2, ylabel, 14);
    if (title && title[0]) text_at(cr, f->x0 + f->w / 2, 14, title, 15, 0.5, 0, 1);
}

/* The dashed diagonal y = x with a small caption. */
static void diagonal(cairo_t *cr, const Frame *f) {
    const double dash[] = {6, 4};
    cairo_save(cr);
    cairo_set_dash(cr, dash, 2, 0);
    cairo_set_source_rgb(cr, 0.55, 0.55, 0.55);
    cairo_set_line_width(cr, 1.2);
    cairo_move_to(cr, px(f, 0), py(f, 0));
    cairo_line_to(cr, px(f, 1), py(f, 1));
    cairo_stroke(cr);
    cairo_restore(cr);
}

/* Polyline through the finite points, clipped to the frame. */
static void polyline(cairo_t *cr, const Frame *f, const double *x, const double *y, size_t n) {
    cairo_save(cr);
    cairo_rectangle(cr, f->x0 - 1, f->y0 - 1, f->w + 2, f->h + 2);
    cairo_clip(cr);
    int pen = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i])) {
            pen = 0;
            continue;
        }
        if (pen)
            cairo_line_to(cr, px(f, x[i]), py(f, y[i]));
        else
            cairo_move_to(cr, px(f, x[i]), py(f, y[i]));
        pen = 1;
    }
    cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
    cairo_set_line_cap(cr, CAIRO_LINE_CAP_ROUND);
    cairo_stroke(cr);
    cairo_restore(cr);
}

/* A legend in the lower-right corner of the frame: one line per entry with its colour. */
static void legend(cairo_t *cr, const Frame *f, const char *const *texts, int n, int with_diagonal,
                   const char *diagonal_text) {
    const double size = 12, line_h = 19, swatch = 22, pad = 8;
    double wmax = 0;
    for (int i = 0; i < n; i++)
        wmax = fmax(wmax, text_width(cr, texts[i], size));
    if (with_diagonal) wmax = fmax(wmax, text_width(cr, diagonal_text, size));
    int rows = n + (with_diagonal ? 1 : 0);
    double bw = pad + swatch + 6 + wmax + pad, bh = pad + rows * line_h + pad - 4;
    double bx = f->x0 + f->w - bw - 10, by = f->y0 + f->h - bh - 10;
    cairo_set_source_rgba(cr, 1, 1, 1, 0.92);
    cairo_rectangle(cr, bx, by, bw, bh);
    cairo_fill_preserve(cr);
    cairo_set_source_rgb(cr, 0.7, 0.7, 0.7);
    cairo_set_line_width(cr, 0.8);
    cairo_stroke(cr);
    for (int i = 0; i < rows; i++) {
        double y = by + pad + i * line_h + line_h / 2 - 2;
        cairo_save(cr);
        if (i < n) {
            const double *c = PALETTE[i % N_PALETTE];
            cairo_set_source_rgb(cr, c[0], c[1], c[2]);
            cairo_set_line_width(cr, 2.5);
        } else {
            const double dash[] = {6, 4};
            cairo_set_dash(cr, dash, 2, 0);
            cairo_set_source_rgb(cr, 0.55, 0.55, 0.55);
            cairo_set_line_width(cr, 1.2);
        }
        cairo_move_to(cr, bx + pad, y);
        cairo_line_to(cr, bx + pad + swatch, y);
        cairo_stroke(cr);
        cairo_restore(cr);
        cairo_set_source_rgb(cr, 0, 0, 0);
        text_at(cr, bx + pad + swatch + 6, y, i < n ? texts[i] : diagonal_text, size, 0, 0.5, 0);
    }
}

/* "label (NAME 0.842)" or "label" into buf. */
static const char *legend_text(char *buf, size_t cap, const char *label, const char *name, double value) {
    if (isfinite(value))
        snprintf(buf, cap, "%s (%s %.3f)", label ? label : "", name, value);
    else
        snprintf(buf, cap, "%s", label ? label : "");
    return buf;
}

/* The square frame shared by the ROC and calibration plots. */
static Frame unit_frame(void) {
    Frame f = {72, 40, 410, 400, 0, 1, 0, 1};
    return f;
}
#define UNIT_W 500.0
#define UNIT_H 500.0
#define MAX_SERIES 32
#define MAX_BINS 1000

/* ---------------------------------------------------------------------------------------------
 * Plots
 * ------------------------------------------------------------------------------------------- */

FmStatus fm_plot_roc(const char *path, const FmPlotSeries *curves, int n_curves, const char *title,
                     FmError *err) {
    if (n_curves < 1 || n_curves > MAX_SERIES)
        return FM_FAIL(err, FM_ERR_ARG, path, "ROC plot: %d curves (1 to %d)", n_curves, MAX_SERIES);
    for (int i = 0; i < n_curves; i++)
        if (curves[i].n == 0) return FM_FAIL(err, FM_ERR_ARG, path, "ROC plot: curve %d has no point", i);
    Canvas c;
    FmStatus st = canvas_open(&c, path, UNIT_W, UNIT_H, err);
    if (st != FM_OK) return st;
    Frame f = unit_frame();
    unit_axes(c.cr, &f, "False-positive rate (1 - specificity)", "True-positive rate (sensitivity)", title);
    diagonal(c.cr, &f);
    char texts[MAX_SERIES][160];
    const char *ptrs[MAX_SERIES];
    for (int i = 0; i < n_curves; i++) {
        const double *col = PALETTE[i % N_PALETTE];
        cairo_set_source_rgb(c.cr, col[0], col[1], col[2]);
        cairo_set_line_width(c.cr, 2.2);
        polyline(c.cr, &f, curves[i].x, curves[i].y, curves[i].n);
        ptrs[i] = legend_text(texts[i], sizeof texts[i], curves[i].label, "AUROC", curves[i].value);
    }
    legend(c.cr, &f, ptrs, n_curves, 1, "chance");
    return canvas_close(&c, err);
}

FmStatus fm_plot_calibration(const char *path, const FmPlotCalibration *series, int n_series,
                             const char *title, FmError *err) {
    if (n_series < 1 || n_series > MAX_SERIES)
        return FM_FAIL(err, FM_ERR_ARG, path, "calibration plot: %d series (1 to %d)", n_series, MAX_SERIES);
    for (int i = 0; i < n_series; i++)
        if (!series[i].cal || series[i].cal->n_bins < 1 || series[i].cal->n_bins > MAX_BINS)
            return FM_FAIL(err, FM_ERR_ARG, path, "calibration plot: series %d has %d bins (1 to %d)", i,
                           series[i].cal ? series[i].cal->n_bins : 0, MAX_BINS);
    Canvas c;
    FmStatus st = canvas_open(&c, path, UNIT_W, UNIT_H, err);
    if (st != FM_OK) return st;
    Frame f = unit_frame();
    unit_axes(c.cr, &f, "Mean predicted probability", "Observed fraction of positives", title);
    /* Bin edges of the first series. */
    int M = series[0].cal->n_bins;
    cairo_set_source_rgb(c.cr, 0.93, 0.93, 0.93);
    cairo_set_line_width(c.cr, 0.6);
    for (int b = 1; b < M; b++) {
        if (b * 5 % M == 0) continue; /* on a grid line already */
        cairo_move_to(c.cr, px(&f, (double)b / M), f.y0);
        cairo_line_to(c.cr, px(&f, (double)b / M), f.y0 + f.h);
    }
    cairo_stroke(c.cr);
    diagonal(c.cr, &f);
    char texts[MAX_SERIES][160];
    const char *ptrs[MAX_SERIES];
    for (int i = 0; i < n_series; i++) {
        const FmCalibration *cal = series[i].cal;
        const double *col = PALETTE[i % N_PALETTE];
        size_t max_count = 1;
        for (int b = 0; b < cal->n_bins; b++)
            if (cal->count[b] > max_count) max_count = cal->count[b];
        /* Lines through the non-empty bins (empty bins hold NaN and are skipped). */
        double xs[MAX_BINS], ys[MAX_BINS];
        int m = 0;
        for (int b = 0; b < cal->n_bins; b++)
            if (cal->count[b]) {
                xs[m] = cal->mean_prob[b];
                ys[m] = cal->frac_pos[b];
                m++;
            }
        cairo_set_source_rgb(c.cr, col[0], col[1], col[2]);
        cairo_set_line_width(c.cr, 2.0);
        polyline(c.cr, &f, xs, ys, (size_t)m);
        for (int b = 0; b < cal->n_bins; b++) {
            if (!cal->count[b]) continue;
            double r = 2.5 + 4.5 * sqrt((double)cal->count[b] / (double)max_count);
            cairo_arc(c.cr, px(&f, cal->mean_prob[b]), py(&f, cal->frac_pos[b]), r, 0, 2 * M_PI);
            cairo_set_source_rgb(c.cr, col[0], col[1], col[2]);
            cairo_fill_preserve(c.cr);
            cairo_set_source_rgb(c.cr, 1, 1, 1);
            cairo_set_line_width(c.cr, 1.0);
            cairo_stroke(c.cr);
        }
        ptrs[i] = legend_text(texts[i], sizeof texts[i], series[i].label, "ECE", series[i].ece);
    }
    legend(c.cr, &f, ptrs, n_series, 1, "perfect calibration");
    return canvas_close(&c, err);
}

/* Light-to-dark blue colour scale at t in [0, 1] (anchors chosen for even lightness steps). */
static void blue_scale(double t, double rgb[3]) {
    static const double anchors[][4] = {
        {0.00, 0.969, 0.984, 1.000}, {0.25, 0.776, 0.859, 0.937}, {0.50, 0.420, 0.682, 0.839},
        {0.75, 0.129, 0.443, 0.710}, {1.00, 0.031, 0.188, 0.420},
    };
    if (!(t >= 0)) t = 0;
    if (t > 1) t = 1;
    int k = 0;
    while (k < 3 && t > anchors[k + 1][0])
        k++;
    double u = (t - anchors[k][0]) / (anchors[k + 1][0] - anchors[k][0]);
    for (int j = 0; j < 3; j++)
        rgb[j] = anchors[k][j + 1] + u * (anchors[k + 1][j + 1] - anchors[k][j + 1]);
}

FmStatus fm_plot_heatmap(const char *path, const FmHeatmap *map, FmError *err) {
    int R = map->rows, C = map->cols;
    if (R < 1 || C < 1 || R > 256 || C > 256)
        return FM_FAIL(err, FM_ERR_ARG, path, "heatmap: %d x %d cells (1 to 256 each)", R, C);
    double vmin = map->vmin, vmax = map->vmax;
    if (isnan(vmin) || isnan(vmax)) {
        double lo = INFINITY, hi = -INFINITY;
        for (int i = 0; i < R * C; i++)
            if (isfinite(map->values[i])) {
                lo = fmin(lo, map->values[i]);
                hi = fmax(hi, map->values[i]);
            }
        if (!isfinite(lo)) lo = 0, hi = 1;
        if (isnan(vmin)) vmin = lo;
        if (isnan(vmax)) vmax = hi;
    }
    if (!(vmax > vmin)) { /* constant data: centre it on the scale */
        double v = vmin, half = v != 0 ? fabs(v) : 1;
        vmin = v - half;
        vmax = v + half;
    }

    /* Measure the labels on a scratch surface to lay the canvas out. */
    char num[32];
    cairo_surface_t *scratch = cairo_image_surface_create(CAIRO_FORMAT_ARGB32, 1, 1);
    cairo_t *m = cairo_create(scratch);
    const double label_size = 12;
    double row_w = 0, col_w = 0;
    for (int r = 0; r < R; r++) {
        snprintf(num, sizeof num, "%d", r);
        row_w = fmax(row_w, text_width(m, map->row_labels ? map->row_labels[r] : num, label_size));
    }
    for (int k = 0; k < C; k++) {
        snprintf(num, sizeof num, "%d", k);
        col_w = fmax(col_w, text_width(m, map->col_labels ? map->col_labels[k] : num, label_size));
    }
    cairo_destroy(m);
    cairo_surface_destroy(scratch);
    double cell = fmin(48.0, fmax(14.0, 520.0 / C));
    if (R * cell > 560) cell = fmax(10.0, 560.0 / R);
    int vertical_cols = col_w > cell - 4; /* column labels turned when they do not fit */
    double col_band = vertical_cols ? col_w + 10 : 22;
    double left = 20 + (map->y_label ? 24 : 0) + row_w + 10;
    double top = (map->title && map->title[0]) ? 44 : 16;
    double grid_w = C * cell, grid_h = R * cell;
    double bar_h = fmax(grid_h, 120);
    double width = left + grid_w + 24 + 16 + 60 + (map->value_label ? 24 : 0) + 10;
    double height = top + fmax(grid_h + col_band + (map->x_label ? 30 : 8), bar_h + 12) + 10;
    width = fmax(width, 320);

    Canvas c;
    FmStatus st = canvas_open(&c, path, width, height, err);
    if (st != FM_OK) return st;
    cairo_t *cr = c.cr;
    double x0 = left, y0 = top;
    for (int r = 0; r < R; r++)
        for (int k = 0; k < C; k++) {
            double v = map->values[r * C + k], rgb[3];
            if (isfinite(v))
                blue_scale((v - vmin) / (vmax - vmin), rgb);
            else
                rgb[0] = rgb[1] = rgb[2] = 0.82;
            cairo_set_source_rgb(cr, rgb[0], rgb[1], rgb[2]);
            cairo_rectangle(cr, x0 + k * cell, y0 + r * cell, cell, cell);
            cairo_fill(cr);
            if (map->annotate && cell >= 30 && isfinite(v)) {
                double t = (v - vmin) / (vmax - vmin);
                cairo_set_source_rgb(cr, t > 0.55 ? 1 : 0.1, t > 0.55 ? 1 : 0.1, t > 0.55 ? 1 : 0.1);
                snprintf(num, sizeof num, "%.2f", v);
                text_at(cr, x0 + (k + 0.5) * cell, y0 + (r + 0.5) * cell, num, fmin(11, cell * 0.3), 0.5, 0.5,
                        0);
            }
        }
    /* Thin white separators and a frame. */
    cairo_set_source_rgb(cr, 1, 1, 1);
    cairo_set_line_width(cr, cell >= 20 ? 1.0 : 0.5);
    for (int k = 1; k < C; k++) {
        cairo_move_to(cr, x0 + k * cell, y0);
        cairo_line_to(cr, x0 + k * cell, y0 + grid_h);
    }
    for (int r = 1; r < R; r++) {
        cairo_move_to(cr, x0, y0 + r * cell);
        cairo_line_to(cr, x0 + grid_w, y0 + r * cell);
    }
    cairo_stroke(cr);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 1.0);
    cairo_rectangle(cr, x0, y0, grid_w, grid_h);
    cairo_stroke(cr);
    /* Labels. */
    for (int r = 0; r < R; r++) {
        snprintf(num, sizeof num, "%d", r);
        text_at(cr, x0 - 8, y0 + (r + 0.5) * cell, map->row_labels ? map->row_labels[r] : num, label_size, 1,
                0.5, 0);
    }
    for (int k = 0; k < C; k++) {
        snprintf(num, sizeof num, "%d", k);
        const char *s = map->col_labels ? map->col_labels[k] : num;
        if (vertical_cols) {
            cairo_save(cr);
            cairo_translate(cr, x0 + (k + 0.5) * cell, y0 + grid_h + 6);
            cairo_rotate(cr, -M_PI / 2);
            text_at(cr, 0, 0, s, label_size, 1, 0.5, 0);
            cairo_restore(cr);
        } else {
            text_at(cr, x0 + (k + 0.5) * cell, y0 + grid_h + 6, s, label_size, 0.5, 0, 0);
        }
    }
    if (map->x_label) text_at(cr, x0 + grid_w / 2, y0 + grid_h + col_band + 6, map->x_label, 14, 0.5, 0, 0);
    if (map->y_label) text_vertical(cr, 20 + 8, y0 + grid_h / 2, map->y_label, 14);
    if (map->title && map->title[0]) text_at(cr, x0 + grid_w / 2, 14, map->title, 15, 0.5, 0, 1);
    /* Colour bar: a vertical gradient with three ticks. */
    double bx = x0 + grid_w + 24, by = y0, bw = 16;
    cairo_pattern_t *grad = cairo_pattern_create_linear(0, by + bar_h, 0, by);
    for (int s = 0; s <= 16; s++) {
        double rgb[3];
        blue_scale(s / 16.0, rgb);
        cairo_pattern_add_color_stop_rgb(grad, s / 16.0, rgb[0], rgb[1], rgb[2]);
    }
    cairo_rectangle(cr, bx, by, bw, bar_h);
    cairo_set_source(cr, grad);
    cairo_fill_preserve(cr);
    cairo_pattern_destroy(grad);
    cairo_set_source_rgb(cr, 0, 0, 0);
    cairo_set_line_width(cr, 0.8);
    cairo_stroke(cr);
    for (int t = 0; t <= 2; t++) {
        double v = vmin + 0.5 * t * (vmax - vmin), y = by + bar_h - 0.5 * t * bar_h;
        cairo_move_to(cr, bx + bw, y);
        cairo_line_to(cr, bx + bw + 4, y);
        cairo_stroke(cr);
        snprintf(num, sizeof num, "%.3g", v);
        text_at(cr, bx + bw + 7, y, num, 11, 0, 0.5, 0);
    }
    if (map->value_label) text_vertical(cr, bx + bw + 7 + 50 + 12, by + bar_h / 2, map->value_label, 12);
    return canvas_close(&c, err);
}

void fm_plot_release(void) {
    if (!g_drew) return;
    cairo_debug_reset_static_data();
    FcFini();
    g_drew = 0;
}
