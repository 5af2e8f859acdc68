#include "src/results_table.h"

#include <csv.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "src/alloc.h"
#include "src/atomic_file.h"
#include "src/strbuf.h"
#include "src/summary_stats.h"

void fm_results_init(FmResults *r) {
    memset(r, 0, sizeof *r);
}

void fm_results_free(FmResults *r) {
    if (!r) return;
    for (int m = 0; m < r->n_metrics; m++)
        fm_free(r->metrics[m]);
    fm_free(r->metrics);
    for (size_t i = 0; i < r->n_rows; i++) {
        fm_free(r->rows[i].config);
        fm_free(r->rows[i].values);
    }
    fm_free(r->rows);
    fm_results_init(r);
}

int fm_results_metric_index(const FmResults *r, const char *name) {
    for (int m = 0; m < r->n_metrics; m++)
        if (strcmp(r->metrics[m], name) == 0) return m;
    return -1;
}

static long find_run(const FmResults *r, const char *config, long split, long seed) {
    for (size_t i = 0; i < r->n_rows; i++)
        if (r->rows[i].split == split && r->rows[i].seed == seed && strcmp(r->rows[i].config, config) == 0)
            return (long)i;
    return -1;
}

FmStatus fm_results_add(FmResults *r, const char *config, long split, long seed, const char *const *names,
                        const double *values, int n, FmError *err) {
    for (int j = 0; j < n; j++)
        for (int k = 0; k < j; k++)
            if (strcmp(names[j], names[k]) == 0)
                return FM_FAIL(err, FM_ERR_ARG, NULL, "metric \"%s\" given twice", names[j]);
    if (find_run(r, config, split, seed) >= 0)
        return FM_FAIL(err, FM_ERR_ARG, NULL, "run (config \"%s\", split %ld, seed %ld) is already present",
                       config, split, seed);
    /* New metric columns, in the order given. */
    int n_new = 0;
    for (int j = 0; j < n; j++)
        n_new += fm_results_metric_index(r, names[j]) < 0;
    int total = r->n_metrics + n_new;
    /* Allocate everything first; growing existing arrays is harmless if a later step fails. */
    FmResultRow row = {NULL, split, seed, NULL};
    char **fresh = n_new ? fm_calloc((size_t)n_new, sizeof *fresh) : NULL;
    row.config = fm_strdup(config);
    row.values = fm_malloc_array((size_t)(total ? total : 1), sizeof *row.values);
    int ok = row.config && row.values && (!n_new || fresh);
    for (int j = 0, k = 0; ok && j < n; j++)
        if (fm_results_metric_index(r, names[j]) < 0) ok = (fresh[k++] = fm_strdup(names[j])) != NULL;
    if (ok && r->n_rows == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 16;
        FmResultRow *rows = fm_realloc(r->rows, cap * sizeof *rows);
        if (rows) {
            r->rows = rows;
            r->cap = cap;
        } else {
            ok = 0;
        }
    }
    if (ok && n_new) {
        char **metrics = fm_realloc(r->metrics, (size_t)total * sizeof *metrics);
        if (metrics)
            r->metrics = metrics;
        else
            ok = 0;
    }
    for (size_t i = 0; ok && n_new && i < r->n_rows; i++) {
        double *v = fm_realloc(r->rows[i].values, (size_t)total * sizeof *v);
        if (v)
            r->rows[i].values = v;
        else
            ok = 0;
    }
    if (!ok) {
        for (int k = 0; fresh && k < n_new; k++)
            fm_free(fresh[k]);
        fm_free(fresh);
        fm_free(row.config);
        fm_free(row.values);
        return FM_FAIL(err, FM_ERR_NOMEM, NULL, "results: out of memory");
    }
    /* Commit. */
    for (int k = 0; k < n_new; k++)
        r->metrics[r->n_metrics + k] = fresh[k];
    fm_free(fresh);
    for (size_t i = 0; i < r->n_rows; i++)
        for (int m = r->n_metrics; m < total; m++)
            r->rows[i].values[m] = NAN;
    r->n_metrics = total;
    for (int m = 0; m < total; m++)
        row.values[m] = NAN;
    for (int j = 0; j < n; j++)
        row.values[fm_results_metric_index(r, names[j])] = values[j];
    r->rows[r->n_rows++] = row;
    return FM_OK;
}

