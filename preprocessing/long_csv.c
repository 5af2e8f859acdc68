#include "preprocessing/long_csv.h"

#include <string.h>

#include "preprocessing/csv_stream.h"
#include "src/alloc.h"

FmLongCsvOptions fm_long_csv_defaults(void) {
    return (FmLongCsvOptions){"stay_id", "time_h", "variable", "value"};
}

typedef struct {
    const FmLongCsvOptions *opt;
    FmCohortBuilder *b;
    const FmLabelTable *labels;
    FmCsvColumns cols;
    int c_id, c_time, c_var, c_value;
    int header_fields;
    /* current row */
    int64_t id;
    double time_h, value;
    int entry, static_only;
    char var[128];
    size_t var_len;
    /* collected */
    FmRawObs *obs;
    int32_t *row_of; /* (n) label row of each observation */
    size_t n, cap;
    int64_t *n_raw_series; /* (labels->n) */
    int64_t *first_line;   /* (labels->n) */
} LongReader;

static FmStatus bad(const FmCsvPos *pos, const char *col, const char *what, const char *s, FmError *err) {
    char where[600];
    return FM_FAIL(err, FM_ERR_FORMAT, fm_csv_where(pos, where, sizeof where),
                   "column %s: expected %s, got \"%s\"", col, what, s);
}

static FmStatus on_field(void *ctx, const FmCsvPos *pos, const char *s, size_t len, FmError *err) {
    LongReader *r = ctx;
    if (pos->row == 0) return fm_csv_columns_header(&r->cols, pos, s, err);
    int col = pos->col;
    if (col == r->cols.index[r->c_id]) {
        if (fm_csv_parse_int64(s, len, &r->id) != FM_CSV_NUM_OK)
            return bad(pos, r->opt->id_col, "an integer stay id", s, err);
    } else if (col == r->cols.index[r->c_time]) {
        if (fm_csv_parse_number(s, len, &r->time_h) != FM_CSV_NUM_OK)
            return bad(pos, r->opt->time_col, "a number of hours", s, err);
    } else if (col == r->cols.index[r->c_var]) {
        while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
            len--;
        while (len && (*s == ' ' || *s == '\t'))
            s++, len--;
        if (len == 0) return bad(pos, r->opt->var_col, "a variable name", s, err);
        if (len >= sizeof r->var) len = sizeof r->var - 1;
        memcpy(r->var, s, len);
        r->var[len] = '\0';
        r->var_len = len;
    } else if (col == r->cols.index[r->c_value]) {
        if (fm_csv_parse_number(s, len, &r->value) == FM_CSV_NUM_BAD)
            return bad(pos, r->opt->value_col, "a number", s, err);
    }
    return FM_OK;
}

static FmStatus on_row(void *ctx, const FmCsvPos *pos, int n_fields, FmError *err) {
    LongReader *r = ctx;
    char where[600];
    if (pos->row == 0) {
        r->header_fields = n_fields;
        return fm_csv_columns_check(&r->cols, pos, err);
    }
    r->b->rep->lines_read++;
    if (n_fields != r->header_fields)
        return FM_FAIL(err, FM_ERR_FORMAT, fm_csv_where(pos, where, sizeof where),
                       "expected %d fields (as in the header), got %d", r->header_fields, n_fields);
    int32_t row = fm_labels_find(r->labels, r->id);
    if (row < 0)
        return FM_FAIL(err, FM_ERR_FORMAT, fm_csv_where(pos, where, sizeof where),
                       "stay %lld has no row in the labels file", (long long)r->id);
    if (r->first_line[row] == 0) r->first_line[row] = pos->line;
    int se, st;
    fm_var_map_lookup(r->b->map, r->var, r->var_len, &se, &st);
    if (se >= 0 || st < 0) r->n_raw_series[row]++; /* static-only variables are descriptors */
    int entry = se >= 0 ? se : st;
    if (entry < 0) return fm_report_unmapped(r->b->rep, r->var, r->var_len, err);
    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 65536;
        FmRawObs *o = fm_realloc(r->obs, cap * sizeof *o);
        if (!o) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory reading observations");
        r->obs = o;
        int32_t *w = fm_realloc(r->row_of, cap * sizeof *w);
        if (!w) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory reading observations");
        r->row_of = w;
        r->cap = cap;
    }
    r->obs[r->n] = (FmRawObs){entry, 0, (float)r->time_h, (float)r->value};
    r->row_of[r->n++] = row;
    return FM_OK;
}

