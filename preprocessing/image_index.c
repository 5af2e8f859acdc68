#include "preprocessing/image_index.h"

#include <csv.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "preprocessing/png_image.h"
#include "src/alloc.h"
#include "src/atomic_file.h"

enum { COL_STAY, COL_TIME, COL_PATH, N_COLS };
static const char *const COL_NAMES[N_COLS] = {"stay_id", "time_h", "path"};

typedef struct {
    int64_t stay_id;
    float time_h;
    char *path; /* as written in the index */
    long line;
} IndexRow;

/* Parser state shared by libcsv's callbacks. Errors stop the work: once st != FM_OK every
 * further callback returns at once. */
typedef struct {
    const char *csv_path;
    FmError *err;
    FmStatus st;
    long line;           /* physical line being fed to libcsv (1-based) */
    long record_line;    /* line on which the current record's first field ended */
    long last_text_line; /* last line that held more than a line end */
    size_t field;        /* index of the next field in the current record */
    int header_done;
    int col[N_COLS]; /* field index of each needed column (header), -1 until seen */
    int have[N_COLS];
    IndexRow cur;
    IndexRow *rows;
    size_t n, cap;
} IndexParse;

/* Records an error at line `line` of the index ("index.csv:7: ..."). */
static void fail_at_line(IndexParse *p, FmStatus code, long line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void fail_at_line(IndexParse *p, FmStatus code, long line, const char *fmt, ...) {
    char where[FM_PATH_MAX + 32], msg[1024];
    snprintf(where, sizeof where, "%s:%ld", p->csv_path, line);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    p->st = FM_FAIL(p->err, code, where, "%s", msg);
}

/* Copies a field into a NUL-terminated buffer for number parsing (too long: truncated with a
 * marker, which then fails to parse and is quoted in the message). */
static void field_text(const char *s, size_t len, char *buf, size_t cap) {
    if (len < cap) {
        memcpy(buf, s, len);
        buf[len] = '\0';
    } else {
        memcpy(buf, s, cap - 4);
        memcpy(buf + cap - 4, "...", 4);
    }
}

static void parse_stay(IndexParse *p, const char *s, size_t len) {
    char buf[64];
    field_text(s, len, buf, sizeof buf);
    char *end;
    errno = 0;
    long long v = strtoll(buf, &end, 10);
    if (len == 0)
        fail_at_line(p, FM_ERR_FORMAT, p->record_line, "column stay_id: missing value");
    else if (end == buf || *end != '\0' || errno == ERANGE)
        fail_at_line(p, FM_ERR_FORMAT, p->record_line, "column stay_id: expected an integer, got \"%s\"",
                     buf);
    else
        p->cur.stay_id = v;
}

static void parse_time(IndexParse *p, const char *s, size_t len) {
    char buf[64];
    field_text(s, len, buf, sizeof buf);
    char *end;
    double v = strtod(buf, &end);
    if (len == 0)
        fail_at_line(p, FM_ERR_FORMAT, p->record_line, "column time_h: missing value");
    else if (end == buf || *end != '\0')
        fail_at_line(p, FM_ERR_FORMAT, p->record_line, "column time_h: expected a number, got \"%s\"", buf);
    else if (!isfinite((float)v))
        fail_at_line(p, FM_ERR_FORMAT, p->record_line, "column time_h: expected a finite number, got \"%s\"",
                     buf);
    else
        p->cur.time_h = (float)v;
}

static void parse_path(IndexParse *p, const char *s, size_t len) {
    if (len == 0) {
        fail_at_line(p, FM_ERR_FORMAT, p->record_line, "column path: missing value");
        return;
    }
    if (memchr(s, '\0', len)) {
        fail_at_line(p, FM_ERR_FORMAT, p->record_line, "column path: contains a NUL byte");
        return;
    }
    p->cur.path = fm_malloc(len + 1);
    if (!p->cur.path) {
        fail_at_line(p, FM_ERR_NOMEM, p->record_line, "out of memory");
        return;
    }
    memcpy(p->cur.path, s, len);
    p->cur.path[len] = '\0';
}

static void header_field(IndexParse *p, const char *s, size_t len) {
    /* A UTF-8 byte-order mark before the first name is not part of it. */
    if (p->field == 0 && len >= 3 && memcmp(s, "\xEF\xBB\xBF", 3) == 0) {
        s += 3;
        len -= 3;
    }
    for (int c = 0; c < N_COLS; c++) {
        if (strlen(COL_NAMES[c]) != len || memcmp(s, COL_NAMES[c], len) != 0) continue;
        if (p->col[c] >= 0)
            fail_at_line(p, FM_ERR_FORMAT, p->record_line, "column '%s' appears twice", COL_NAMES[c]);
        p->col[c] = (int)p->field;
    }
}

static void on_field(void *data, size_t len, void *ctx) {
    IndexParse *p = ctx;
    if (p->st != FM_OK) return;
    if (p->field == 0) p->record_line = p->line;
    const char *s = data ? data : "";
    if (!p->header_done) {
        header_field(p, s, len);
    } else {
        for (int c = 0; c < N_COLS; c++) {
            if (p->col[c] != (int)p->field) continue;
            if (c == COL_STAY) parse_stay(p, s, len);
            if (c == COL_TIME) parse_time(p, s, len);
            if (c == COL_PATH) parse_path(p, s, len);
            p->have[c] = 1;
        }
    }
    p->field++;
}

static void on_record(int term, void *ctx) {
    (void)term;
    IndexParse *p = ctx;
    size_t fields = p->field;
    p->field = 0;
    if (p->st != FM_OK) return;
    if (fields == 0) return;
    if (!p->header_done) {
        p->header_done = 1;
        for (int c = 0; c < N_COLS; c++)
            if (p->col[c] < 0) {
                fail_at_line(p, FM_ERR_FORMAT, p->record_line,
                             "missing column '%s' (the header must name stay_id, time_h and path)",
                             COL_NAMES[c]);
                return;
            }
        return;
    }
    for (int c = 0; c < N_COLS; c++)
        if (!p->have[c]) {
            fail_at_line(p, FM_ERR_FORMAT, p->record_line, "missing column '%s' (the line has %zu fields)",
                         COL_NAMES[c], fields);
            fm_free(p->cur.path);
            memset(&p->cur, 0, sizeof p->cur);
            return;
        }
    if (p->n == p->cap) {
        size_t cap = p->cap ? 2 * p->cap : 64;
        IndexRow *rows = fm_realloc(p->rows, cap * sizeof *rows);
        if (!rows) {
            fail_at_line(p, FM_ERR_NOMEM, p->record_line, "out of memory");
            fm_free(p->cur.path);
            memset(&p->cur, 0, sizeof p->cur);
            return;
        }
        p->rows = rows;
        p->cap = cap;
    }
    p->cur.line = p->record_line;
    p->rows[p->n++] = p->cur;
    memset(&p->cur, 0, sizeof p->cur);
    memset(p->have, 0, sizeof p->have);
}

/* Feeds `len` bytes to libcsv, counting lines: each piece up to a '\n' is parsed while p->line
 * names the line it belongs to. */
static void feed(IndexParse *p, struct csv_parser *csv, const char *buf, size_t len) {
    while (len > 0 && p->st == FM_OK) {
        const char *nl = memchr(buf, '\n', len);
        size_t piece = nl ? (size_t)(nl - buf) + 1 : len;
        if (piece > 2 || (piece == 2 && buf[0] != '\r') || (piece == 1 && buf[0] != '\n'))
            p->last_text_line = p->line;
        if (csv_parse(csv, buf, piece, on_field, on_record, p) != piece && p->st == FM_OK) {
            int e = csv_error(csv);
            if (e == CSV_ENOMEM)
                fail_at_line(p, FM_ERR_NOMEM, p->line, "out of memory");
            else
                fail_at_line(p, FM_ERR_FORMAT, p->line, "malformed CSV (%s)", csv_strerror(e));
        }
        if (nl) p->line++;
        buf += piece;
        len -= piece;
    }
}

static void free_rows(IndexParse *p) {
    for (size_t i = 0; i < p->n; i++)
        fm_free(p->rows[i].path);
    fm_free(p->rows);
    fm_free(p->cur.path);
    p->rows = NULL;
    p->cur.path = NULL;
    p->n = p->cap = 0;
}

/* Parses the whole index into p->rows. */
static FmStatus parse_index(IndexParse *p) {
    FILE *f = fopen(p->csv_path, "rb");
    if (!f) return FM_FAIL(p->err, FM_ERR_IO, p->csv_path, "cannot open: %s", strerror(errno));
    struct csv_parser csv;
    if (csv_init(&csv, CSV_STRICT | CSV_STRICT_FINI) != 0) {
        fclose(f);
        return FM_FAIL(p->err, FM_ERR_NOMEM, p->csv_path, "cannot start the CSV parser");
    }
    csv_set_realloc_func(&csv, fm_realloc);
    csv_set_free_func(&csv, fm_free);
    char buf[65536];
    size_t got;
    while (p->st == FM_OK && (got = fread(buf, 1, sizeof buf, f)) > 0)
        feed(p, &csv, buf, got);
    if (p->st == FM_OK && ferror(f)) p->st = FM_FAIL(p->err, FM_ERR_IO, p->csv_path, "read error");
    if (p->st == FM_OK && csv_fini(&csv, on_field, on_record, p) != 0 && p->st == FM_OK)
        fail_at_line(p, FM_ERR_FORMAT, p->field > 0 ? p->record_line : p->last_text_line,
                     "malformed CSV (unterminated quoted field)");
    csv_free(&csv);
    fclose(f);
    if (p->st == FM_OK && !p->header_done)
        p->st =
            FM_FAIL(p->err, FM_ERR_FORMAT, p->csv_path, "empty file (expected a header stay_id,time_h,path)");
    return p->st;
}

/* Resolves `path` against the folder of the index file (absolute paths stay as they are). */
static FmStatus resolve(const char *csv_path, const char *path, char *out, size_t cap, const char *where,
                        FmError *err) {
    const char *slash = strrchr(csv_path, '/');
    int n;
    if (path[0] == '/' || !slash)
        n = snprintf(out, cap, "%s", path);
    else
        n = snprintf(out, cap, "%.*s/%s", (int)(slash - csv_path), csv_path, path);
    if (n < 0 || (size_t)n >= cap) return FM_FAIL(err, FM_ERR_FORMAT, where, "image path too long");
    return FM_OK;
}

/* Decodes one image and resamples it into dst (S * S). */
static FmStatus load_image(const char *png_path, int S, float *dst, const char *where, FmError *err) {
    float *pixels;
    int w, h;
    FmStatus st = fm_png_read_gray(png_path, &pixels, &w, &h, err);
    if (st != FM_OK) {
        /* "index.csv:7" becomes the location; the PNG and its problem become the message. */
        if (err) {
            char msg[sizeof err->message];
            snprintf(msg, sizeof msg, "%s: %s", err->where[0] ? err->where : png_path, err->message);
            FM_FAIL(err, st, where, "%s", msg);
        }
        return st;
    }
    fm_image_resize(pixels, w, h, dst, S);
    fm_free(pixels);
    return FM_OK;
}

FmStatus fm_image_index_read(const char *index_csv, int S, FmEventTable *out, FmError *err) {
    memset(out, 0, sizeof *out);
    if (S < 1 || S > FM_IMAGE_INDEX_MAX_SIZE)
        return FM_FAIL(err, FM_ERR_ARG, index_csv, "image size %d is outside 1..%d", S,
                       FM_IMAGE_INDEX_MAX_SIZE);
    IndexParse p;
    memset(&p, 0, sizeof p);
    p.csv_path = index_csv;
    p.err = err;
    p.line = 1;
    for (int c = 0; c < N_COLS; c++)
        p.col[c] = -1;
    FmStatus st = parse_index(&p);
    if (st != FM_OK) {
        free_rows(&p);
        return st;
    }
    size_t dim = (size_t)S * (size_t)S;
    FmEventTable t = {.n = p.n, .dim = (int)dim};
    t.stay_id = fm_malloc_array(p.n, sizeof *t.stay_id);
    t.time_h = fm_malloc_array(p.n, sizeof *t.time_h);
    t.values = dim <= SIZE_MAX / sizeof(float) ? fm_malloc_array(p.n, dim * sizeof(float)) : NULL;
    if (!t.stay_id || !t.time_h || !t.values)
        st = FM_FAIL(err, FM_ERR_NOMEM, index_csv, "out of memory for %zu images of %d x %d", p.n, S, S);
    char png_path[FM_PATH_MAX], where[FM_PATH_MAX + 32];
    for (size_t i = 0; i < p.n && st == FM_OK; i++) {
        snprintf(where, sizeof where, "%s:%ld", index_csv, p.rows[i].line);
        st = resolve(index_csv, p.rows[i].path, png_path, sizeof png_path, where, err);
        if (st == FM_OK) st = load_image(png_path, S, t.values + i * dim, where, err);
        t.stay_id[i] = p.rows[i].stay_id;
        t.time_h[i] = p.rows[i].time_h;
    }
    free_rows(&p);
    if (st != FM_OK) {
        fm_event_table_free(&t);
        return st;
    }
    *out = t;
    return FM_OK;
}