/* Deep copy of src into dst (initialised here). */
static FmStatus results_copy(FmResults *dst, const FmResults *src, FmError *err) {
    fm_results_init(dst);
    int ok = 1;
    if (src->n_metrics) {
        ok = (dst->metrics = fm_calloc((size_t)src->n_metrics, sizeof *dst->metrics)) != NULL;
        for (int m = 0; ok && m < src->n_metrics; m++)
            if ((ok = (dst->metrics[m] = fm_strdup(src->metrics[m])) != NULL)) dst->n_metrics = m + 1;
    }
    if (ok && src->n_rows) {
        ok = (dst->rows = fm_calloc(src->n_rows, sizeof *dst->rows)) != NULL;
        if (ok) dst->cap = src->n_rows;
        for (size_t i = 0; ok && i < src->n_rows; i++) {
            FmResultRow row = src->rows[i];
            row.config = fm_strdup(src->rows[i].config);
            row.values = fm_malloc_array((size_t)(src->n_metrics ? src->n_metrics : 1), sizeof *row.values);
            ok = row.config && row.values;
            if (!ok) {
                fm_free(row.config);
                fm_free(row.values);
                break;
            }
            memcpy(row.values, src->rows[i].values, (size_t)src->n_metrics * sizeof *row.values);
            dst->rows[dst->n_rows++] = row;
        }
    }
    if (!ok) {
        fm_results_free(dst);
        return FM_FAIL(err, FM_ERR_NOMEM, NULL, "results: out of memory");
    }
    return FM_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Reading results.csv
 * ------------------------------------------------------------------------------------------- */

typedef struct {
    const char *path;
    FmResults *out;  /* the working copy rows are added to */
    int line;        /* physical line being fed to the parser */
    int record_line; /* line where the current record started */
    char **fields;
    size_t n_fields, cap_fields;
    int header_done;
    int n_columns;
    int split_col;  /* column of split (seed follows; metrics after it) */
    char **columns; /* header names (borrowed from the header record, kept) */
    FmStatus status;
    FmError *err;
} CsvState;

static void free_fields(CsvState *s) {
    for (size_t i = 0; i < s->n_fields; i++)
        fm_free(s->fields[i]);
    s->n_fields = 0;
}

static void fail_line(CsvState *s, FmStatus code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail_line(CsvState *s, FmStatus code, const char *fmt, ...) {
    char where[FM_PATH_MAX + 16], msg[768];
    snprintf(where, sizeof where, "%s:%d", s->path, s->record_line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    s->status = FM_FAIL(s->err, code, where, "%s", msg);
}

static void on_field(void *data, size_t len, void *user) {
    CsvState *s = user;
    if (s->status != FM_OK) return;
    if (s->n_fields == 0) s->record_line = s->line;
    if (s->n_fields == s->cap_fields) {
        size_t cap = s->cap_fields ? 2 * s->cap_fields : 16;
        char **f = fm_realloc(s->fields, cap * sizeof *f);
        if (!f) {
            s->status = FM_FAIL(s->err, FM_ERR_NOMEM, s->path, "out of memory reading results");
            return;
        }
        s->fields = f;
        s->cap_fields = cap;
    }
    char *copy = fm_malloc(len + 1);
    if (!copy) {
        s->status = FM_FAIL(s->err, FM_ERR_NOMEM, s->path, "out of memory reading results");
        return;
    }
    if (len) memcpy(copy, data, len);
    copy[len] = '\0';
    s->fields[s->n_fields++] = copy;
}

static int parse_long(const char *t, long *out) {
    char *end;
    errno = 0;
    long x = strtol(t, &end, 10);
    if (end == t || *end || errno == ERANGE) return 0;
    *out = x;
    return 1;
}

static void header_record(CsvState *s) {
    /* config, any descriptive columns (an ablation's axes), split, seed, then the metrics */
    size_t split = 1;
    while (split < s->n_fields && strcmp(s->fields[split], "split") != 0) split++;
    if (s->n_fields == 0 || strcmp(s->fields[0], "config") != 0) {
        fail_line(s, FM_ERR_FORMAT, "header: expected the columns config, split, seed first, got \"%s\"",
                  s->n_fields ? s->fields[0] : "");
        return;
    }
    if (split + 1 >= s->n_fields || strcmp(s->fields[split + 1], "seed") != 0) {
        fail_line(s, FM_ERR_FORMAT, "header: expected a split column followed by seed, got \"%s\" after \"%s\"",
                  split + 1 < s->n_fields ? s->fields[split + 1] : "", s->fields[split < s->n_fields ? split : 0]);
        return;
    }
    s->split_col = (int)split;
    for (size_t j = split + 2; j < s->n_fields; j++) {
        if (!s->fields[j][0]) {
            fail_line(s, FM_ERR_FORMAT, "header: column %zu has no name", j + 1);
            return;
        }
        for (size_t k = split + 2; k < j; k++)
            if (strcmp(s->fields[j], s->fields[k]) == 0) {
                fail_line(s, FM_ERR_FORMAT, "header: column \"%s\" appears twice", s->fields[j]);
                return;
            }
    }
    /* Keep the header's names: ownership moves from fields to columns. */
    s->columns = s->fields;
    s->n_columns = (int)s->n_fields;
    s->fields = NULL;
    s->n_fields = s->cap_fields = 0;
    s->header_done = 1;
}

static void data_record(CsvState *s) {
    if ((int)s->n_fields != s->n_columns) {
        fail_line(s, FM_ERR_FORMAT, "%zu fields, expected %d", s->n_fields, s->n_columns);
        return;
    }
    long split, seed;
    const int c0 = s->split_col + 2; /* first metric column */
    if (!parse_long(s->fields[s->split_col], &split)) {
        fail_line(s, FM_ERR_FORMAT, "column split: expected an integer, got \"%s\"", s->fields[s->split_col]);
        return;
    }
    if (!parse_long(s->fields[s->split_col + 1], &seed)) {
        fail_line(s, FM_ERR_FORMAT, "column seed: expected an integer, got \"%s\"", s->fields[s->split_col + 1]);
        return;
    }
    int nm = s->n_columns - c0;
    double *v = fm_malloc_array((size_t)(nm ? nm : 1), sizeof *v);
    if (!v) {
        s->status = FM_FAIL(s->err, FM_ERR_NOMEM, s->path, "out of memory reading results");
        return;
    }
    for (int m = 0; m < nm; m++) {
        const char *t = s->fields[c0 + m];
        char *end;
        if (!t[0] || strcasecmp(t, "nan") == 0) {
            v[m] = NAN;
            continue;
        }
        errno = 0;
        v[m] = strtod(t, &end);
        if (end == t || *end || errno == ERANGE || !isfinite(v[m])) {
            fail_line(s, FM_ERR_FORMAT, "column %s: expected a number, got \"%s\"", s->columns[c0 + m], t);
            fm_free(v);
            return;
        }
    }
    FmError e;
    FmStatus st =
        fm_results_add(s->out, s->fields[0], split, seed, (const char *const *)(s->columns + c0), v, nm, &e);
    fm_free(v);
    if (st == FM_ERR_ARG)
        fail_line(s, FM_ERR_FORMAT, "%s", e.message);
    else if (st != FM_OK)
        s->status = FM_FAIL(s->err, st, s->path, "%s", e.message);
}

static void on_record(int term, void *user) {
    CsvState *s = user;
    (void)term;
    if (s->status == FM_OK) {
        if (!s->header_done)
            header_record(s);
        else
            data_record(s);
    }
    free_fields(s);
}

/* Files larger than this are not results tables of this tool. */
#define MAX_CSV_BYTES (64 << 20)

FmStatus fm_results_read_csv(FmResults *r, const char *path, FmError *err) {
    FILE *f = fopen(path, "rb");
    if (!f) return FM_FAIL(err, FM_ERR_IO, path, "cannot open results: %s", strerror(errno));
    FmResults work;
    FmStatus st = results_copy(&work, r, err);
    if (st != FM_OK) {
        fclose(f);
        return st;
    }
    CsvState s;
    memset(&s, 0, sizeof s);
    s.path = path;
    s.out = &work;
    s.err = err;
    struct csv_parser p;
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI) != 0) {
        fclose(f);
        fm_results_free(&work);
        return FM_FAIL(err, FM_ERR_NOMEM, path, "cannot start the CSV parser");
    }
    csv_set_realloc_func(&p, fm_realloc);
    csv_set_free_func(&p, fm_free);
    /* Feed one physical line at a time so that messages can name it. */
    char buf[4096];
    size_t total = 0;
    int at_line_start = 1;
    while (s.status == FM_OK && fgets(buf, sizeof buf, f)) {
        size_t len = strlen(buf);
        total += len;
        if (total > MAX_CSV_BYTES) {
            s.status = FM_FAIL(err, FM_ERR_FORMAT, path, "larger than %d bytes", MAX_CSV_BYTES);
            break;
        }
        if (at_line_start) s.line++;
        at_line_start = len && buf[len - 1] == '\n';
        if (csv_parse(&p, buf, len, on_field, on_record, &s) != len && s.status == FM_OK) {
            s.record_line = s.line;
            if (csv_error(&p) == CSV_EPARSE)
                fail_line(&s, FM_ERR_FORMAT,
                          "malformed CSV (a quote in an unquoted field, or text after a closing quote)");
            else
                s.status = FM_FAIL(err, FM_ERR_NOMEM, path, "out of memory reading results");
        }
    }
    if (s.status == FM_OK && ferror(f)) s.status = FM_FAIL(err, FM_ERR_IO, path, "read failed");
    if (s.status == FM_OK && csv_fini(&p, on_field, on_record, &s) != 0 && s.status == FM_OK) {
        s.record_line = s.line;
        fail_line(&s, FM_ERR_FORMAT, "unterminated quoted field");
    }
    if (s.status == FM_OK && !s.header_done)
        s.status = FM_FAIL(err, FM_ERR_FORMAT, path, "empty file: expected a header config,split,seed,...");
    csv_free(&p);
    fclose(f);
    free_fields(&s);
    fm_free(s.fields);
    for (int k = 0; k < s.n_columns; k++)
        fm_free(s.columns[k]);
    fm_free(s.columns);
    if (s.status != FM_OK) {
        fm_results_free(&work);
        return s.status;
    }
    fm_results_free(r);
    *r = work;
    return FM_OK;
}

/* ---------------------------------------------------------------------------------------------
 * Writing results.csv
 * ------------------------------------------------------------------------------------------- */

/* A name as a CSV field: quoted (libcsv) only when it needs to be. */
static int write_name(FILE *f, const char *name) {
    size_t len = strlen(name);
    int plain = len && name[0] != ' ' && name[len - 1] != ' ' && !strpbrk(name, ",\"\r\n");
    if (plain) return fputs(name, f) < 0 ? -1 : 0;
    return csv_fwrite(f, name, len);
}

FmStatus fm_results_write_csv(const FmResults *r, const char *path, FmError *err) {
    FmAtomicFile af;
    FmStatus st = fm_atomic_open(&af, path, err);
    if (st != FM_OK) return st;
    int bad = fputs("config,split,seed", af.f) < 0;
    for (int m = 0; m < r->n_metrics && !bad; m++)
        bad = fputc(',', af.f) < 0 || write_name(af.f, r->metrics[m]) != 0;
    bad = bad || fputc('\n', af.f) < 0;
    for (size_t i = 0; i < r->n_rows && !bad; i++) {
        const FmResultRow *row = &r->rows[i];
        bad = write_name(af.f, row->config) != 0 || fprintf(af.f, ",%ld,%ld", row->split, row->seed) < 0;
        for (int m = 0; m < r->n_metrics && !bad; m++) {
            char num[40] = "";
            if (!isnan(row->values[m])) fm_strbuf_format_double(num, sizeof num, row->values[m]);
            bad = fprintf(af.f, ",%s", num) < 0;
        }
        bad = bad || fputc('\n', af.f) < 0;
    }
    if (bad) {
        fm_atomic_discard(&af);
        return FM_FAIL(err, FM_ERR_IO, path, "write failed");
    }
    return fm_atomic_close(&af, err);
}

FmStatus fm_results_append_csv(const char *path, const char *config, long split, long seed,
                               const char *const *names, const double *values, int n, FmError *err) {
    FmResults r;
    fm_results_init(&r);
    FILE *probe = fopen(path, "rb");
    if (probe) {
        fclose(probe);
        FmStatus st = fm_results_read_csv(&r, path, err);
        if (st != FM_OK) return st;
    } else if (errno != ENOENT) {
        return FM_FAIL(err, FM_ERR_IO, path, "cannot open results: %s", strerror(errno));
    }
    long at = find_run(&r, config, split, seed);
    if (at >= 0) { /* a rerun replaces its row */
        fm_free(r.rows[at].config);
        fm_free(r.rows[at].values);
        memmove(&r.rows[at], &r.rows[at + 1], (r.n_rows - (size_t)at - 1) * sizeof *r.rows);
        r.n_rows--;
    }
    FmStatus st = fm_results_add(&r, config, split, seed, names, values, n, err);
    if (st == FM_OK) st = fm_results_write_csv(&r, path, err);
    fm_results_free(&r);
    return st;
}

/* ---------------------------------------------------------------------------------------------
 * The Markdown table
 * ------------------------------------------------------------------------------------------- */

/* Appends text with '|' escaped for a Markdown cell. */
static void append_cell(FmStrBuf *b, const char *text) {
    for (const char *p = text; *p; p++) {
        if (*p == '|') fm_strbuf_append(b, "\\");
        fm_strbuf_append_n(b, p, 1);
    }
}

static void append_p(FmStrBuf *b, double p) {
    if (isnan(p))
        fm_strbuf_append(b, "p = n/a");
    else if (p < 0.001)
        fm_strbuf_append(b, "p < 0.001");
    else if (p < 0.01)
        fm_strbuf_appendf(b, "p = %.3f", p);
    else
        fm_strbuf_appendf(b, "p = %.2f", p);
}

/* The distinct configurations in order of first appearance (borrowed names). */
static FmStatus distinct_configs(const FmResults *r, const char ***out, int *n, FmError *err) {
    const char **names = fm_malloc_array(r->n_rows ? r->n_rows : 1, sizeof *names);
    if (!names) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "results table: out of memory");
    int k = 0;
    for (size_t i = 0; i < r->n_rows; i++) {
        int seen = 0;
        for (int j = 0; j < k && !seen; j++)
            seen = strcmp(names[j], r->rows[i].config) == 0;
        if (!seen) names[k++] = r->rows[i].config;
    }
    *out = names;
    *n = k;
    return FM_OK;
}

