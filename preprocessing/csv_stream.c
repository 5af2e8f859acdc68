#include "preprocessing/csv_stream.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/alloc.h"

#define BLOCK_BYTES (1u << 20)

void fm_csv_reader_init(FmCsvReader *r) {
    memset(r, 0, sizeof *r);
}

void fm_csv_reader_free(FmCsvReader *r) {
    if (!r) return;
    fm_free(r->buf);
    memset(r, 0, sizeof *r);
}

const char *fm_csv_where(const FmCsvPos *pos, char *buf, size_t cap) {
    snprintf(buf, cap, "%s:%ld", pos->label, pos->line);
    return buf;
}

/* State shared with libcsv's callbacks for one file. */
typedef struct {
    FmCsvPos pos;
    long cur_line; /* line being fed */
    int n_fields;  /* fields delivered in the current row */
    int row_open;  /* a non-blank line was fed and its row has not ended yet */
    FmCsvFieldFn on_field;
    FmCsvRowFn on_row;
    void *ctx;
    FmError *err;
    FmStatus st;
} Feed;

static void cb_field(void *s, size_t len, void *data) {
    Feed *f = data;
    if (f->st != FM_OK) return;
    if (f->n_fields == 0) f->pos.line = f->cur_line;
    f->pos.col = f->n_fields++;
    /* libcsv hands over its entry buffer, NUL-terminated thanks to CSV_APPEND_NULL. */
    f->st = f->on_field(f->ctx, &f->pos, s ? (const char *)s : "", s ? len : 0, f->err);
}

static void cb_row(int c, void *data) {
    (void)c;
    Feed *f = data;
    f->row_open = 0;
    if (f->st != FM_OK) return;
    if (f->n_fields == 0) f->pos.line = f->cur_line;
    if (f->on_row) f->st = f->on_row(f->ctx, &f->pos, f->n_fields, f->err);
    f->pos.row++;
    f->n_fields = 0;
}

static FmStatus parse_chunk(struct csv_parser *p, Feed *f, const char *s, size_t len) {
    size_t done = csv_parse(p, s, len, cb_field, cb_row, f);
    if (f->st != FM_OK) return f->st;
    if (done != len) {
        char where[600];
        f->pos.line = f->cur_line;
        int e = csv_error(p);
        if (e == CSV_ENOMEM || e == CSV_ETOOBIG)
            return f->st = FM_FAIL(f->err, FM_ERR_NOMEM, fm_csv_where(&f->pos, where, sizeof where),
                                   "out of memory parsing CSV");
        return f->st = FM_FAIL(f->err, FM_ERR_FORMAT, fm_csv_where(&f->pos, where, sizeof where),
                               "malformed CSV: %s", csv_strerror(e));
    }
    return FM_OK;
}

