#include "src/strbuf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/alloc.h"

void fm_strbuf_init(FmStrBuf *b) {
    memset(b, 0, sizeof *b);
}

/* Makes room for `extra` more characters plus the NUL; 0 on failure (buffer marked failed). */
static int reserve(FmStrBuf *b, size_t extra) {
    if (b->failed) return 0;
    if (b->len + extra + 1 <= b->cap) return 1;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1)
        cap *= 2;
    char *data = fm_realloc(b->data, cap);
    if (!data) {
        b->failed = 1;
        return 0;
    }
    b->data = data;
    b->cap = cap;
    return 1;
}

void fm_strbuf_append_n(FmStrBuf *b, const char *s, size_t len) {
    if (!reserve(b, len)) return;
    memcpy(b->data + b->len, s, len);
    b->len += len;
    b->data[b->len] = '\0';
}

void fm_strbuf_append(FmStrBuf *b, const char *s) {
    fm_strbuf_append_n(b, s, strlen(s));
}

void fm_strbuf_appendf(FmStrBuf *b, const char *fmt, ...) {
    if (b->failed) return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        b->failed = 1;
        return;
    }
    if (!reserve(b, (size_t)n)) return;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

char *fm_strbuf_take(FmStrBuf *b) {
    if (!b->failed && !b->data) reserve(b, 0);
    if (b->failed) {
        fm_strbuf_free(b);
        return NULL;
    }
    b->data[b->len] = '\0';
    char *text = b->data;
    fm_strbuf_init(b);
    return text;
}

void fm_strbuf_free(FmStrBuf *b) {
    if (!b) return;
    fm_free(b->data);
    fm_strbuf_init(b);
}

void fm_strbuf_format_double(char *buf, size_t cap, double x) {
    if (!isfinite(x)) {
        snprintf(buf, cap, "%s", isnan(x) ? "nan" : x > 0 ? "inf" : "-inf");
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) return;
    }
}

void fm_strbuf_append_double(FmStrBuf *b, double x) {
    char buf[40];
    fm_strbuf_format_double(buf, sizeof buf, x);
    fm_strbuf_append(b, buf);
}
