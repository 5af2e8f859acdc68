#include "preprocessing/p12.h"

#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "preprocessing/csv_stream.h"
#include "src/alloc.h"

/* The general descriptors of a P12 record, recorded at 00:00. */
static const char *const DESCRIPTORS[] = {"Age", "Gender", "Height", "ICUType", "Weight"};
#define N_DESCRIPTORS 5

typedef struct {
    FmCohortBuilder *b;
    const FmVarMap *map;
    FmPrepareReport *rep;
    FmCsvColumns cols;
    int c_time, c_param, c_value;
    int header_fields;
    /* current row */
    double time_h;
    int entry, is_descriptor, is_record_id, unmapped;
    char param[128];
    size_t param_len;
    double value;
    /* current record */
    int64_t record_id;
    int has_id;
    unsigned seen_descriptor; /* bit d: descriptor d already read */
    FmRawObs *obs;
    size_t n_obs, cap_obs, n_unmapped, n_raw_series;
} Record;

static FmStatus fail_at(const FmCsvPos *pos, FmError *err, const char *fmt, const char *a, const char *s) {
    char where[600];
    return FM_FAIL(err, FM_ERR_FORMAT, fm_csv_where(pos, where, sizeof where), fmt, a, s);
}

static FmStatus on_field(void *ctx, const FmCsvPos *pos, const char *s, size_t len, FmError *err) {
    Record *r = ctx;
    if (pos->row == 0) return fm_csv_columns_header(&r->cols, pos, s, err);
    int col = pos->col;
    if (col == r->cols.index[r->c_time]) {
        if (fm_csv_parse_hhmm(s, len, &r->time_h) != FM_CSV_NUM_OK)
            return fail_at(pos, err, "column %s: expected a time HH:MM, got \"%s\"", "Time", s);
    } else if (col == r->cols.index[r->c_param]) {
        while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
            len--;
        while (len && (*s == ' ' || *s == '\t'))
            s++, len--;
        if (len == 0) return fail_at(pos, err, "column %s: empty variable name%s", "Parameter", "");
        if (len >= sizeof r->param) len = sizeof r->param - 1;
        memcpy(r->param, s, len);
        r->param[len] = '\0';
        r->param_len = len;
    } else if (col == r->cols.index[r->c_value]) {
        if (fm_csv_parse_number(s, len, &r->value) == FM_CSV_NUM_BAD)
            return fail_at(pos, err, "column %s: expected a number, got \"%s\"", "Value", s);
    }
    return FM_OK;
}

static FmStatus push_obs(Record *r, FmError *err) {
    if (r->n_obs == r->cap_obs) {
        size_t cap = r->cap_obs ? r->cap_obs * 2 : 2048;
        FmRawObs *p = fm_realloc(r->obs, cap * sizeof *p);
        if (!p) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory reading records");
        r->obs = p;
        r->cap_obs = cap;
    }
    r->obs[r->n_obs++] = (FmRawObs){r->entry, (uint8_t)r->is_descriptor, (float)r->time_h, (float)r->value};
    return FM_OK;
}

static FmStatus on_row(void *ctx, const FmCsvPos *pos, int n_fields, FmError *err) {
    Record *r = ctx;
    char where[600];
    if (pos->row == 0) {
        r->header_fields = n_fields;
        return fm_csv_columns_check(&r->cols, pos, err);
    }
    r->rep->lines_read++;
    if (n_fields != r->header_fields)
        return FM_FAIL(err, FM_ERR_FORMAT, fm_csv_where(pos, where, sizeof where),
                       "expected %d fields (as in the header), got %d", r->header_fields, n_fields);
    const char *p = r->param;
    if (strcmp(p, "RecordID") == 0) {
        if (isnan(r->value) || r->value != floor(r->value) || fabs(r->value) > 9e15)
            return FM_FAIL(err, FM_ERR_FORMAT, fm_csv_where(pos, where, sizeof where),
                           "column Value: RecordID must be an integer");
        int64_t id = (int64_t)r->value;
        if (r->has_id && id != r->record_id)
            return FM_FAIL(err, FM_ERR_FORMAT, fm_csv_where(pos, where, sizeof where),
                           "a second RecordID (%lld, first %lld)", (long long)id, (long long)r->record_id);
        r->record_id = id;
        r->has_id = 1;
        return FM_OK;
    }
    int desc = -1;
    if (r->time_h == 0.0)
        for (int d = 0; d < N_DESCRIPTORS; d++)
            if (!(r->seen_descriptor & (1u << d)) && strcmp(p, DESCRIPTORS[d]) == 0) desc = d;
    int se, st_entry;
    fm_var_map_lookup(r->map, p, r->param_len, &se, &st_entry);
    if (desc >= 0) {
        r->seen_descriptor |= 1u << desc;
        r->is_descriptor = 1;
        r->entry = st_entry >= 0 ? st_entry : se;
    } else {
        r->is_descriptor = 0;
        r->n_raw_series++;
        r->entry = se >= 0 ? se : st_entry;
    }
    if (r->entry < 0) {
        r->n_unmapped++;
        return fm_report_unmapped(r->rep, p, r->param_len, err);
    }
    return push_obs(r, err);
}

