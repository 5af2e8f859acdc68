/* Vector events in HDF5: the shared layout of note embeddings and image feature vectors.
 *
 * A file holds three datasets of equal length N, one row per item (note or image):
 *   /stay_id   integer (N)            stay identifier, read as int64
 *   /time_h    float32 or float64 (N) hours since ICU admission
 *   /<values>  float32 or float64 (N, F) the vector, F >= 1 (e.g. "embedding", "features")
 * Values are converted to float32 on reading. Every value must be finite: a NaN or infinity (or
 * a float64 beyond float32's range, which becomes infinite) is an error naming the dataset, the
 * row (0-based, as h5py and HDF5 index rows) and the column. Times may be negative (an item
 * recorded before admission); windowing is the cohort builder's business. */
#ifndef FM_EVENT_H5_H
#define FM_EVENT_H5_H

#include "preprocessing/event_table.h"
#include "src/error.h"

/* Reads `path` into *out (rows in file order, dim = F). `values_name` is the vector dataset's
 * name without the leading slash. On failure *out is left empty (all NULL, n = 0) and err
 * names the file and dataset, e.g. "notes.h5:/embedding: expected rank 2, got 3". The caller
 * frees the table with fm_event_table_free. Status: FM_ERR_IO (cannot open), FM_ERR_FORMAT
 * (not HDF5, missing dataset, wrong rank, wrong class, length mismatch, F = 0, non-finite
 * value), FM_ERR_NOMEM. */
FmStatus fm_event_h5_read(const char *path, const char *values_name, FmEventTable *out, FmError *err);

/* Writes table `t` (t->dim >= 1) to `path` atomically as int64 /stay_id, float32 /time_h and
 * float32 /<values_name> (n, dim). The file's bytes depend only on the table (no timestamps),
 * so the same table always gives the same file. */
FmStatus fm_event_h5_write(const char *path, const char *values_name, const FmEventTable *t, FmError *err);

#endif