FmStatus fm_long_csv_read(const char *path, const FmLongCsvOptions *opt, FmCohortBuilder *b,
                          const FmLabelTable *labels, uint8_t *label_used, FmError *err) {
    LongReader r;
    memset(&r, 0, sizeof r);
    r.opt = opt;
    r.b = b;
    r.labels = labels;
    fm_csv_columns_init(&r.cols);
    r.c_id = fm_csv_columns_want(&r.cols, opt->id_col, 1);
    r.c_time = fm_csv_columns_want(&r.cols, opt->time_col, 1);
    r.c_var = fm_csv_columns_want(&r.cols, opt->var_col, 1);
    r.c_value = fm_csv_columns_want(&r.cols, opt->value_col, 1);
    size_t nl = labels->n ? labels->n : 1;
    r.n_raw_series = fm_calloc(nl, sizeof *r.n_raw_series);
    r.first_line = fm_calloc(nl, sizeof *r.first_line);
    int64_t *start = fm_calloc(nl + 1, sizeof *start);
    FmRawObs *grouped = NULL;
    FmStatus st = FM_OK;
    if (!r.n_raw_series || !r.first_line || !start) st = FM_FAIL(err, FM_ERR_NOMEM, path, "out of memory");
    if (st == FM_OK) {
        FmCsvReader reader;
        fm_csv_reader_init(&reader);
        st = fm_csv_read_file(&reader, path, path, 0, on_field, on_row, &r, err);
        fm_csv_reader_free(&reader);
    }
    /* Group by labels row: counting sort, stable. */
    if (st == FM_OK) {
        grouped = fm_malloc_array(r.n ? r.n : 1, sizeof *grouped);
        if (!grouped) st = FM_FAIL(err, FM_ERR_NOMEM, path, "out of memory grouping observations");
    }
    if (st == FM_OK) {
        for (size_t i = 0; i < r.n; i++)
            start[r.row_of[i] + 1]++;
        for (size_t k = 0; k < labels->n; k++)
            start[k + 1] += start[k];
        /* Place each observation with a moving cursor per labels row. */
        int64_t *cursor = fm_malloc_array(nl + 1, sizeof *cursor);
        if (!cursor) {
            st = FM_FAIL(err, FM_ERR_NOMEM, path, "out of memory grouping observations");
        } else {
            memcpy(cursor, start, (nl + 1) * sizeof *cursor);
            for (size_t i = 0; i < r.n; i++)
                grouped[cursor[r.row_of[i]]++] = r.obs[i];
            fm_free(cursor);
        }
    }
    fm_free(r.obs);
    fm_free(r.row_of);
    for (size_t k = 0; st == FM_OK && k < labels->n; k++) {
        char where[600];
        if (r.first_line[k])
            snprintf(where, sizeof where, "%s:%lld", path, (long long)r.first_line[k]);
        else
            snprintf(where, sizeof where, "%s", path);
        int kept;
        label_used[k] = 1;
        b->rep->records_read++;
        st = fm_cohort_builder_add_stay(b, labels->stay_id[k], (int32_t)k, grouped + start[k],
                                        (size_t)(start[k + 1] - start[k]), (size_t)r.n_raw_series[k], where,
                                        &kept, err);
    }
    fm_free(grouped);
    fm_free(start);
    fm_free(r.n_raw_series);
    fm_free(r.first_line);
    return st;
}
