/* Arrays of strings in HDF5 files (channel, label and split names), stored as a 1-D dataset of
 * fixed-length, NUL-padded ASCII strings (h5py reads them as bytes, e.g.
 * f["labels/names"][:].astype(str)). */
#ifndef FM_H5_STRINGS_H
#define FM_H5_STRINGS_H

#include <hdf5.h>
#include <stddef.h>

#include "src/error.h"

/* Writes n strings as dataset `name` under `loc` (n may be 0). */
FmStatus fm_h5_strings_write(hid_t loc, const char *name, const char *const *s, size_t n, FmError *err);

/* Reads dataset `name`: checks rank 1, string class, and (when expected_n > 0 on entry) the
 * length. *out is an fm_malloc'd array of *n fm_strdup'd strings; free with
 * fm_h5_strings_free. `path` labels messages ("cohort.h5"). */
FmStatus fm_h5_strings_read(hid_t loc, const char *path, const char *name, size_t expected_n, char ***out,
                            size_t *n, FmError *err);

/* Frees an array from fm_h5_strings_read (or any fm_malloc'd array of n fm_malloc'd strings).
 * NULL is accepted. */
void fm_h5_strings_free(char **s, size_t n);

#endif
