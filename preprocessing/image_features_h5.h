/* Precomputed image feature vectors from HDF5 (one row per image).
 *
 * Layout (FORMATS 6): /stay_id int (N), /time_h float32|float64 (N), /features float32|float64
 * (N, F), e.g. F = 1024 for DenseNet-121 pooled features. Validation and error messages are
 * those of preprocessing/event_h5.h ("features.h5:/features: expected rank 2, got 1"). */
#ifndef FM_IMAGE_FEATURES_H5_H
#define FM_IMAGE_FEATURES_H5_H

#include "preprocessing/event_table.h"
#include "src/error.h"

/* Reads the image-features file `path` into *out (rows in file order, dim = F). On failure *out
 * is empty and err names the file and dataset. The caller frees *out with fm_event_table_free. */
FmStatus fm_image_features_read_h5(const char *path, FmEventTable *out, FmError *err);

/* Writes `t` as an image-features file (atomically, float32, same table gives same bytes). */
FmStatus fm_image_features_write_h5(const char *path, const FmEventTable *t, FmError *err);

#endif
