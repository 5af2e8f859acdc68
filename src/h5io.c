#include "src/h5io.h"

#include <string.h>

#include "src/alloc.h"

void fm_h5_quiet(void) { H5Eset_auto2(H5E_DEFAULT, NULL, NULL); }

static hid_t mem_type(FmH5Type t) {
    switch (t) {
    case FM_H5_F32: return H5T_NATIVE_FLOAT;
    case FM_H5_F64: return H5T_NATIVE_DOUBLE;
    case FM_H5_I32: return H5T_NATIVE_INT32;
    case FM_H5_I64: return H5T_NATIVE_INT64;
    case FM_H5_U8: return H5T_NATIVE_UINT8;
    }
    FM_ASSERT(0);
}

/* Little-endian file types, so files are the same bytes on every machine. */
static hid_t file_type(FmH5Type t) {
    switch (t) {
    case FM_H5_F32: return H5T_IEEE_F32LE;
    case FM_H5_F64: return H5T_IEEE_F64LE;
    case FM_H5_I32: return H5T_STD_I32LE;
    case FM_H5_I64: return H5T_STD_I64LE;
    case FM_H5_U8: return H5T_STD_U8LE;
    }
    FM_ASSERT(0);
}

static size_t type_size(FmH5Type t) {
    switch (t) {
    case FM_H5_F32: case FM_H5_I32: return 4;
    case FM_H5_F64: case FM_H5_I64: return 8;
    case FM_H5_U8: return 1;
    }
    FM_ASSERT(0);
}

static int is_float(FmH5Type t) { return t == FM_H5_F32 || t == FM_H5_F64; }

FmStatus fm_h5_create(const char *path, hid_t *file, FmError *err) {
    fm_h5_quiet();
    *file = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    if (*file < 0) return FM_FAIL(err, FM_ERR_IO, path, "cannot create HDF5 file");
    return FM_OK;
}

FmStatus fm_h5_open_read(const char *path, hid_t *file, FmError *err) {
    fm_h5_quiet();
    htri_t is_h5 = H5Fis_hdf5(path);
    if (is_h5 < 0) return FM_FAIL(err, FM_ERR_IO, path, "cannot open file");
    if (is_h5 == 0) return FM_FAIL(err, FM_ERR_FORMAT, path, "not an HDF5 file");
    *file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (*file < 0) return FM_FAIL(err, FM_ERR_IO, path, "cannot open HDF5 file");
    return FM_OK;
}

FmStatus fm_h5_group_create(hid_t loc, const char *name, hid_t *group, FmError *err) {
    hid_t lcpl = H5Pcreate(H5P_LINK_CREATE);
    H5Pset_create_intermediate_group(lcpl, 1);
    hid_t gcpl = H5Pcreate(H5P_GROUP_CREATE);
    H5Pset_obj_track_times(gcpl, 0); /* no modification times: same data, same bytes */
    *group = H5Gcreate2(loc, name, lcpl, gcpl, H5P_DEFAULT);
    H5Pclose(gcpl);
    H5Pclose(lcpl);
    if (*group < 0) return FM_FAIL(err, FM_ERR_IO, NULL, "cannot create HDF5 group %s", name);
    return FM_OK;
}

int fm_h5_exists(hid_t loc, const char *name) {
    /* H5Lexists fails on a missing intermediate group; check each prefix of the path. */
    char prefix[1024];
    size_t len = strlen(name);
    if (len == 0 || len >= sizeof prefix) return 0;
    for (size_t i = 1; i <= len; i++) {
        if (i < len && name[i] != '/') continue;
        memcpy(prefix, name, i);
        prefix[i] = '\0';
        if (H5Lexists(loc, prefix, H5P_DEFAULT) <= 0) return 0;
    }
    return 1;
}

FmStatus fm_h5_group_open(hid_t loc, const char *path, const char *name, hid_t *group, FmError *err) {
    if (!fm_h5_exists(loc, name)) return FM_FAIL(err, FM_ERR_FORMAT, path, "missing group /%s", name);
    *group = H5Gopen2(loc, name, H5P_DEFAULT);
    if (*group < 0) return FM_FAIL(err, FM_ERR_FORMAT, path, "/%s is not a group", name);
    return FM_OK;
}