FmStatus fm_results_table_markdown(const FmResults *r, const FmTableSpec *spec, char **out, FmError *err) {
    *out = NULL;
    double level = spec->level > 0 ? spec->level : 0.95;
    int *col = fm_malloc_array((size_t)(spec->n_columns ? spec->n_columns : 1), sizeof *col);
    if (!col) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "results table: out of memory");
    for (int c = 0; c < spec->n_columns; c++) {
        col[c] = fm_results_metric_index(r, spec->columns[c].metric);
        if (col[c] < 0) {
            fm_free(col);
            return FM_FAIL(err, FM_ERR_ARG, NULL, "results have no metric column \"%s\"",
                           spec->columns[c].metric);
        }
    }
    const char **configs = NULL;
    int n_configs = 0;
    FmStatus st = distinct_configs(r, &configs, &n_configs, err);
    if (st != FM_OK) {
        fm_free(col);
        return st;
    }
    const char *const *show = spec->order ? spec->order : configs;
    int n_show = spec->order ? spec->n_order : n_configs;
    const char *missing = NULL;
    for (int k = 0; k < n_show && !missing; k++) {
        int found = 0;
        for (int j = 0; j < n_configs && !found; j++)
            found = strcmp(configs[j], show[k]) == 0;
        if (!found) missing = show[k];
    }
    if (!missing && spec->baseline) {
        int found = 0;
        for (int j = 0; j < n_configs && !found; j++)
            found = strcmp(configs[j], spec->baseline) == 0;
        if (!found) missing = spec->baseline;
    }
    if (missing) {
        fm_free(col);
        fm_free(configs);
        return FM_FAIL(err, FM_ERR_ARG, NULL, "results have no configuration \"%s\"", missing);
    }
    /* Work arrays: this config's values and the matched baseline values, per row. */
    size_t nr = r->n_rows ? r->n_rows : 1;
    double *x = fm_malloc_array(nr, sizeof *x), *y = fm_malloc_array(nr, sizeof *y);
    if (!x || !y) {
        fm_free(col);
        fm_free(configs);
        fm_free(x);
        fm_free(y);
        return FM_FAIL(err, FM_ERR_NOMEM, NULL, "results table: out of memory");
    }
    FmStrBuf b;
    fm_strbuf_init(&b);
    fm_strbuf_append(&b, "| Configuration | Runs |");
    for (int c = 0; c < spec->n_columns; c++) {
        fm_strbuf_append(&b, " ");
        append_cell(&b, spec->columns[c].label ? spec->columns[c].label : spec->columns[c].metric);
        fm_strbuf_append(&b, " |");
    }
    for (int c = 0; spec->baseline && c < spec->n_columns; c++) {
        fm_strbuf_append(&b, " ");
        append_cell(&b, spec->columns[c].label ? spec->columns[c].label : spec->columns[c].metric);
        fm_strbuf_append(&b, " vs ");
        append_cell(&b, spec->baseline);
        fm_strbuf_append(&b, " |");
    }
    fm_strbuf_append(&b, "\n|---|---:|");
    for (int c = 0; c < spec->n_columns * (spec->baseline ? 2 : 1); c++)
        fm_strbuf_append(&b, "---|");
    fm_strbuf_append(&b, "\n");

    for (int k = 0; k < n_show; k++) {
        const char *name = show[k];
        size_t runs = 0;
        for (size_t i = 0; i < r->n_rows; i++)
            runs += strcmp(r->rows[i].config, name) == 0;
        fm_strbuf_append(&b, "| ");
        append_cell(&b, name);
        fm_strbuf_appendf(&b, " | %zu |", runs);
        for (int c = 0; c < spec->n_columns; c++) {
            const FmTableColumn *tc = &spec->columns[c];
            double scale = tc->scale != 0 ? tc->scale : 1.0;
            int d = tc->decimals;
            size_t m = 0;
            for (size_t i = 0; i < r->n_rows; i++)
                if (strcmp(r->rows[i].config, name) == 0) x[m++] = r->rows[i].values[col[c]] * scale;
            FmSummary s = fm_stats_summary(x, m, level);
            if (s.n == 0)
                fm_strbuf_append(&b, " n/a");
            else if (s.n == 1)
                fm_strbuf_appendf(&b, " %.*f", d, s.mean);
            else
                fm_strbuf_appendf(&b, " %.*f +- %.*f [%.*f, %.*f]", d, s.mean, d, s.std, d, s.ci_lo, d,
                                  s.ci_hi);
            if (s.n < runs) fm_strbuf_appendf(&b, " (n = %zu)", s.n);
            fm_strbuf_append(&b, " |");
        }
        for (int c = 0; spec->baseline && c < spec->n_columns; c++) {
            if (strcmp(name, spec->baseline) == 0) {
                fm_strbuf_append(&b, " baseline |");
                continue;
            }
            const FmTableColumn *tc = &spec->columns[c];
            double scale = tc->scale != 0 ? tc->scale : 1.0;
            int d = tc->decimals;
            size_t m = 0;
            for (size_t i = 0; i < r->n_rows; i++) {
                const FmResultRow *row = &r->rows[i];
                if (strcmp(row->config, name) != 0) continue;
                long j = find_run(r, spec->baseline, row->split, row->seed);
                if (j < 0) continue;
                x[m] = row->values[col[c]] * scale;
                y[m] = r->rows[j].values[col[c]] * scale;
                m++;
            }
            FmPairedT t = fm_stats_paired_t(x, y, m, level);
            if (t.n < 2) {
                fm_strbuf_appendf(&b, " n/a (%zu pairs) |", t.n);
                continue;
            }
            double p = t.p;
            if (spec->wilcoxon) {
                FmWilcoxon w;
                st = fm_stats_wilcoxon(x, y, m, &w, err);
                if (st != FM_OK) break;
                p = w.p;
            }
            fm_strbuf_appendf(&b, " %+.*f [%+.*f, %+.*f], ", d, t.mean_diff, d, t.ci_lo, d, t.ci_hi);
            append_p(&b, p);
            if (t.n < runs) fm_strbuf_appendf(&b, " (n = %zu pairs)", t.n);
            fm_strbuf_append(&b, " |");
        }
        if (st != FM_OK) break;
        fm_strbuf_append(&b, "\n");
    }
    fm_free(col);
    fm_free(configs);
    fm_free(x);
    fm_free(y);
    if (st != FM_OK) {
        fm_strbuf_free(&b);
        return st;
    }
    *out = fm_strbuf_take(&b);
    if (!*out) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "results table: out of memory");
    return FM_OK;
}