static int cmp_names(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static void free_names(char **names, size_t n) {
    for (size_t i = 0; i < n; i++)
        fm_free(names[i]);
    fm_free(names);
}

/* Lists the *.txt files of dir, sorted by name. */
static FmStatus list_records(const char *dir, char ***names, size_t *n, FmError *err) {
    *names = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) return FM_FAIL(err, FM_ERR_IO, dir, "cannot open record folder: %s", strerror(errno));
    size_t cap = 0, count = 0;
    char **list = NULL;
    FmStatus st = FM_OK;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (len < 5 || strcmp(e->d_name + len - 4, ".txt") != 0) continue;
        size_t digits = 0;
        while (digits < len - 4 && e->d_name[digits] >= '0' && e->d_name[digits] <= '9')
            digits++;
        if (digits != len - 4) continue; /* records are <RecordID>.txt; skip anything else */
        if (count == cap) {
            cap = cap ? cap * 2 : 1024;
            char **p = fm_realloc(list, cap * sizeof *p);
            if (!p) {
                st = FM_FAIL(err, FM_ERR_NOMEM, dir, "out of memory listing records");
                break;
            }
            list = p;
        }
        if (!(list[count] = fm_strdup(e->d_name))) {
            st = FM_FAIL(err, FM_ERR_NOMEM, dir, "out of memory listing records");
            break;
        }
        count++;
    }
    closedir(d);
    if (st != FM_OK) {
        free_names(list, count);
        return st;
    }
    if (count == 0) {
        fm_free(list);
        return FM_FAIL(err, FM_ERR_FORMAT, dir, "no record files (<RecordID>.txt) in this folder");
    }
    qsort(list, count, sizeof *list, cmp_names);
    *names = list;
    *n = count;
    return FM_OK;
}

FmStatus fm_p12_read_dir(const char *dir, FmCohortBuilder *b, const FmLabelTable *labels, uint8_t *label_used,
                         FmError *err) {
    char **names;
    size_t n_names;
    FmStatus st = list_records(dir, &names, &n_names, err);
    if (st != FM_OK) return st;
    Record r;
    memset(&r, 0, sizeof r);
    r.b = b;
    r.map = b->map;
    r.rep = b->rep;
    FmCsvReader reader;
    fm_csv_reader_init(&reader);
    size_t dlen = strlen(dir);
    while (dlen > 1 && dir[dlen - 1] == '/')
        dlen--;
    for (size_t i = 0; i < n_names && st == FM_OK; i++) {
        char path[4352];
        snprintf(path, sizeof path, "%.*s/%s", (int)dlen, dir, names[i]);
        fm_csv_columns_init(&r.cols);
        r.c_time = fm_csv_columns_want(&r.cols, "Time", 1);
        r.c_param = fm_csv_columns_want(&r.cols, "Parameter", 1);
        r.c_value = fm_csv_columns_want(&r.cols, "Value", 1);
        r.n_obs = r.n_unmapped = r.n_raw_series = 0;
        r.has_id = 0;
        r.seen_descriptor = 0;
        st = fm_csv_read_file(&reader, path, path, 0, on_field, on_row, &r, err);
        if (st != FM_OK) break;
        b->rep->records_read++;
        if (!r.has_id) {
            st = FM_FAIL(err, FM_ERR_FORMAT, path, "no RecordID line");
            break;
        }
        /* The file name is the RecordID. */
        long long from_name = strtoll(names[i], NULL, 10);
        if (from_name != r.record_id) {
            st = FM_FAIL(err, FM_ERR_FORMAT, path, "RecordID %lld does not match the file name",
                         (long long)r.record_id);
            break;
        }
        int32_t row = fm_labels_find(labels, r.record_id);
        if (row < 0) {
            st = FM_FAIL(err, FM_ERR_FORMAT, path, "record %lld has no row in the outcome files",
                         (long long)r.record_id);
            break;
        }
        label_used[row] = 1;
        int kept;
        st =
            fm_cohort_builder_add_stay(b, r.record_id, row, r.obs, r.n_obs, r.n_raw_series, path, &kept, err);
    }
    fm_csv_reader_free(&reader);
    fm_free(r.obs);
    free_names(names, n_names);
    return st;
}