FmStatus fm_h5_write(hid_t loc, const char *name, FmH5Type type, int rank, const hsize_t *dims,
                     const void *data, int compress, FmError *err) {
    FM_ASSERT(rank >= 1 && rank <= FM_H5_MAX_RANK);
    hsize_t total = 1;
    for (int i = 0; i < rank; i++) total *= dims[i];
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_obj_track_times(dcpl, 0); /* no modification times: same data, same bytes */
    if (compress && total > 0) {
        /* Chunks of whole rows along dim 0, about 256 KiB each. */
        hsize_t chunk[FM_H5_MAX_RANK];
        hsize_t row_bytes = total / dims[0] * type_size(type); /* > 0: every dim is > 0 */
        hsize_t rows = (256 * 1024) / row_bytes;
        chunk[0] = rows < 1 ? 1 : (rows > dims[0] ? dims[0] : rows);
        for (int i = 1; i < rank; i++) chunk[i] = dims[i];
        H5Pset_chunk(dcpl, rank, chunk);
        H5Pset_shuffle(dcpl);
        H5Pset_deflate(dcpl, 4);
    }
    hid_t dset = H5Dcreate2(loc, name, file_type(type), space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    herr_t rc = -1;
    if (dset >= 0) rc = total ? H5Dwrite(dset, mem_type(type), H5S_ALL, H5S_ALL, H5P_DEFAULT, data) : 0;
    if (dset >= 0) H5Dclose(dset);
    H5Pclose(dcpl);
    H5Sclose(space);
    if (rc < 0) return FM_FAIL(err, FM_ERR_IO, NULL, "cannot write HDF5 dataset %s", name);
    return FM_OK;
}

FmStatus fm_h5_read(hid_t loc, const char *path, const char *name, FmH5Type type, int rank,
                    hsize_t *dims, void **data, FmError *err) {
    char where[1024];
    snprintf(where, sizeof where, "%s:/%s", path, name);
    *data = NULL;
    if (!fm_h5_exists(loc, name)) return FM_FAIL(err, FM_ERR_FORMAT, where, "missing dataset");
    hid_t dset = H5Dopen2(loc, name, H5P_DEFAULT);
    if (dset < 0) return FM_FAIL(err, FM_ERR_FORMAT, where, "not a dataset");
    FmStatus st = FM_OK;
    hid_t space = H5Dget_space(dset), ftype = H5Dget_type(dset);
    int actual_rank = H5Sget_simple_extent_ndims(space);
    H5T_class_t cls = H5Tget_class(ftype);
    hsize_t actual[FM_H5_MAX_RANK];
    if (actual_rank != rank) {
        st = FM_FAIL(err, FM_ERR_FORMAT, where, "expected rank %d, got %d", rank, actual_rank);
    } else if (is_float(type) ? cls != H5T_FLOAT : cls != H5T_INTEGER) {
        st = FM_FAIL(err, FM_ERR_FORMAT, where, "expected %s values, got another type",
                     is_float(type) ? "floating-point" : "integer");
    } else {
        H5Sget_simple_extent_dims(space, actual, NULL);
        hsize_t total = 1;
        for (int i = 0; i < rank && st == FM_OK; i++) {
            if (dims[i] > 0 && dims[i] != actual[i])
                st = FM_FAIL(err, FM_ERR_FORMAT, where, "dimension %d: expected %llu, got %llu", i,
                             (unsigned long long)dims[i], (unsigned long long)actual[i]);
            total *= actual[i];
        }
        if (st == FM_OK) {
            *data = fm_malloc_array(total, type_size(type));
            if (!*data) {
                st = FM_FAIL(err, FM_ERR_NOMEM, where, "out of memory reading dataset");
            } else if (total && H5Dread(dset, mem_type(type), H5S_ALL, H5S_ALL, H5P_DEFAULT, *data) < 0) {
                fm_free(*data);
                *data = NULL;
                st = FM_FAIL(err, FM_ERR_FORMAT, where, "cannot read dataset");
            } else {
                memcpy(dims, actual, (size_t)rank * sizeof *dims);
            }
        }
    }
    H5Tclose(ftype);
    H5Sclose(space);
    H5Dclose(dset);
    return st;
}

static FmStatus attr_write(hid_t obj, const char *name, hid_t ftype, hid_t mtype, hid_t space,
                           const void *value, FmError *err) {
    if (H5Aexists(obj, name) > 0) H5Adelete(obj, name);
    hid_t attr = H5Acreate2(obj, name, ftype, space, H5P_DEFAULT, H5P_DEFAULT);
    herr_t rc = attr >= 0 ? H5Awrite(attr, mtype, value) : -1;
    if (attr >= 0) H5Aclose(attr);
    if (rc < 0) return FM_FAIL(err, FM_ERR_IO, NULL, "cannot write HDF5 attribute %s", name);
    return FM_OK;
}

FmStatus fm_h5_attr_write_str(hid_t obj, const char *name, const char *value, FmError *err) {
    hid_t type = H5Tcopy(H5T_C_S1);
    H5Tset_size(type, strlen(value) + 1);
    H5Tset_strpad(type, H5T_STR_NULLTERM);
    hid_t space = H5Screate(H5S_SCALAR);
    FmStatus st = attr_write(obj, name, type, type, space, value, err);
    H5Sclose(space);
    H5Tclose(type);
    return st;
}

FmStatus fm_h5_attr_write_i64(hid_t obj, const char *name, int64_t value, FmError *err) {
    hid_t space = H5Screate(H5S_SCALAR);
    FmStatus st = attr_write(obj, name, H5T_STD_I64LE, H5T_NATIVE_INT64, space, &value, err);
    H5Sclose(space);
    return st;
}

FmStatus fm_h5_attr_write_f64(hid_t obj, const char *name, double value, FmError *err) {
    hid_t space = H5Screate(H5S_SCALAR);
    FmStatus st = attr_write(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, space, &value, err);
    H5Sclose(space);
    return st;
}

FmStatus fm_h5_attr_write_f64_array(hid_t obj, const char *name, const double *values, size_t n,
                                    FmError *err) {
    hsize_t dims[1] = {n};
    hid_t space = n ? H5Screate_simple(1, dims, NULL) : H5Screate(H5S_NULL);
    FmStatus st = attr_write(obj, name, H5T_IEEE_F64LE, H5T_NATIVE_DOUBLE, space, values, err);
    H5Sclose(space);
    return st;
}

/* Opens attribute `name` and checks its type class; on failure fills err naming path and name. */
static FmStatus attr_open(hid_t obj, const char *path, const char *name, H5T_class_t want,
                          hid_t *attr, FmError *err) {
    if (H5Aexists(obj, name) <= 0)
        return FM_FAIL(err, FM_ERR_FORMAT, path, "missing attribute '%s'", name);
    *attr = H5Aopen(obj, name, H5P_DEFAULT);
    if (*attr < 0) return FM_FAIL(err, FM_ERR_FORMAT, path, "cannot open attribute '%s'", name);
    hid_t type = H5Aget_type(*attr);
    H5T_class_t cls = H5Tget_class(type);
    H5Tclose(type);
    if (cls != want) {
        H5Aclose(*attr);
        return FM_FAIL(err, FM_ERR_FORMAT, path, "attribute '%s' has the wrong type", name);
    }
    return FM_OK;
}

FmStatus fm_h5_attr_read_str(hid_t obj, const char *path, const char *name, char **value, FmError *err) {
    hid_t attr;
    *value = NULL;
    FmStatus st = attr_open(obj, path, name, H5T_STRING, &attr, err);
    if (st != FM_OK) return st;
    hid_t ftype = H5Aget_type(attr);
    if (H5Tis_variable_str(ftype) > 0) {
        H5Tclose(ftype);
        H5Aclose(attr);
        return FM_FAIL(err, FM_ERR_FORMAT, path, "attribute '%s': variable-length strings are not supported", name);
    }
    size_t size = H5Tget_size(ftype);
    H5Tclose(ftype);
    hid_t mtype = H5Tcopy(H5T_C_S1);
    H5Tset_size(mtype, size + 1);
    H5Tset_strpad(mtype, H5T_STR_NULLTERM);
    *value = fm_calloc(size + 1, 1);
    if (!*value) st = FM_FAIL(err, FM_ERR_NOMEM, path, "out of memory reading attribute '%s'", name);
    else if (H5Aread(attr, mtype, *value) < 0) st = FM_FAIL(err, FM_ERR_FORMAT, path, "cannot read attribute '%s'", name);
    H5Tclose(mtype);
    H5Aclose(attr);
    if (st != FM_OK) {
        fm_free(*value);
        *value = NULL;
    }
    return st;
}

FmStatus fm_h5_attr_read_i64(hid_t obj, const char *path, const char *name, int64_t *value, FmError *err) {
    hid_t attr;
    FmStatus st = attr_open(obj, path, name, H5T_INTEGER, &attr, err);
    if (st != FM_OK) return st;
    if (H5Aread(attr, H5T_NATIVE_INT64, value) < 0)
        st = FM_FAIL(err, FM_ERR_FORMAT, path, "cannot read attribute '%s'", name);
    H5Aclose(attr);
    return st;
}

FmStatus fm_h5_attr_read_f64(hid_t obj, const char *path, const char *name, double *value, FmError *err) {
    hid_t attr;
    FmStatus st = attr_open(obj, path, name, H5T_FLOAT, &attr, err);
    if (st != FM_OK) return st;
    if (H5Aread(attr, H5T_NATIVE_DOUBLE, value) < 0)
        st = FM_FAIL(err, FM_ERR_FORMAT, path, "cannot read attribute '%s'", name);
    H5Aclose(attr);
    return st;
}

FmStatus fm_h5_attr_read_f64_array(hid_t obj, const char *path, const char *name, double **values,
                                   size_t *n, FmError *err) {
    hid_t attr;
    *values = NULL;
    *n = 0;
    FmStatus st = attr_open(obj, path, name, H5T_FLOAT, &attr, err);
    if (st != FM_OK) return st;
    hid_t space = H5Aget_space(attr);
    hssize_t count = H5Sget_simple_extent_npoints(space);
    H5Sclose(space);
    *values = fm_malloc_array(count > 0 ? (size_t)count : 1, sizeof(double));
    if (!*values) st = FM_FAIL(err, FM_ERR_NOMEM, path, "out of memory reading attribute '%s'", name);
    else if (count > 0 && H5Aread(attr, H5T_NATIVE_DOUBLE, *values) < 0)
        st = FM_FAIL(err, FM_ERR_FORMAT, path, "cannot read attribute '%s'", name);
    H5Aclose(attr);
    if (st != FM_OK) {
        fm_free(*values);
        *values = NULL;
    } else {
        *n = count > 0 ? (size_t)count : 0;
    }
    return st;
}