void fm_results_column_style(const char *metric, FmTableColumn *col, char *label, size_t cap) {
    static const struct {
        const char *name, *label;
        double scale;
        int decimals;
    } STYLES[] = {{"auroc", "AUROC (%)", 100, 1},
                  {"auprc", "AUPRC (%)", 100, 1},
                  {"f1", "F1 (%)", 100, 1},
                  {"f1_at_0.5", "F1 at 0.5 (%)", 100, 1},
                  {"macro_auroc", "macro AUROC (%)", 100, 1},
                  {"micro_auroc", "micro AUROC (%)", 100, 1},
                  {"macro_f1", "macro F1 (%)", 100, 1},
                  {"macro_f1_at_0.5", "macro F1 at 0.5 (%)", 100, 1},
                  {"brier", "Brier", 1, 3},
                  {"ece", "ECE", 1, 3},
                  {"mae", "MAE", 1, 3},
                  {"rmse", "RMSE", 1, 3},
                  {"r2", "R^2", 1, 3},
                  {"mae_days", "MAE (days)", 1, 2}};
    const char *dot = strchr(metric, '.');
    const char *m = dot ? dot + 1 : metric;
    col->metric = metric;
    col->scale = 1;
    col->decimals = 3;
    snprintf(label, cap, "%s", m);
    for (size_t i = 0; i < sizeof STYLES / sizeof *STYLES; i++)
        if (strcmp(STYLES[i].name, m) == 0) {
            snprintf(label, cap, "%s", STYLES[i].label);
            col->scale = STYLES[i].scale;
            col->decimals = STYLES[i].decimals;
        }
    col->label = label;
}