static int blank_line(const char *s, size_t len) {
    for (size_t i = 0; i < len; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n') return 0;
    return 1;
}

FmStatus fm_csv_read_file(FmCsvReader *r, const char *path, const char *label, int flags,
                          FmCsvFieldFn on_field, FmCsvRowFn on_row, void *ctx, FmError *err) {
    if (!label) label = path;
    if (!r->buf) {
        r->buf = fm_malloc(BLOCK_BYTES);
        if (!r->buf) return FM_FAIL(err, FM_ERR_NOMEM, label, "out of memory for the read buffer");
        r->cap = BLOCK_BYTES;
    }
    int fd = open(path, O_RDONLY);
    if (fd < 0) return FM_FAIL(err, FM_ERR_IO, label, "cannot open: %s", strerror(errno));

    struct csv_parser parser;
    if (csv_init(&parser, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
        close(fd);
        return FM_FAIL(err, FM_ERR_NOMEM, label, "cannot initialise the CSV parser");
    }
    csv_set_realloc_func(&parser, fm_realloc);
    csv_set_free_func(&parser, fm_free);

    Feed f = {.pos = {.label = label, .line = 1},
              .cur_line = 1,
              .on_field = on_field,
              .on_row = on_row,
              .ctx = ctx,
              .err = err,
              .st = FM_OK};
    int at_line_start = 1, skipping = 0;
    for (;;) {
        ssize_t got = read(fd, r->buf, r->cap);
        if (got < 0) {
            if (errno == EINTR) continue;
            f.st = FM_FAIL(err, FM_ERR_IO, label, "read failed: %s", strerror(errno));
            break;
        }
        if (got == 0) break;
        const char *s = r->buf, *end = r->buf + got;
        while (s < end && f.st == FM_OK) {
            const char *nl = memchr(s, '\n', (size_t)(end - s));
            const char *stop = nl ? nl + 1 : end;
            size_t len = (size_t)(stop - s);
            if (at_line_start && !f.row_open && (flags & FM_CSV_COMMENTS) && s[0] == '#') skipping = 1;
            if (!skipping) {
                /* A row is open after a non-blank line until libcsv reports its end. */
                if (!blank_line(s, len)) f.row_open = 1;
                parse_chunk(&parser, &f, s, len);
            }
            if (nl) {
                f.cur_line++;
                at_line_start = 1;
                skipping = 0;
            } else {
                at_line_start = 0;
            }
            s = stop;
        }
        if (f.st != FM_OK) break;
    }
    close(fd);
    if (f.st == FM_OK) {
        /* The last line may lack its LF: it is then line cur_line, else the row ended already. */
        if (csv_fini(&parser, cb_field, cb_row, &f) != 0 && f.st == FM_OK) {
            char where[600];
            f.pos.line = f.cur_line;
            f.st = FM_FAIL(err, FM_ERR_FORMAT, fm_csv_where(&f.pos, where, sizeof where),
                           "malformed CSV: unterminated quoted field");
        }
    }
    if (f.st == FM_OK && f.pos.row == 0)
        f.st = FM_FAIL(err, FM_ERR_FORMAT, label, "empty file, expected a header line");
    csv_free(&parser);
    return f.st;
}

/* ---- field parsers ---- */

static void trim(const char **s, size_t *len) {
    while (*len && (**s == ' ' || **s == '\t'))
        (*s)++, (*len)--;
    while (*len && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t' || (*s)[*len - 1] == '\r'))
        (*len)--;
}

static int is_missing_word(const char *s, size_t len) {
    if (len == 2) return s[0] == 'N' && s[1] == 'A';
    if (len == 3) return (s[0] | 32) == 'n' && (s[1] | 32) == 'a' && (s[2] | 32) == 'n';
    return 0;
}

static const double POW10[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                               1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

int fm_csv_parse_number(const char *s, size_t len, double *out) {
    trim(&s, &len);
    *out = NAN;
    if (len == 0 || is_missing_word(s, len)) return FM_CSV_NUM_MISSING;
    /* Fast path: [sign] digits [. digits] with a mantissa below 2^53 and at most 22 decimals.
     * Then m / 10^k is the correctly rounded value (both operands exact, one IEEE division),
     * which is what strtod returns. Anything else goes through strtod after a charset check. */
    size_t i = 0;
    int neg = 0;
    if (s[i] == '+' || s[i] == '-') neg = s[i++] == '-';
    uint64_t m = 0;
    int digits = 0, frac = 0, ok = 1;
    while (i < len && s[i] >= '0' && s[i] <= '9') {
        if (m < (UINT64_C(1) << 53) / 10)
            m = m * 10 + (uint64_t)(s[i] - '0');
        else
            ok = 0;
        i++, digits++;
    }
    if (i < len && s[i] == '.') {
        i++;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (m < (UINT64_C(1) << 53) / 10)
                m = m * 10 + (uint64_t)(s[i] - '0');
            else
                ok = 0;
            i++, digits++, frac++;
        }
    }
    if (digits == 0) return FM_CSV_NUM_BAD;
    if (i == len && ok && frac <= 22) {
        double v = (double)m / POW10[frac];
        *out = neg ? -v : v;
        return FM_CSV_NUM_OK;
    }
    /* Slow path (exponents, long mantissas): only digits, sign, point and exponent allowed, so
     * strtod cannot accept hex, "inf" or "nan" here. */
    if (i < len && s[i] != 'e' && s[i] != 'E') return FM_CSV_NUM_BAD;
    char tmp[128];
    if (len >= sizeof tmp) return FM_CSV_NUM_BAD;
    for (size_t k = 0; k < len; k++) {
        char c = s[k];
        if (!((c >= '0' && c <= '9') || c == '+' || c == '-' || c == '.' || c == 'e' || c == 'E'))
            return FM_CSV_NUM_BAD;
    }
    memcpy(tmp, s, len);
    tmp[len] = '\0';
    char *end;
    errno = 0;
    double v = strtod(tmp, &end);
    if (end != tmp + len || !isfinite(v)) return FM_CSV_NUM_BAD;
    *out = v;
    return FM_CSV_NUM_OK;
}

int fm_csv_parse_int64(const char *s, size_t len, int64_t *out) {
    trim(&s, &len);
    *out = 0;
    if (len == 0) return FM_CSV_NUM_MISSING;
    size_t i = 0;
    int neg = 0;
    if (s[i] == '+' || s[i] == '-') neg = s[i++] == '-';
    if (i == len) return FM_CSV_NUM_BAD;
    uint64_t v = 0;
    for (; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return FM_CSV_NUM_BAD;
        uint64_t d = (uint64_t)(s[i] - '0');
        if (v > (UINT64_C(9223372036854775807) - d) / 10) return FM_CSV_NUM_BAD;
        v = v * 10 + d;
    }
    *out = neg ? -(int64_t)v : (int64_t)v;
    return FM_CSV_NUM_OK;
}

int fm_csv_parse_hhmm(const char *s, size_t len, double *hours) {
    trim(&s, &len);
    *hours = NAN;
    if (len == 0) return FM_CSV_NUM_MISSING;
    size_t i = 0;
    long h = 0;
    while (i < len && s[i] >= '0' && s[i] <= '9' && i < 7)
        h = h * 10 + (s[i++] - '0');
    if (i == 0 || i + 3 != len || s[i] != ':') return FM_CSV_NUM_BAD;
    char m1 = s[i + 1], m2 = s[i + 2];
    if (m1 < '0' || m1 > '5' || m2 < '0' || m2 > '9') return FM_CSV_NUM_BAD;
    *hours = (double)h + (double)((m1 - '0') * 10 + (m2 - '0')) / 60.0;
    return FM_CSV_NUM_OK;
}

/* ---- header matching ---- */

void fm_csv_columns_init(FmCsvColumns *cols) {
    memset(cols, 0, sizeof *cols);
}

int fm_csv_columns_want(FmCsvColumns *cols, const char *name, int required) {
    FM_ASSERT(cols->n < FM_CSV_MAX_COLUMNS);
    int k = cols->n++;
    cols->names[k] = name;
    cols->required[k] = required;
    cols->index[k] = -1;
    return k;
}

FmStatus fm_csv_columns_header(FmCsvColumns *cols, const FmCsvPos *pos, const char *s, FmError *err) {
    size_t used = strlen(cols->seen);
    if (used + 2 < sizeof cols->seen)
        snprintf(cols->seen + used, sizeof cols->seen - used, "%s%s", pos->col ? "," : "", s);
    for (int k = 0; k < cols->n; k++) {
        if (strcmp(cols->names[k], s) != 0) continue;
        if (cols->index[k] >= 0) {
            char where[600];
            return FM_FAIL(err, FM_ERR_FORMAT, fm_csv_where(pos, where, sizeof where),
                           "column '%s' appears twice in the header", s);
        }
        cols->index[k] = pos->col;
    }
    return FM_OK;
}

FmStatus fm_csv_columns_check(const FmCsvColumns *cols, const FmCsvPos *pos, FmError *err) {
    for (int k = 0; k < cols->n; k++) {
        if (cols->required[k] && cols->index[k] < 0) {
            char where[600];
            return FM_FAIL(err, FM_ERR_FORMAT, fm_csv_where(pos, where, sizeof where),
                           "missing column '%s' (header has: %s)", cols->names[k], cols->seen);
        }
    }
    return FM_OK;
}
