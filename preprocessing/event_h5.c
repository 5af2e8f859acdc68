#include "preprocessing/event_h5.h"

#include <limits.h>
#include <math.h>
#include <string.h>

#include "src/alloc.h"
#include "src/atomic_file.h"
#include "src/h5io.h"

/* Checks every value of a (rows, cols) float array; the first non-finite one is an error at
 * `where` naming its row and column (cols == 1: the row only). */
static FmStatus check_finite(const float *x, size_t rows, size_t cols, const char *where, FmError *err) {
    for (size_t r = 0; r < rows; r++) {
        for (size_t c = 0; c < cols; c++) {
            float v = x[r * cols + c];
            if (isfinite(v)) continue;
            const char *what = isnan(v) ? "NaN" : "infinite (or beyond float32 range)";
            if (cols == 1) return FM_FAIL(err, FM_ERR_FORMAT, where, "row %zu: value is %s", r, what);
            return FM_FAIL(err, FM_ERR_FORMAT, where, "row %zu, column %zu: value is %s", r, c, what);
        }
    }
    return FM_OK;
}

FmStatus fm_event_h5_read(const char *path, const char *values_name, FmEventTable *out, FmError *err) {
    memset(out, 0, sizeof *out);
    hid_t file;
    FmStatus st = fm_h5_open_read(path, &file, err);
    if (st != FM_OK) return st;
    char where[FM_PATH_MAX + 64];
    hsize_t ids_dims[1] = {0}, time_dims[1] = {0}, val_dims[2] = {0, 0};
    void *ids = NULL, *times = NULL, *values = NULL;
    st = fm_h5_read(file, path, "stay_id", FM_H5_I64, 1, ids_dims, &ids, err);
    if (st == FM_OK) st = fm_h5_read(file, path, "time_h", FM_H5_F32, 1, time_dims, &times, err);
    if (st == FM_OK) st = fm_h5_read(file, path, values_name, FM_H5_F32, 2, val_dims, &values, err);
    size_t n = (size_t)ids_dims[0];
    if (st == FM_OK && time_dims[0] != ids_dims[0]) {
        snprintf(where, sizeof where, "%s:/time_h", path);
        st = FM_FAIL(err, FM_ERR_FORMAT, where, "%llu rows, but /stay_id has %zu",
                     (unsigned long long)time_dims[0], n);
    }
    if (st == FM_OK) {
        snprintf(where, sizeof where, "%s:/%s", path, values_name);
        if (val_dims[0] != ids_dims[0])
            st = FM_FAIL(err, FM_ERR_FORMAT, where, "%llu rows, but /stay_id has %zu",
                         (unsigned long long)val_dims[0], n);
        else if (val_dims[1] == 0)
            st = FM_FAIL(err, FM_ERR_FORMAT, where, "vectors have no columns");
        else if (val_dims[1] > INT_MAX)
            st = FM_FAIL(err, FM_ERR_UNSUPPORTED, where, "%llu columns is too many",
                         (unsigned long long)val_dims[1]);
    }
    if (st == FM_OK) {
        snprintf(where, sizeof where, "%s:/time_h", path);
        st = check_finite(times, n, 1, where, err);
    }
    if (st == FM_OK) {
        snprintf(where, sizeof where, "%s:/%s", path, values_name);
        st = check_finite(values, n, (size_t)val_dims[1], where, err);
    }
    H5Fclose(file);
    if (st != FM_OK) {
        fm_free(ids);
        fm_free(times);
        fm_free(values);
        return st;
    }
    out->n = n;
    out->dim = (int)val_dims[1];
    out->stay_id = ids;
    out->time_h = times;
    out->values = values;
    return FM_OK;
}

/* One contiguous dataset without modification times (HDF5 records them by default, which would
 * make two otherwise identical files differ). */
static int write_dataset(hid_t file, const char *name, hid_t file_type, hid_t mem_type, int rank,
                         const hsize_t *dims, const void *data) {
    hid_t space = H5Screate_simple(rank, dims, NULL);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    H5Pset_obj_track_times(dcpl, 0);
    hid_t dset = H5Dcreate2(file, name, file_type, space, H5P_DEFAULT, dcpl, H5P_DEFAULT);
    herr_t rc = -1;
    if (dset >= 0) rc = dims[0] == 0 ? 0 : H5Dwrite(dset, mem_type, H5S_ALL, H5S_ALL, H5P_DEFAULT, data);
    if (dset >= 0) H5Dclose(dset);
    H5Pclose(dcpl);
    H5Sclose(space);
    return rc < 0 ? -1 : 0;
}

FmStatus fm_event_h5_write(const char *path, const char *values_name, const FmEventTable *t, FmError *err) {
    FM_ASSERT(t->dim >= 1);
    char tmp[FM_PATH_MAX];
    FmStatus st = fm_atomic_temp_path(path, tmp, sizeof tmp, err);
    if (st != FM_OK) return st;
    hid_t file;
    if (fm_h5_create(tmp, &file, NULL) != FM_OK)
        return FM_FAIL(err, FM_ERR_IO, path, "cannot create HDF5 file");
    hsize_t n_dims[1] = {t->n}, v_dims[2] = {t->n, (hsize_t)t->dim};
    const char *bad = NULL;
    if (write_dataset(file, "stay_id", H5T_STD_I64LE, H5T_NATIVE_INT64, 1, n_dims, t->stay_id) < 0)
        bad = "stay_id";
    else if (write_dataset(file, "time_h", H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 1, n_dims, t->time_h) < 0)
        bad = "time_h";
    else if (write_dataset(file, values_name, H5T_IEEE_F32LE, H5T_NATIVE_FLOAT, 2, v_dims, t->values) < 0)
        bad = values_name;
    if (H5Fclose(file) < 0 && !bad) bad = "(file)";
    if (bad) {
        fm_atomic_abort(tmp);
        return FM_FAIL(err, FM_ERR_IO, path, "cannot write HDF5 dataset /%s", bad);
    }
    return fm_atomic_commit(tmp, path, err);
}
