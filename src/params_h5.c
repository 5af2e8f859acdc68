#include "src/params_h5.h"

#include <string.h>

#include "src/alloc.h"
#include "src/h5io.h"

/* Tensors above this many floats are chunked and compressed; below, compression costs more
 * than it saves. */
#define COMPRESS_ABOVE 4096

FmStatus fm_params_write_h5(hid_t group, const FmParams *p, const float *arena, FmError *err) {
    for (int i = 0; i < p->n_tensors; i++) {
        const FmTensorInfo *t = &p->tensors[i];
        hsize_t dims[FM_PARAM_MAX_DIMS];
        for (int d = 0; d < t->ndim; d++) dims[d] = (hsize_t)t->shape[d];
        FmStatus st = fm_h5_write(group, t->name, FM_H5_F32, t->ndim, dims, arena + t->offset,
                                  t->count > COMPRESS_ABOVE, err);
        if (st != FM_OK) return st;
    }
    return FM_OK;
}

static void format_shape(char *buf, size_t cap, int ndim, const hsize_t *dims) {
    size_t used = (size_t)snprintf(buf, cap, "(");
    for (int d = 0; d < ndim && used < cap; d++)
        used += (size_t)snprintf(buf + used, cap - used, d ? ", %llu" : "%llu", (unsigned long long)dims[d]);
    if (used < cap) snprintf(buf + used, cap - used, ")");
}

/* Collects the first link name under the group that the table does not declare. */
typedef struct {
    const FmParams *p;
    char unknown[FM_PARAM_NAME_MAX + 32];
} UnknownScan;

static herr_t find_unknown(hid_t group, const char *name, const H5L_info_t *info, void *data) {
    (void)group;
    (void)info;
    UnknownScan *scan = data;
    if (fm_params_find(scan->p, name) >= 0) return 0;
    snprintf(scan->unknown, sizeof scan->unknown, "%s", name);
    return 1; /* stop */
}

FmStatus fm_params_read_h5(hid_t group, const char *path, const FmParams *p, float *arena,
                           FmError *err) {
    for (int i = 0; i < p->n_tensors; i++) {
        const FmTensorInfo *t = &p->tensors[i];
        if (H5Lexists(group, t->name, H5P_DEFAULT) <= 0)
            return FM_FAIL(err, FM_ERR_MISMATCH, path, "parameter %s: missing", t->name);
        hid_t dset = H5Dopen2(group, t->name, H5P_DEFAULT);
        if (dset < 0) return FM_FAIL(err, FM_ERR_MISMATCH, path, "parameter %s: not a dataset", t->name);
        hid_t space = H5Dget_space(dset);
        int ndim = H5Sget_simple_extent_ndims(space);
        hsize_t dims[FM_H5_MAX_RANK] = {0};
        if (ndim > 0 && ndim <= FM_H5_MAX_RANK) H5Sget_simple_extent_dims(space, dims, NULL);
        H5Sclose(space);
        int same = ndim == t->ndim;
        for (int d = 0; same && d < ndim; d++) same = dims[d] == (hsize_t)t->shape[d];
        if (!same) {
            H5Dclose(dset);
            hsize_t want[FM_PARAM_MAX_DIMS];
            for (int d = 0; d < t->ndim; d++) want[d] = (hsize_t)t->shape[d];
            char want_s[96], got_s[96];
            format_shape(want_s, sizeof want_s, t->ndim, want);
            format_shape(got_s, sizeof got_s, ndim > 0 && ndim <= FM_H5_MAX_RANK ? ndim : 0, dims);
            return FM_FAIL(err, FM_ERR_MISMATCH, path, "parameter %s: expected shape %s, got %s", t->name,
                           want_s, got_s);
        }
        herr_t rc = H5Dread(dset, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, arena + t->offset);
        H5Dclose(dset);
        if (rc < 0) return FM_FAIL(err, FM_ERR_FORMAT, path, "parameter %s: cannot read values", t->name);
    }
    UnknownScan scan = {.p = p, .unknown = ""};
    if (H5Literate(group, H5_INDEX_NAME, H5_ITER_INC, NULL, find_unknown, &scan) < 0)
        return FM_FAIL(err, FM_ERR_FORMAT, path, "cannot list parameters");
    if (scan.unknown[0])
        return FM_FAIL(err, FM_ERR_MISMATCH, path, "parameter %s: not part of this model's configuration",
                       scan.unknown);
    return FM_OK;
}
