/* Small HDF5 helpers shared by the cohort, model and checkpoint files.
 *
 * Every reader checks rank, dimensions and element class and reports a mismatch with the file
 * and dataset ("cohort.h5:/vitals/values: expected rank 3, got 2"). HDF5's own error printing
 * is switched off: errors reach the user only through FmError. Datasets written with
 * compress != 0 are chunked and deflate-compressed (level 4, with shuffle). */
#ifndef FM_H5IO_H
#define FM_H5IO_H

#include <hdf5.h>
#include <stdint.h>

#include "src/error.h"

typedef enum { FM_H5_F32, FM_H5_F64, FM_H5_I32, FM_H5_I64, FM_H5_U8 } FmH5Type;

#define FM_H5_MAX_RANK 8

/* Turns off HDF5's automatic error printing for this process (idempotent). */
void fm_h5_quiet(void);

/* Creates (truncating) `path` for writing, or opens it read-only. `path` is only a label in
 * error messages for fm_h5_open_read's later calls; keep it for them. */
FmStatus fm_h5_create(const char *path, hid_t *file, FmError *err);
FmStatus fm_h5_open_read(const char *path, hid_t *file, FmError *err);

/* Creates group `name` under `loc` (intermediate groups too). Close it with H5Gclose. */
FmStatus fm_h5_group_create(hid_t loc, const char *name, hid_t *group, FmError *err);
/* Opens existing group `name`; a missing group is a format error naming `path`. */
FmStatus fm_h5_group_open(hid_t loc, const char *path, const char *name, hid_t *group, FmError *err);

/* 1 if `name` exists as a link under `loc`, else 0. */
int fm_h5_exists(hid_t loc, const char *name);

/* Writes dataset `name` (rank 1..8, dims as given, any dim may be 0) from `data` in memory type
 * `type`. With compress != 0 and a non-empty dataset, chunked along the first dimension. */
FmStatus fm_h5_write(hid_t loc, const char *name, FmH5Type type, int rank, const hsize_t *dims,
                     const void *data, int compress, FmError *err);

/* Reads dataset `name` into a new buffer of memory type `type` (HDF5 converts between widths
 * of the same class; float vs integer class is a format error). `rank` is the expected rank;
 * dims[i] > 0 on entry is an expected size, checked; on return dims holds the actual shape.
 * *data is allocated with fm_malloc (freed by the caller), even for an empty dataset.
 * `path` labels error messages. */
FmStatus fm_h5_read(hid_t loc, const char *path, const char *name, FmH5Type type, int rank,
                    hsize_t *dims, void **data, FmError *err);

/* Scalar and string attributes on an object (file, group or dataset). */
FmStatus fm_h5_attr_write_str(hid_t obj, const char *name, const char *value, FmError *err);
FmStatus fm_h5_attr_write_i64(hid_t obj, const char *name, int64_t value, FmError *err);
FmStatus fm_h5_attr_write_f64(hid_t obj, const char *name, double value, FmError *err);
/* A float array attribute (n values), e.g. normalisation statistics. */
FmStatus fm_h5_attr_write_f64_array(hid_t obj, const char *name, const double *values, size_t n,
                                    FmError *err);

/* Readers: a missing attribute or a wrong class is a format error naming `path`. The string
 * reader allocates *value (fm_free). The array reader allocates *values and sets *n. */
FmStatus fm_h5_attr_read_str(hid_t obj, const char *path, const char *name, char **value, FmError *err);
FmStatus fm_h5_attr_read_i64(hid_t obj, const char *path, const char *name, int64_t *value, FmError *err);
FmStatus fm_h5_attr_read_f64(hid_t obj, const char *path, const char *name, double *value, FmError *err);
FmStatus fm_h5_attr_read_f64_array(hid_t obj, const char *path, const char *name, double **values,
                                   size_t *n, FmError *err);

#endif
