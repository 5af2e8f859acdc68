#include "preprocessing/splits.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "preprocessing/csv_stream.h"
#include "preprocessing/id_index.h"
#include "src/alloc.h"
#include "src/rng.h"

void fm_splits_free(FmCohortSplit *splits, int n_splits) {
    if (!splits) return;
    for (int s = 0; s < n_splits; s++) {
        fm_free(splits[s].name);
        fm_free(splits[s].part);
        fm_norm_free(&splits[s].norm);
    }
    fm_free(splits);
}

FmStatus fm_splits_parse(const char *text, FmSplitSpec *spec, FmError *err) {
    memset(spec, 0, sizeof *spec);
    spec->frac[0] = 0.8;
    spec->frac[1] = 0.1;
    spec->frac[2] = 0.1;
    const char *colon = strchr(text, ':');
    if (!colon)
        return FM_FAIL(err, FM_ERR_ARG, NULL, "--splits %s: expected repeated:N[:TR,VA,TE] or kfold:K", text);
    size_t klen = (size_t)(colon - text);
    char *end;
    long n = strtol(colon + 1, &end, 10);
    if (klen == 8 && strncmp(text, "repeated", 8) == 0) {
        spec->kind = FM_SPLITS_REPEATED;
        if (end == colon + 1 || n < 1 || n > 1000)
            return FM_FAIL(err, FM_ERR_ARG, NULL, "--splits %s: the number of repeats must be 1..1000", text);
        if (*end == ':') {
            double f[3];
            char *p = end + 1;
            for (int i = 0; i < 3; i++) {
                f[i] = strtod(p, &end);
                if (end == p || (i < 2 && *end != ',') || (i == 2 && *end) || !(f[i] >= 0 && f[i] <= 1))
                    return FM_FAIL(err, FM_ERR_ARG, NULL, "--splits %s: expected three fractions TR,VA,TE",
                                   text);
                p = end + 1;
            }
            if (fabs(f[0] + f[1] + f[2] - 1.0) > 1e-6 || f[0] <= 0)
                return FM_FAIL(err, FM_ERR_ARG, NULL,
                               "--splits %s: fractions must sum to 1 with a training part", text);
            memcpy(spec->frac, f, sizeof f);
        } else if (*end) {
            return FM_FAIL(err, FM_ERR_ARG, NULL, "--splits %s: expected repeated:N[:TR,VA,TE]", text);
        }
    } else if (klen == 5 && strncmp(text, "kfold", 5) == 0) {
        spec->kind = FM_SPLITS_KFOLD;
        if (end == colon + 1 || *end || n < 3 || n > 1000)
            return FM_FAIL(err, FM_ERR_ARG, NULL, "--splits %s: kfold needs 3..1000 folds", text);
    } else {
        return FM_FAIL(err, FM_ERR_ARG, NULL, "--splits %s: expected repeated:N[:TR,VA,TE] or kfold:K", text);
    }
    spec->n = (int)n;
    return FM_OK;
}

void fm_splits_describe(const FmSplitSpec *spec, char *buf, size_t cap) {
    switch (spec->kind) {
    case FM_SPLITS_REPEATED:
        snprintf(buf, cap, "repeated:%d:%g,%g,%g", spec->n, spec->frac[0], spec->frac[1], spec->frac[2]);
        break;
    case FM_SPLITS_KFOLD: snprintf(buf, cap, "kfold:%d", spec->n); break;
    case FM_SPLITS_FILE: snprintf(buf, cap, "file:%s", spec->path); break;
    }
}

static FmStatus alloc_splits(int n, int64_t N, const char *prefix, FmCohortSplit **out, FmError *err) {
    FmCohortSplit *s = fm_calloc((size_t)n, sizeof *s);
    if (!s) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory for splits");
    for (int k = 0; k < n; k++) {
        char name[64];
        snprintf(name, sizeof name, "%s%d", prefix, k);
        s[k].name = fm_strdup(name);
        s[k].part = fm_malloc((size_t)(N ? N : 1));
        if (!s[k].name || !s[k].part) {
            fm_splits_free(s, n);
            return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory for splits");
        }
        memset(s[k].part, FM_PART_NONE, (size_t)(N ? N : 1));
    }
    *out = s;
    return FM_OK;
}

