#include "src/error.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

FmStatus fm_error_set_at(FmError *err, FmStatus code, const char *src_file, int src_line,
                         const char *where, const char *fmt, ...) {
    if (!err) return code;
    err->code = code;
    err->src_file = src_file;
    err->src_line = src_line;
    snprintf(err->where, sizeof err->where, "%s", where ? where : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return code;
}

void fm_error_clear(FmError *err) {
    if (!err) return;
    memset(err, 0, sizeof *err);
}

void fm_error_prefix(FmError *err, const char *fmt, ...) {
    if (!err || err->code == FM_OK) return;
    char prefix[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char joined[sizeof err->message];
    snprintf(joined, sizeof joined, "%s: %s", prefix, err->message);
    memcpy(err->message, joined, sizeof joined);
}

const char *fm_status_name(FmStatus code) {
    switch (code) {
    case FM_OK: return "ok";
    case FM_ERR_NOMEM: return "out of memory";
    case FM_ERR_IO: return "I/O error";
    case FM_ERR_FORMAT: return "format error";
    case FM_ERR_CONFIG: return "configuration error";
    case FM_ERR_ARG: return "invalid argument";
    case FM_ERR_MISMATCH: return "mismatch";
    case FM_ERR_NUMERIC: return "numerical error";
    case FM_ERR_INTERRUPTED: return "interrupted";
    case FM_ERR_UNSUPPORTED: return "unsupported";
    }
    return "unknown error";
}

void fm_error_print(const FmError *err, FILE *out) {
    if (!err) return;
    if (err->where[0])
        fprintf(out, "%s: %s\n", err->where, err->message);
    else
        fprintf(out, "%s\n", err->message[0] ? err->message : fm_status_name(err->code));
}

void fm_assert_fail(const char *cond, const char *file, int line) {
    fprintf(stderr, "%s:%d: internal error: assertion failed: %s\n", file, line, cond);
    fflush(stderr);
    abort();
}
