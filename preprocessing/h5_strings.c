#include "preprocessing/h5_strings.h"

#include <string.h>

#include "src/alloc.h"
#include "src/h5io.h"

void fm_h5_strings_free(char **s, size_t n) {
    if (!s) return;
    for (size_t i = 0; i < n; i++)
        fm_free(s[i]);
    fm_free(s);
}

FmStatus fm_h5_strings_write(hid_t loc, const char *name, const char *const *s, size_t n, FmError *err) {
    size_t width = 1;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(s[i]);
        if (len > width) width = len;
    }
    char *buf = fm_calloc(n ? n : 1, width);
    if (!buf) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory writing %s", name);
    for (size_t i = 0; i < n; i++)
        memcpy(buf + i * width, s[i], strlen(s[i]));
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, width);
    H5Tset_strpad(type, H5T_STR_NULLPAD);
    hsize_t dims[1] = {n};
    hid_t space = H5Screate_simple(1, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_obj_track_times(dcpl, 0); /* no modification times: same data, same bytes (as src/h5io.c) */
    hid_t dset = H5Dcreate2(loc, name, type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    H5Pclose(dcpl);
    herr_t rc = -1;
    if (dset >= 0) rc = n ? H5Dwrite(dset, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) : 0;
    if (dset >= 0) H5Dclose(dset);
    H5Sclose(space);
    H5Tclose(type);
    fm_free(buf);
    if (rc < 0) return FM_FAIL(err, FM_ERR_IO, NULL, "cannot write HDF5 dataset %s", name);
    return FM_OK;
}

FmStatus fm_h5_strings_read(hid_t loc, const char *path, const char *name, size_t expected_n, char ***out,
                            size_t *n, FmError *err) {
    char where[1024];
    snprintf(where, sizeof where, "%s:/%s", path, name);
    *out = NULL;
    *n = 0;
    if (!fm_h5_exists(loc, name)) return FM_FAIL(err, FM_ERR_FORMAT, where, "missing dataset");
    hid_t dset = H5Dopen2(loc, name, H5P_DEFAULT);
    if (dset < 0) return FM_FAIL(err, FM_ERR_FORMAT, where, "not a dataset");
    hid_t space = H5Dget_space(dset), ftype = H5Dget_type(dset);
    FmStatus st = FM_OK;
    hsize_t dims[1] = {0};
    int rank = H5Sget_simple_extent_ndims(space);
    char *buf = NULL;
    char **s = NULL;
    size_t width = 0;
    if (rank != 1) {
        st = FM_FAIL(err, FM_ERR_FORMAT, where, "expected rank 1, got %d", rank);
    } else if (H5Tget_class(ftype) != H5T_STRING || H5Tis_variable_str(ftype) > 0) {
        st = FM_FAIL(err, FM_ERR_FORMAT, where, "expected fixed-length strings");
    } else {
        H5Sget_simple_extent_dims(space, dims, NULL);
        if (expected_n > 0 && dims[0] != expected_n)
            st = FM_FAIL(err, FM_ERR_FORMAT, where, "expected %zu strings, got %llu", expected_n,
                         (unsigned long long)dims[0]);
    }
    if (st == FM_OK) {
        width = H5Tget_size(ftype);
        buf = fm_calloc(dims[0] ? dims[0] : 1, width + 1);
        s = fm_calloc(dims[0] ? dims[0] : 1, sizeof *s);
        if (!buf || !s) st = FM_FAIL(err, FM_ERR_NOMEM, where, "out of memory reading strings");
    }
    if (st == FM_OK && dims[0]) {
        hid_t mtype = H5Tcopy(H5T_C_S1);
        H5Tset_size(mtype, width + 1);
        H5Tset_strpad(mtype, H5T_STR_NULLTERM);
        if (H5Dread(dset, mtype, H5S_ALL, H5S_ALL, H5P_DEFAULT, buf) < 0)
            st = FM_FAIL(err, FM_ERR_FORMAT, where, "cannot read strings");
        H5Tclose(mtype);
    }
    for (size_t i = 0; st == FM_OK && i < dims[0]; i++) {
        s[i] = fm_strdup(buf + i * (width + 1));
        if (!s[i]) st = FM_FAIL(err, FM_ERR_NOMEM, where, "out of memory reading strings");
    }
    fm_free(buf);
    H5Tclose(ftype);
    H5Sclose(space);
    H5Dclose(dset);
    if (st != FM_OK) {
        fm_h5_strings_free(s, dims[0]);
        return st;
    }
    *out = s;
    *n = dims[0];
    return FM_OK;
}