FmStatus fm_splits_make(const FmSplitSpec *spec, uint64_t seed, int64_t N, const uint8_t *stratum,
                        FmCohortSplit **splits, int *n_splits, FmError *err) {
    FM_ASSERT(spec->kind != FM_SPLITS_FILE);
    *splits = NULL;
    *n_splits = 0;
    FmCohortSplit *s = NULL;
    FmStatus st = alloc_splits(spec->n, N, spec->kind == FM_SPLITS_KFOLD ? "fold" : "repeat", &s, err);
    if (st != FM_OK) return st;
    size_t *idx = fm_malloc_array((size_t)(N ? N : 1), sizeof *idx);
    if (!idx) {
        fm_splits_free(s, spec->n);
        return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory for splits");
    }
    FmRng base;
    fm_rng_seed(&base, seed);
    if (spec->kind == FM_SPLITS_REPEATED) {
        for (int r = 0; r < spec->n; r++) {
            FmRng rng = fm_rng_split(&base, (uint64_t)r);
            for (uint8_t g = 0; g < 3; g++) {
                size_t n = 0;
                for (int64_t i = 0; i < N; i++)
                    if (stratum[i] == g) idx[n++] = (size_t)i;
                fm_rng_shuffle(&rng, idx, n);
                size_t n_val = (size_t)llround(spec->frac[1] * (double)n);
                size_t n_test = (size_t)llround(spec->frac[2] * (double)n);
                if (n_val + n_test > n) n_test = n - n_val;
                for (size_t k = 0; k < n; k++)
                    s[r].part[idx[k]] = k < n_val            ? FM_PART_VAL
                                        : k < n_val + n_test ? FM_PART_TEST
                                                             : FM_PART_TRAIN;
            }
        }
    } else {
        FmRng rng = fm_rng_split(&base, 0);
        uint8_t *fold = fm_malloc((size_t)(N ? N : 1));
        if (!fold) {
            fm_free(idx);
            fm_splits_free(s, spec->n);
            return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory for splits");
        }
        size_t dealt = 0;
        for (uint8_t g = 0; g < 3; g++) {
            size_t n = 0;
            for (int64_t i = 0; i < N; i++)
                if (stratum[i] == g) idx[n++] = (size_t)i;
            fm_rng_shuffle(&rng, idx, n);
            for (size_t k = 0; k < n; k++)
                fold[idx[k]] = (uint8_t)(dealt++ % (size_t)spec->n);
        }
        for (int f = 0; f < spec->n; f++)
            for (int64_t i = 0; i < N; i++)
                s[f].part[i] = fold[i] == f                   ? FM_PART_TEST
                               : fold[i] == (f + 1) % spec->n ? FM_PART_VAL
                                                              : FM_PART_TRAIN;
        fm_free(fold);
    }
    fm_free(idx);
    *splits = s;
    *n_splits = spec->n;
    return FM_OK;
}

/* ---- split file ---- */

typedef struct {
    const char *id_col;
    const int64_t *stay_id;
    int64_t N;
    FmIdIndex index; /* cohort stay id -> row */
    int id_col_index;
    int header_fields;
    char **names; /* (header_fields) */
    int n_splits;
    int *split_of_col;
    FmCohortSplit *splits;
    uint8_t *seen; /* (N) */
    int64_t *seen_line;
    int64_t cur; /* cohort row of the current line, or -1 */
    uint8_t parts[256];
    int64_t ignored;
} SplitReader;

static FmStatus split_field(void *ctx, const FmCsvPos *pos, const char *s, size_t len, FmError *err) {
    SplitReader *r = ctx;
    char where[600];
    if (pos->row == 0) {
        if (pos->col >= 256)
            return FM_FAIL(err, FM_ERR_FORMAT, fm_csv_where(pos, where, sizeof where), "too many columns");
        char **names = fm_realloc(r->names, (size_t)(pos->col + 1) * sizeof *names);
        if (!names) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory reading splits");
        r->names = names;
        r->names[pos->col] = fm_strdup(s);
        r->header_fields = pos->col + 1;
        if (!r->names[pos->col]) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory reading splits");
        if (strcmp(s, r->id_col) == 0) {
            if (r->id_col_index >= 0)
                return FM_FAIL(err, FM_ERR_FORMAT, fm_csv_where(pos, where, sizeof where),
                               "column '%s' appears twice", s);
            r->id_col_index = pos->col;
        }
        return FM_OK;
    }
    if (pos->col >= 256) return FM_OK;
    if (pos->col == r->id_col_index) {
        int64_t id;
        if (fm_csv_parse_int64(s, len, &id) != FM_CSV_NUM_OK)
            return FM_FAIL(err, FM_ERR_FORMAT, fm_csv_where(pos, where, sizeof where),
                           "column %s: expected an integer stay id, got \"%s\"", r->id_col, s);
        int32_t row = fm_id_index_get(&r->index, id);
        r->cur = row;
        if (row >= 0) {
            if (r->seen[row])
                return FM_FAIL(err, FM_ERR_FORMAT, fm_csv_where(pos, where, sizeof where),
                               "stay %lld already has a row (line %lld)", (long long)id,
                               (long long)r->seen_line[row]);
            r->seen[row] = 1;
            r->seen_line[row] = pos->line;
        }
        return FM_OK;
    }
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t' || s[len - 1] == '\r'))
        len--;
    while (len && (*s == ' ' || *s == '\t'))
        s++, len--;
    uint8_t part;
    if (len == 5 && strncmp(s, "train", 5) == 0)
        part = FM_PART_TRAIN;
    else if (len == 3 && strncmp(s, "val", 3) == 0)
        part = FM_PART_VAL;
    else if (len == 4 && strncmp(s, "test", 4) == 0)
        part = FM_PART_TEST;
    else if (len == 0 || (len == 4 && strncmp(s, "none", 4) == 0))
        part = FM_PART_NONE;
    else
        return FM_FAIL(err, FM_ERR_FORMAT, fm_csv_where(pos, where, sizeof where),
                       "column %s: expected train, val, test or none, got \"%s\"",
                       pos->col < r->header_fields ? r->names[pos->col] : "?", s);
    r->parts[pos->col] = part;
    return FM_OK;
}

