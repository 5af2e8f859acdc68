/* Status codes, the error record every fallible function fills, and the always-on assert.
 *
 * Two tiers, kept apart: runtime failures (bad input, I/O, memory) return an FmStatus and fill
 * an FmError that names where in the input the problem is; programmer errors (a broken internal
 * invariant) stop the process through FM_ASSERT, which is never compiled out. */
#ifndef FM_ERROR_H
#define FM_ERROR_H

#include <stdio.h>

typedef enum {
    FM_OK = 0,
    FM_ERR_NOMEM,       /* an allocation failed */
    FM_ERR_IO,          /* a file could not be opened, read, written or renamed */
    FM_ERR_FORMAT,      /* input data is malformed (bad header, number, rank, dtype...) */
    FM_ERR_CONFIG,      /* a configuration key, value or combination is invalid */
    FM_ERR_ARG,         /* a command-line argument or API argument is invalid */
    FM_ERR_MISMATCH,    /* two inputs disagree (model vs cohort, names, shapes, versions) */
    FM_ERR_NUMERIC,     /* a non-finite loss or value appeared during computation */
    FM_ERR_INTERRUPTED, /* the user asked the process to stop (SIGINT/SIGTERM) */
    FM_ERR_UNSUPPORTED  /* a valid request this build or this file version cannot serve */
} FmStatus;

/* The error record. `where` locates the problem in the user's input, compiler style
 * ("set-a/132539.txt:17", "notes.h5:/embedding"), or is empty when there is no such place;
 * `message` says what is wrong; src_file/src_line say which line of our code raised it. */
typedef struct {
    FmStatus code;
    char where[512];
    char message[1024];
    const char *src_file;
    int src_line;
} FmError;

/* Fills `err` (which may be NULL: then nothing is recorded) and returns `code`, so a failing
 * function can `return FM_FAIL(err, FM_ERR_FORMAT, path_line, "expected ...", ...)`.
 * `where` may be NULL or "". The message is printf-formatted and truncated to fit. */
FmStatus fm_error_set_at(FmError *err, FmStatus code, const char *src_file, int src_line,
                         const char *where, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));

#define FM_FAIL(err, code, where, ...) \
    fm_error_set_at((err), (code), __FILE__, __LINE__, (where), __VA_ARGS__)

/* Resets `err` to FM_OK with empty strings. NULL is accepted. */
void fm_error_clear(FmError *err);

/* Prefixes the existing message with "context: " (e.g. the file being processed) so a low-level
 * error gains the caller's context. NULL or an FM_OK record is left alone. */
void fm_error_prefix(FmError *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A short stable name for a status code ("FM_ERR_FORMAT" -> "format error"). */
const char *fm_status_name(FmStatus code);

/* Writes "where: message" (or "message") and a newline to `out`. */
void fm_error_print(const FmError *err, FILE *out);

/* Internal invariant check, always on (also with NDEBUG): prints file:line and aborts. */
#define FM_ASSERT(cond)                                         \
    do {                                                        \
        if (!(cond)) fm_assert_fail(#cond, __FILE__, __LINE__); \
    } while (0)

_Noreturn void fm_assert_fail(const char *cond, const char *file, int line);

#endif
