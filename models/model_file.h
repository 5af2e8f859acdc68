/* The model file: a trained model as one HDF5 file.
 *
 * Layout (format "fusemoe-model", version FM_MODEL_FILE_VERSION):
 *   /                      attributes format, format_version, library_version
 *   /config                attributes: every scalar of FmModelConfig (options by name)
 *   /config/modality.<i>   attributes of modality i: name, kind, C, imputation, patch, ...
 *   /config/task.<i>       attributes of task i: name, kind, label0, n, weight, ...
 *   /normalization/<name>  per modality with statistics: attributes name, kind, C, channels
 *                          (the channel names joined by newlines), mean and std (C doubles)
 *   /params/<tensor>       one float32 dataset per named parameter tensor, with its shape
 * Written at a temporary path and renamed into place, so a reader never sees half a file. */
#ifndef FM_MODEL_FILE_H
#define FM_MODEL_FILE_H

#include "models/model.h"
#include "src/error.h"

#define FM_MODEL_FILE_FORMAT "fusemoe-model"
#define FM_MODEL_FILE_VERSION 1

/* The normalisation statistics of one modality, as the cohort's training split gave them:
 * values were standardised as (x - mean) / std per channel before reaching the model. */
typedef struct {
    char name[FM_MODALITY_NAME_MAX]; /* the modality's name in the model */
    FmModalityKind kind;
    int C;
    char **channel; /* (C) channel names, no newline in them */
    double *mean;   /* (C) */
    double *std;    /* (C) */
} FmNormStats;

/* Writes `model` (configuration and parameters) and n_stats normalisation records (stats may
 * be NULL when n_stats is 0) to `path`, atomically. FM_ERR_ARG for statistics that name no
 * modality of the model or have a channel name with a newline; FM_ERR_IO when writing fails
 * (then `path` is left as it was). */
FmStatus fm_model_file_save(const char *path, const FmModel *model, const FmNormStats *stats, int n_stats,
                            FmError *err);

/* Reads a model file: checks the format and version (FM_ERR_UNSUPPORTED for another version),
 * rebuilds the configuration, creates the model (Adam arenas when with_optimizer != 0) and
 * reads every parameter, checking names and shapes (FM_ERR_MISMATCH naming the file and the
 * tensor). *stats (may be NULL: not read) receives the normalisation records in name order,
 * *n_stats their number; free them with fm_model_file_stats_free. On failure nothing is left allocated. */
FmStatus fm_model_file_load(const char *path, FmModel **model, int with_optimizer, FmNormStats **stats,
                            int *n_stats, FmError *err);

/* Reads the parameters of a model file into an existing model (e.g. built from a configuration
 * of the caller's), checking the format version and that the file holds exactly the model's
 * tensors with the model's shapes:
 *   model.h5: parameter fusion.2.moe.router_w.0: expected shape (16, 128), got (8, 128) */
FmStatus fm_model_file_load_params(const char *path, FmModel *model, FmError *err);

/* Frees records from fm_model_file_load. NULL is accepted. */
void fm_model_file_stats_free(FmNormStats *stats, int n_stats);

#endif
