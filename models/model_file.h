/* The model file: a trained model as one HDF5 file.
 *
 * Layout (format "fusemoe-model", version FM_MODEL_FILE_VERSION):
 *   /                      attributes format, format_version, library_version
 *   /config                attributes: every scalar of FmModelConfig (options by name)
 *   /config/modality.<i>   attributes of modality i: name, kind, C, imputation, patch, ...
 *   /config/task.<i>       attributes of task i: name, kind, label0, n, weight, ...
 *   /norm                  the standardisation statistics the model was trained with, when
 *                          given (fm_norm_write_h5's layout, preprocessing/norm.h)
 *   /params/<tensor>       one float32 dataset per named parameter tensor, with its shape
 * Written at a temporary path and renamed into place, so a reader never sees half a file. */
#ifndef FM_MODEL_FILE_H
#define FM_MODEL_FILE_H

#include "models/model.h"
#include "preprocessing/norm.h"
#include "src/error.h"

#define FM_MODEL_FILE_FORMAT "fusemoe-model"
#define FM_MODEL_FILE_VERSION 1

/* Writes `model` (configuration and parameters) and, when norm != NULL, the standardisation
 * statistics the model was trained with to `path`, atomically. FM_ERR_ARG when the statistics
 * do not describe the model's modalities (same names, kinds and widths, in order); FM_ERR_IO
 * when writing fails (then `path` is left as it was). */
FmStatus fm_model_file_save(const char *path, const FmModel *model, const FmNorm *norm, FmError *err);

/* Reads a model file: checks the format and version (FM_ERR_UNSUPPORTED for another version),
 * rebuilds the configuration, creates the model (Adam arenas when with_optimizer != 0) and
 * reads every parameter, checking names and shapes (FM_ERR_MISMATCH naming the file and the
 * tensor). With norm != NULL the stored statistics are read into *norm (free with
 * fm_norm_free) and *has_norm (may be NULL) says whether the file had any (else *norm is
 * empty). On failure nothing is left allocated. */
FmStatus fm_model_file_load(const char *path, FmModel **model, int with_optimizer, FmNorm *norm, int *has_norm,
                            FmError *err);

/* Reads the parameters of a model file into an existing model (e.g. built from a configuration
 * of the caller's), checking the format version and that the file holds exactly the model's
 * tensors with the model's shapes:
 *   model.h5: parameter fusion.2.moe.router_w.0: expected shape (16, 128), got (8, 128) */
FmStatus fm_model_file_load_params(const char *path, FmModel *model, FmError *err);

#endif
