/* Atomic output files: write to a temporary file beside the target, then rename over it.
 *
 * A reader never sees a half-written output, and an interrupted or failed run leaves the old
 * file (or no file) in place. The temporary name is "<dir>/.<name>.tmp.<pid>", in the same
 * directory so that rename(2) is atomic. */
#ifndef FM_ATOMIC_FILE_H
#define FM_ATOMIC_FILE_H

#include <stddef.h>
#include <stdio.h>

#include "src/error.h"

#define FM_PATH_MAX 4096

/* Writes the temporary path for `final_path` into tmp (capacity cap). */
FmStatus fm_atomic_temp_path(const char *final_path, char *tmp, size_t cap, FmError *err);

/* Flushes `tmp` to disk and renames it to `final_path`. On failure `tmp` is removed. */
FmStatus fm_atomic_commit(const char *tmp, const char *final_path, FmError *err);

/* Removes the temporary file (if it exists). */
void fm_atomic_abort(const char *tmp);

/* A text or binary file written through stdio and published atomically. */
typedef struct {
    FILE *f;
    char tmp[FM_PATH_MAX];
    char path[FM_PATH_MAX];
} FmAtomicFile;

/* Opens a temporary file for `path`; write through af->f. */
FmStatus fm_atomic_open(FmAtomicFile *af, const char *path, FmError *err);

/* Closes and publishes the file; checks for write errors first. On failure the temporary file
 * is removed and `path` is left as it was. */
FmStatus fm_atomic_close(FmAtomicFile *af, FmError *err);

/* Closes and removes the temporary file without publishing. Safe on an unopened file. */
void fm_atomic_discard(FmAtomicFile *af);

/* Writes `len` bytes to `path` atomically. */
FmStatus fm_atomic_write_all(const char *path, const void *bytes, size_t len, FmError *err);

#endif