static FmStatus split_row(void *ctx, const FmCsvPos *pos, int n_fields, FmError *err) {
    SplitReader *r = ctx;
    char where[600];
    fm_csv_where(pos, where, sizeof where);
    if (pos->row == 0) {
        if (r->id_col_index < 0) return FM_FAIL(err, FM_ERR_FORMAT, where, "missing column '%s'", r->id_col);
        if (n_fields < 2)
            return FM_FAIL(err, FM_ERR_FORMAT, where, "expected %s and at least one split column", r->id_col);
        r->n_splits = n_fields - 1;
        FmCohortSplit *s = fm_calloc((size_t)r->n_splits, sizeof *s);
        r->split_of_col = fm_malloc_array((size_t)n_fields, sizeof *r->split_of_col);
        if (!s || !r->split_of_col) {
            fm_free(s);
            return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory reading splits");
        }
        r->splits = s;
        int k = 0;
        for (int col = 0; col < n_fields; col++) {
            r->split_of_col[col] = -1;
            if (col == r->id_col_index) continue;
            if (!r->names[col][0])
                return FM_FAIL(err, FM_ERR_FORMAT, where, "column %d has an empty name", col + 1);
            for (int j = 0; j < k; j++)
                if (strcmp(s[j].name, r->names[col]) == 0)
                    return FM_FAIL(err, FM_ERR_FORMAT, where, "column '%s' appears twice", r->names[col]);
            s[k].name = fm_strdup(r->names[col]);
            s[k].part = fm_malloc((size_t)(r->N ? r->N : 1));
            if (!s[k].name || !s[k].part)
                return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory reading splits");
            memset(s[k].part, FM_PART_NONE, (size_t)(r->N ? r->N : 1));
            r->split_of_col[col] = k++;
        }
        return FM_OK;
    }
    if (n_fields != r->header_fields)
        return FM_FAIL(err, FM_ERR_FORMAT, where, "expected %d fields (as in the header), got %d",
                       r->header_fields, n_fields);
    if (r->cur < 0) {
        r->ignored++;
        return FM_OK;
    }
    for (int col = 0; col < n_fields; col++)
        if (r->split_of_col[col] >= 0) r->splits[r->split_of_col[col]].part[r->cur] = r->parts[col];
    return FM_OK;
}

FmStatus fm_splits_read_file(const char *path, const char *id_col, const int64_t *stay_id, int64_t N,
                             FmCohortSplit **splits, int *n_splits, int64_t *rows_ignored, FmError *err) {
    *splits = NULL;
    *n_splits = 0;
    *rows_ignored = 0;
    SplitReader r;
    memset(&r, 0, sizeof r);
    r.id_col = id_col;
    r.stay_id = stay_id;
    r.N = N;
    r.id_col_index = -1;
    FmStatus st = FM_OK;
    r.seen = fm_calloc((size_t)(N ? N : 1), 1);
    r.seen_line = fm_calloc((size_t)(N ? N : 1), sizeof *r.seen_line);
    if (!r.seen || !r.seen_line) st = FM_FAIL(err, FM_ERR_NOMEM, path, "out of memory reading splits");
    for (int64_t i = 0; i < N && st == FM_OK; i++)
        st = fm_id_index_put(&r.index, stay_id[i], (int32_t)i, NULL, err);
    if (st == FM_OK) {
        FmCsvReader reader;
        fm_csv_reader_init(&reader);
        st = fm_csv_read_file(&reader, path, path, 0, split_field, split_row, &r, err);
        fm_csv_reader_free(&reader);
    }
    for (int64_t i = 0; i < N && st == FM_OK; i++)
        if (!r.seen[i])
            st = FM_FAIL(err, FM_ERR_FORMAT, path,
                         "stay %lld has no row (every stay of the cohort needs one; "
                         "use 'none' to leave a stay out)",
                         (long long)stay_id[i]);
    for (int i = 0; i < r.header_fields; i++)
        fm_free(r.names[i]);
    fm_free(r.names);
    fm_free(r.split_of_col);
    fm_free(r.seen);
    fm_free(r.seen_line);
    fm_id_index_free(&r.index);
    if (st != FM_OK) {
        fm_splits_free(r.splits, r.n_splits);
        return st;
    }
    *splits = r.splits;
    *n_splits = r.n_splits;
    *rows_ignored = r.ignored;
    return FM_OK;
}
