#include "preprocessing/labels.h"

#include <math.h>
#include <string.h>

#include "preprocessing/csv_stream.h"
#include "src/alloc.h"

FmLabelCsvOptions fm_label_csv_defaults(void) {
    return (FmLabelCsvOptions){"stay_id", "mortality", "los_days", "phe_", NULL, 0};
}

void fm_labels_init(FmLabelTable *t) {
    memset(t, 0, sizeof *t);
}

void fm_labels_free(FmLabelTable *t) {
    if (!t) return;
    fm_free(t->stay_id);
    fm_free(t->mortality);
    fm_free(t->los_days);
    fm_free(t->file);
    fm_free(t->line);
    for (int i = 0; i < t->n_files; i++)
        fm_free(t->files[i]);
    fm_free(t->files);
    for (int i = 0; i < t->n_extra; i++)
        fm_free(t->extra_name[i]);
    fm_free(t->extra_name);
    fm_free(t->extra_phenotype);
    fm_free(t->extra);
    fm_free(t->saps_i);
    fm_free(t->sofa);
    fm_id_index_free(&t->index);
    memset(t, 0, sizeof *t);
}

int32_t fm_labels_find(const FmLabelTable *t, int64_t id) {
    return fm_id_index_get(&t->index, id);
}

static FmStatus grow(FmLabelTable *t, FmError *err) {
    if (t->n < t->cap) return FM_OK;
    size_t cap = t->cap ? t->cap * 2 : 1024;
#define GROW(field)                                                                                          \
    do {                                                                                                     \
        void *p = fm_realloc(t->field, cap * sizeof *t->field);                                              \
        if (!p) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory reading labels");                     \
        t->field = p;                                                                                        \
    } while (0)
    GROW(stay_id);
    GROW(mortality);
    GROW(los_days);
    GROW(file);
    GROW(line);
    GROW(saps_i);
    GROW(sofa);
#undef GROW
    if (t->n_extra) {
        float *p = fm_realloc(t->extra, cap * (size_t)t->n_extra * sizeof *p);
        if (!p) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory reading labels");
        t->extra = p;
    }
    t->cap = cap;
    return FM_OK;
}

static FmStatus add_file(FmLabelTable *t, const char *path, FmError *err) {
    char **files = fm_realloc(t->files, (size_t)(t->n_files + 1) * sizeof *files);
    if (!files) return FM_FAIL(err, FM_ERR_NOMEM, path, "out of memory");
    t->files = files;
    if (!(t->files[t->n_files] = fm_strdup(path))) return FM_FAIL(err, FM_ERR_NOMEM, path, "out of memory");
    t->n_files++;
    return FM_OK;
}

/* Commits the current row (already written at index t->n) after the duplicate check. */
static FmStatus commit_row(FmLabelTable *t, const FmCsvPos *pos, FmError *err) {
    int32_t existing;
    FmStatus st = fm_id_index_put(&t->index, t->stay_id[t->n], (int32_t)t->n, &existing, err);
    if (st != FM_OK) return st;
    if (existing >= 0) {
        char where[600];
        return FM_FAIL(err, FM_ERR_FORMAT, fm_csv_where(pos, where, sizeof where),
                       "stay %lld already has a row (%s:%lld)", (long long)t->stay_id[t->n],
                       t->files[t->file[existing]], (long long)t->line[existing]);
    }
    t->n++;
    return FM_OK;
}

static FmStatus bad_number(const FmCsvPos *pos, const char *col, const char *what, const char *s,
                           FmError *err) {
    char where[600];
    return FM_FAIL(err, FM_ERR_FORMAT, fm_csv_where(pos, where, sizeof where),
                   "column %s: expected %s, got \"%s\"", col, what, s);
}

/* ---- P12 outcomes ---- */

typedef struct {
    FmLabelTable *t;
    FmCsvColumns cols;
    int c_id, c_los, c_death, c_saps, c_sofa;
    int header_fields;
    int got_id;
} P12Out;

/* An admission score: a number, -1 (or empty) = unknown, any other negative value an error. */
static FmStatus parse_score(const FmCsvPos *pos, const char *col, const char *s, size_t len, float *out,
                            FmError *err) {
    double v;
    int rc = fm_csv_parse_number(s, len, &v);
    if (rc == FM_CSV_NUM_BAD || (rc == FM_CSV_NUM_OK && v < 0 && v != -1))
        return bad_number(pos, col, "a score (-1 = unknown)", s, err);
    *out = rc == FM_CSV_NUM_OK && v >= 0 ? (float)v : NAN;
    return FM_OK;
}

static FmStatus p12_field(void *ctx, const FmCsvPos *pos, const char *s, size_t len, FmError *err) {
    P12Out *r = ctx;
    FmLabelTable *t = r->t;
    if (pos->row == 0) return fm_csv_columns_header(&r->cols, pos, s, err);
    if (pos->col == 0) {
        FmStatus st = grow(t, err);
        if (st != FM_OK) return st;
        t->mortality[t->n] = t->los_days[t->n] = t->saps_i[t->n] = t->sofa[t->n] = NAN;
        t->file[t->n] = t->n_files - 1;
        t->line[t->n] = pos->line;
        r->got_id = 0;
    }
    if (pos->col == r->cols.index[r->c_id]) {
        if (fm_csv_parse_int64(s, len, &t->stay_id[t->n]) != FM_CSV_NUM_OK)
            return bad_number(pos, "RecordID", "an integer stay id", s, err);
        r->got_id = 1;
    } else if (pos->col == r->cols.index[r->c_death]) {
        double v;
        if (fm_csv_parse_number(s, len, &v) != FM_CSV_NUM_OK || (v != 0 && v != 1))
            return bad_number(pos, "In-hospital_death", "0 or 1", s, err);
        t->mortality[t->n] = (float)v;
    } else if (pos->col == r->cols.index[r->c_los]) {
        double v;
        int rc = fm_csv_parse_number(s, len, &v);
        if (rc == FM_CSV_NUM_BAD || (rc == FM_CSV_NUM_OK && v < 0 && v != -1))
            return bad_number(pos, "Length_of_stay", "a number of days (-1 = unknown)", s, err);
        t->los_days[t->n] = rc == FM_CSV_NUM_OK && v >= 0 ? (float)v : NAN;
    } else if (pos->col == r->cols.index[r->c_saps]) {
        return parse_score(pos, "SAPS-I", s, len, &t->saps_i[t->n], err);
    } else if (pos->col == r->cols.index[r->c_sofa]) {
        return parse_score(pos, "SOFA", s, len, &t->sofa[t->n], err);
    }
    return FM_OK;
}

static FmStatus p12_row(void *ctx, const FmCsvPos *pos, int n_fields, FmError *err) {
    P12Out *r = ctx;
    char where[600];
    if (pos->row == 0) {
        r->header_fields = n_fields;
        return fm_csv_columns_check(&r->cols, pos, err);
    }
    if (n_fields != r->header_fields)
        return FM_FAIL(err, FM_ERR_FORMAT, fm_csv_where(pos, where, sizeof where),
                       "expected %d fields (as in the header), got %d", r->header_fields, n_fields);
    return commit_row(r->t, pos, err);
}

FmStatus fm_labels_read_p12_outcomes(FmLabelTable *t, const char *path, FmError *err) {
    FmStatus st = add_file(t, path, err);
    if (st != FM_OK) return st;
    P12Out r;
    memset(&r, 0, sizeof r);
    r.t = t;
    fm_csv_columns_init(&r.cols);
    r.c_id = fm_csv_columns_want(&r.cols, "RecordID", 1);
    r.c_los = fm_csv_columns_want(&r.cols, "Length_of_stay", 1);
    r.c_death = fm_csv_columns_want(&r.cols, "In-hospital_death", 1);
    r.c_saps = fm_csv_columns_want(&r.cols, "SAPS-I", 0);
    r.c_sofa = fm_csv_columns_want(&r.cols, "SOFA", 0);
    FmCsvReader reader;
    fm_csv_reader_init(&reader);
    st = fm_csv_read_file(&reader, path, path, 0, p12_field, p12_row, &r, err);
    fm_csv_reader_free(&reader);
    return st;
}

/* ---- labels CSV ---- */

typedef struct {
    FmLabelTable *t;
    const FmLabelCsvOptions *opt;
    FmCsvColumns cols;
    int c_id, c_mort, c_los;
    int header_fields;
    int *extra_of_col; /* (header fields) extra column index, or -1 */
    int first_file;
    int n_header_extra;  /* extras found in this file's header */
    char **header_names; /* (header fields) this file's header, for extras */
    int cap_header;
} CsvLabels;

static int ignored(const FmLabelCsvOptions *opt, const char *name) {
    for (int i = 0; i < opt->n_ignore; i++)
        if (strcmp(opt->ignore[i], name) == 0) return 1;
    return 0;
}

static FmStatus csv_header_field(CsvLabels *r, const FmCsvPos *pos, const char *s, FmError *err) {
    FmStatus st = fm_csv_columns_header(&r->cols, pos, s, err);
    if (st != FM_OK) return st;
    if (pos->col >= r->cap_header) {
        int cap = r->cap_header ? r->cap_header * 2 : 16;
        char **names = fm_realloc(r->header_names, (size_t)cap * sizeof *names);
        if (!names) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory reading labels");
        memset(names + r->cap_header, 0, (size_t)(cap - r->cap_header) * sizeof *names);
        r->header_names = names;
        r->cap_header = cap;
    }
    if (!(r->header_names[pos->col] = fm_strdup(s)))
        return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory reading labels");
    return FM_OK;
}

/* After the header: decide which columns are extra labels; the first file defines them, later
 * files must have the same set. */
static FmStatus csv_header_done(CsvLabels *r, const FmCsvPos *pos, int n_fields, FmError *err) {
    FmStatus st = fm_csv_columns_check(&r->cols, pos, err);
    if (st != FM_OK) return st;
    FmLabelTable *t = r->t;
    char where[600];
    fm_csv_where(pos, where, sizeof where);
    r->header_fields = n_fields;
    r->extra_of_col = fm_malloc_array((size_t)n_fields, sizeof *r->extra_of_col);
    if (!r->extra_of_col) return FM_FAIL(err, FM_ERR_NOMEM, where, "out of memory reading labels");
    int found = 0;
    for (int col = 0; col < n_fields; col++) {
        r->extra_of_col[col] = -1;
        const char *name = r->header_names[col];
        if (col == r->cols.index[r->c_id] || col == r->cols.index[r->c_mort] ||
            col == r->cols.index[r->c_los] || ignored(r->opt, name))
            continue;
        if (!*name) return FM_FAIL(err, FM_ERR_FORMAT, where, "column %d has an empty name", col + 1);
        if (r->first_file) {
            char **names = fm_realloc(t->extra_name, (size_t)(t->n_extra + 1) * sizeof *names);
            if (!names) return FM_FAIL(err, FM_ERR_NOMEM, where, "out of memory reading labels");
            t->extra_name = names;
            uint8_t *ph = fm_realloc(t->extra_phenotype, (size_t)(t->n_extra + 1));
            if (!ph) return FM_FAIL(err, FM_ERR_NOMEM, where, "out of memory reading labels");
            t->extra_phenotype = ph;
            if (!(t->extra_name[t->n_extra] = fm_strdup(name)))
                return FM_FAIL(err, FM_ERR_NOMEM, where, "out of memory reading labels");
            const char *pre = r->opt->phenotype_prefix;
            t->extra_phenotype[t->n_extra] = pre && *pre && strncmp(name, pre, strlen(pre)) == 0;
            r->extra_of_col[col] = t->n_extra++;
        } else {
            int k = -1;
            for (int i = 0; i < t->n_extra; i++)
                if (strcmp(t->extra_name[i], name) == 0) k = i;
            if (k < 0)
                return FM_FAIL(err, FM_ERR_FORMAT, where, "column '%s' is not in the first labels file %s",
                               name, t->files[0]);
            r->extra_of_col[col] = k;
        }
        found++;
    }
    if (!r->first_file && found != t->n_extra)
        return FM_FAIL(err, FM_ERR_FORMAT, where,
                       "has %d further label columns, the first labels file %s has %d", found, t->files[0],
                       t->n_extra);
    return FM_OK;
}

static FmStatus csv_field(void *ctx, const FmCsvPos *pos, const char *s, size_t len, FmError *err) {
    CsvLabels *r = ctx;
    FmLabelTable *t = r->t;
    if (pos->row == 0) return csv_header_field(r, pos, s, err);
    if (pos->col == 0) {
        FmStatus st = grow(t, err);
        if (st != FM_OK) return st;
        t->mortality[t->n] = t->los_days[t->n] = t->saps_i[t->n] = t->sofa[t->n] = NAN;
        for (int k = 0; k < t->n_extra; k++)
            t->extra[t->n * (size_t)t->n_extra + (size_t)k] = NAN;
        t->file[t->n] = t->n_files - 1;
        t->line[t->n] = pos->line;
    }
    if (pos->col >= r->header_fields) return FM_OK; /* reported by the row check */
    const FmLabelCsvOptions *o = r->opt;
    if (pos->col == r->cols.index[r->c_id]) {
        if (fm_csv_parse_int64(s, len, &t->stay_id[t->n]) != FM_CSV_NUM_OK)
            return bad_number(pos, o->id_col, "an integer stay id", s, err);
    } else if (pos->col == r->cols.index[r->c_mort]) {
        double v;
        int rc = fm_csv_parse_number(s, len, &v);
        if (rc == FM_CSV_NUM_BAD || (rc == FM_CSV_NUM_OK && v != 0 && v != 1))
            return bad_number(pos, o->mortality_col, "0, 1 or empty", s, err);
        t->mortality[t->n] = (float)v;
    } else if (pos->col == r->cols.index[r->c_los]) {
        double v;
        int rc = fm_csv_parse_number(s, len, &v);
        if (rc == FM_CSV_NUM_BAD || (rc == FM_CSV_NUM_OK && v < 0 && v != -1))
            return bad_number(pos, o->los_col, "a number of days, -1 or empty", s, err);
        t->los_days[t->n] = rc == FM_CSV_NUM_OK && v >= 0 ? (float)v : NAN;
    } else if (r->extra_of_col[pos->col] >= 0) {
        double v;
        int rc = fm_csv_parse_number(s, len, &v);
        if (rc == FM_CSV_NUM_BAD || (rc == FM_CSV_NUM_OK && v != 0 && v != 1)) {
            char where[600];
            return FM_FAIL(
                err, FM_ERR_FORMAT, fm_csv_where(pos, where, sizeof where),
                "column %s: expected 0, 1 or empty, got \"%s\" (further columns are binary labels; "
                "list columns that are not labels with --ignore-label-cols)",
                r->header_names[pos->col], s);
        }
        t->extra[t->n * (size_t)t->n_extra + (size_t)r->extra_of_col[pos->col]] = (float)v;
    }
    return FM_OK;
}

static FmStatus csv_row(void *ctx, const FmCsvPos *pos, int n_fields, FmError *err) {
    CsvLabels *r = ctx;
    if (pos->row == 0) return csv_header_done(r, pos, n_fields, err);
    if (n_fields != r->header_fields) {
        char where[600];
        return FM_FAIL(err, FM_ERR_FORMAT, fm_csv_where(pos, where, sizeof where),
                       "expected %d fields (as in the header), got %d", r->header_fields, n_fields);
    }
    return commit_row(r->t, pos, err);
}

FmStatus fm_labels_read_csv(FmLabelTable *t, const char *path, const FmLabelCsvOptions *opt, FmError *err) {
    int first = t->n_files == 0;
    FmStatus st = add_file(t, path, err);
    if (st != FM_OK) return st;
    CsvLabels r;
    memset(&r, 0, sizeof r);
    r.t = t;
    r.opt = opt;
    r.first_file = first;
    fm_csv_columns_init(&r.cols);
    r.c_id = fm_csv_columns_want(&r.cols, opt->id_col, 1);
    r.c_mort = fm_csv_columns_want(&r.cols, opt->mortality_col, 1);
    r.c_los = fm_csv_columns_want(&r.cols, opt->los_col, 1);
    FmCsvReader reader;
    fm_csv_reader_init(&reader);
    st = fm_csv_read_file(&reader, path, path, 0, csv_field, csv_row, &r, err);
    fm_csv_reader_free(&reader);
    fm_free(r.extra_of_col);
    for (int i = 0; i < r.cap_header; i++)
        fm_free(r.header_names[i]);
    fm_free(r.header_names);
    return st;
}
