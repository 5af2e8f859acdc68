/* A growable text buffer for the modules that render text (INI files, Markdown tables, CSV).
 *
 * Appends never fail loudly: the first allocation failure marks the buffer failed, later
 * appends do nothing, and fm_strbuf_take reports it, so a renderer checks once at the end. */
#ifndef FM_STRBUF_H
#define FM_STRBUF_H

#include <stddef.h>

typedef struct {
    char *data; /* NUL-terminated when not NULL */
    size_t len; /* characters before the NUL */
    size_t cap;
    int failed; /* an allocation failed: the content is incomplete */
} FmStrBuf;

/* An empty buffer (no allocation yet). */
void fm_strbuf_init(FmStrBuf *b);

/* Appends `s` (len bytes for fm_strbuf_append_n). */
void fm_strbuf_append(FmStrBuf *b, const char *s);
void fm_strbuf_append_n(FmStrBuf *b, const char *s, size_t len);

/* Appends printf-formatted text. */
void fm_strbuf_appendf(FmStrBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends the shortest "%.{1..17}g" text that reads back (strtod) as exactly x; "nan", "inf"
 * and "-inf" for non-finite values. */
void fm_strbuf_append_double(FmStrBuf *b, double x);

/* Writes that shortest text of x into buf (cap >= 32). */
void fm_strbuf_format_double(char *buf, size_t cap, double x);

/* Hands the text to the caller (free with fm_free) and empties the buffer; "" when nothing
 * was appended. NULL when an append failed or the final allocation fails (the buffer is
 * released either way). */
char *fm_strbuf_take(FmStrBuf *b);

/* Releases the buffer; NULL is accepted. */
void fm_strbuf_free(FmStrBuf *b);

#endif
