#include "src/predictions_read.h"

#include <string.h>

#include "preprocessing/csv_stream.h"
#include "src/alloc.h"

typedef struct {
    const char *task;
    FmCsvColumns cols;
    int c_task, c_true, c_score;
    int match;        /* the row's task is the wanted one */
    float y, s;
    float *score, *label;
    size_t n, cap;
} Reader;

static FmStatus bad(const FmCsvPos *pos, const char *col, const char *s, FmError *err) {
    char where[600];
    return FM_FAIL(err, FM_ERR_FORMAT, fm_csv_where(pos, where, sizeof where), "column %s: expected a number, got \"%s\"",
                   col, s);
}

static FmStatus on_field(void *ctx, const FmCsvPos *pos, const char *s, size_t len, FmError *err) {
    Reader *r = ctx;
    if (pos->row == 0) return fm_csv_columns_header(&r->cols, pos, s, err);
    if (pos->col == 0) r->match = 0;
    double v;
    if (pos->col == r->cols.index[r->c_task]) {
        r->match = strcmp(s, r->task) == 0;
    } else if (pos->col == r->cols.index[r->c_true]) {
        if (fm_csv_parse_number(s, len, &v) != FM_CSV_NUM_OK) return bad(pos, "y_true", s, err);
        r->y = (float)v;
    } else if (pos->col == r->cols.index[r->c_score]) {
        if (fm_csv_parse_number(s, len, &v) != FM_CSV_NUM_OK) return bad(pos, "y_score", s, err);
        r->s = (float)v;
    }
    return FM_OK;
}

static FmStatus on_row(void *ctx, const FmCsvPos *pos, int n_fields, FmError *err) {
    Reader *r = ctx;
    (void)n_fields;
    if (pos->row == 0) return fm_csv_columns_check(&r->cols, pos, err);
    if (!r->match) return FM_OK;
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 1024;
        float *s = fm_realloc(r->score, cap * sizeof *s);
        if (s) r->score = s;
        float *l = s ? fm_realloc(r->label, cap * sizeof *l) : NULL;
        if (l) r->label = l;
        if (!s || !l) return FM_FAIL(err, FM_ERR_NOMEM, pos->label, "out of memory reading predictions");
        r->cap = cap;
    }
    r->score[r->n] = r->s;
    r->label[r->n] = r->y;
    r->n++;
    return FM_OK;
}

FmStatus fm_predictions_read(const char *const *paths, int n_paths, const char *task, float **score,
                             float **label, size_t *n, FmError *err) {
    Reader r;
    memset(&r, 0, sizeof r);
    r.task = task;
    FmCsvReader reader;
    fm_csv_reader_init(&reader);
    FmStatus st = FM_OK;
    for (int f = 0; f < n_paths && st == FM_OK; f++) {
        fm_csv_columns_init(&r.cols);
        r.c_task = fm_csv_columns_want(&r.cols, "task", 1);
        r.c_true = fm_csv_columns_want(&r.cols, "y_true", 1);
        r.c_score = fm_csv_columns_want(&r.cols, "y_score", 1);
        st = fm_csv_read_file(&reader, paths[f], paths[f], 0, on_field, on_row, &r, err);
    }
    fm_csv_reader_free(&reader);
    if (st == FM_OK && r.n == 0)
        st = FM_FAIL(err, FM_ERR_ARG, paths[0], "no predictions of task %s", task);
    if (st != FM_OK) {
        fm_free(r.score);
        fm_free(r.label);
        return st;
    }
    *score = r.score;
    *label = r.label;
    *n = r.n;
    return FM_OK;
}
