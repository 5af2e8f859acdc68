/* Streaming CSV input over libcsv, with line numbers, for every CSV the loaders read.
 *
 * A file is read in blocks of 1 MiB into a buffer the reader keeps between files, fed to libcsv
 * one line at a time (so every row knows the line it is on), and handed to the caller field by
 * field through callbacks: nothing is allocated per line. libcsv runs in strict mode (a stray
 * quote is an error) and NUL-terminates every field. Lines are counted at LF; CRLF files work
 * (the CR ends the row, the LF then ends an empty line libcsv skips). Empty lines produce no
 * row. A row's line is the line on which its first field ends (they differ only when the first
 * field is a quoted value spanning lines). Row 0 is the header.
 *
 * Also here: the strict field parsers every reader uses for numbers, integers and HH:MM times. */
#ifndef FM_CSV_STREAM_H
#define FM_CSV_STREAM_H

#include <csv.h>
#include <stddef.h>
#include <stdint.h>

#include "src/error.h"

/* Where the reader is: `label` names the file in messages, `line` is 1-based (header = 1),
 * `row` is 0 for the header, `col` is the 0-based column of the field being delivered. */
typedef struct {
    const char *label;
    long line;
    long row;
    int col;
} FmCsvPos;

/* Called for each field, in order. `s` is NUL-terminated (len excludes the NUL) and valid only
 * during the call. A non-FM_OK return stops the read; the callback fills err. */
typedef FmStatus (*FmCsvFieldFn)(void *ctx, const FmCsvPos *pos, const char *s, size_t len, FmError *err);
/* Called at the end of each row with the number of fields it had. */
typedef FmStatus (*FmCsvRowFn)(void *ctx, const FmCsvPos *pos, int n_fields, FmError *err);

/* Reader flags. */
#define FM_CSV_COMMENTS 1 /* skip lines whose first character is '#' (outside quoted fields) */

typedef struct {
    char *buf; /* block buffer, kept between files */
    size_t cap;
} FmCsvReader;

/* Initialises an empty reader (no allocation) / releases its buffer. free accepts a reader
 * that was only initialised. */
void fm_csv_reader_init(FmCsvReader *r);
void fm_csv_reader_free(FmCsvReader *r);

/* Streams the file `path` through the callbacks. `label` (NULL: path) names the file in error
 * messages. Errors: FM_ERR_IO when the file cannot be opened or read ("<label>: cannot open:
 * No such file or directory"); FM_ERR_FORMAT for malformed CSV ("<label>:<line>: malformed
 * CSV ..."), for an empty file ("<label>: empty file, expected a header line"), or whatever a
 * callback returns. */
FmStatus fm_csv_read_file(FmCsvReader *r, const char *path, const char *label, int flags,
                          FmCsvFieldFn on_field, FmCsvRowFn on_row, void *ctx, FmError *err);

/* Field parsers. Each parses the whole field (leading/trailing blanks allowed, nothing else):
 *   FM_CSV_NUM_OK       a finite number in *out
 *   FM_CSV_NUM_MISSING  empty, "NaN", "nan", "NA" (not measured); *out = NaN
 *   FM_CSV_NUM_BAD      anything else (including "inf", "1,5", "12a") */
enum { FM_CSV_NUM_OK = 0, FM_CSV_NUM_MISSING = 1, FM_CSV_NUM_BAD = -1 };
int fm_csv_parse_number(const char *s, size_t len, double *out);
/* A decimal 64-bit integer (optional sign); FM_CSV_NUM_MISSING only for an empty field. */
int fm_csv_parse_int64(const char *s, size_t len, int64_t *out);
/* An elapsed time "H:MM" or "HH:MM" (hours may exceed 24, minutes 00-59) in hours:
 * "36:30" -> 36.5. FM_CSV_NUM_MISSING for an empty field. */
int fm_csv_parse_hhmm(const char *s, size_t len, double *hours);

/* Header matching: `names` are the wanted column names (n of them); on the header row call
 * fm_csv_columns_header for each field; then fm_csv_columns_check verifies that every required
 * name was found exactly once ("<label>:1: missing column 'Value' (header has: Time,Parameter)").
 * index[i] is the column of names[i] or -1. */
#define FM_CSV_MAX_COLUMNS 64
typedef struct {
    int n;
    const char *names[FM_CSV_MAX_COLUMNS];
    int required[FM_CSV_MAX_COLUMNS];
    int index[FM_CSV_MAX_COLUMNS];
    char seen[512]; /* the header as read, for messages */
} FmCsvColumns;

/* Declares the wanted columns; returns the slot of `name` in `cols`. */
void fm_csv_columns_init(FmCsvColumns *cols);
int fm_csv_columns_want(FmCsvColumns *cols, const char *name, int required);
/* Records one header field; a wanted column named twice is a format error. */
FmStatus fm_csv_columns_header(FmCsvColumns *cols, const FmCsvPos *pos, const char *s, FmError *err);
FmStatus fm_csv_columns_check(const FmCsvColumns *cols, const FmCsvPos *pos, FmError *err);

/* Formats "<label>:<line>" into buf (for FM_FAIL's where). */
const char *fm_csv_where(const FmCsvPos *pos, char *buf, size_t cap);

#endif
