/* The model file of a training run: the model file of models/model_file.h (configuration,
 * the training split's standardisation statistics of the model's modalities, parameters)
 * plus a group /study that makes
 * it usable on its own for evaluation and prediction:
 *   /study  attributes
 *     label_names          the model's label columns, joined by newlines (mortality,
 *                          los_gt_7d, los_log_days, phe_shock, ...)
 *     thresholds           (n_labels) float64: the F1 decision threshold of each binary and
 *                          multi-label column, chosen on the validation part at the best
 *                          epoch (NaN for regression columns)
 *     los_log_offset_days  los_log_days = ln(LOS days + this) in the training cohort
 *     split, seed, best_epoch
 *     config               the resolved study configuration (INI text)
 * The file is written at a temporary path and renamed into place. */
#ifndef FM_TRAIN_MODEL_FILE_H
#define FM_TRAIN_MODEL_FILE_H

#include <stdint.h>

#include "models/model.h"
#include "models/model_file.h"
#include "preprocessing/cohort.h"
#include "src/error.h"
#include "src/train_spec.h"

typedef struct {
    int n_labels;
    char label_name[FM_TRAIN_MAX_LABELS][FM_TRAIN_LABEL_NAME_MAX];
    const char *label_ptr[FM_TRAIN_MAX_LABELS]; /* label_name[j], for APIs taking char ** */
    double threshold[FM_TRAIN_MAX_LABELS];
    double los_log_offset_days;
    int64_t split, seed, best_epoch;
    char *config_text; /* owned (fm_free); NULL when unknown */
} FmTrainInfo;

/* Frees config_text; NULL is accepted. */
void fm_train_info_free(FmTrainInfo *info);

/* Points label_ptr[j] at label_name[j] (call after filling or copying an FmTrainInfo). */
void fm_train_info_bind(FmTrainInfo *info);

/* Writes `model` with the statistics of split `split` of cohort `c` for the model's
 * modalities (in the model's order) and `info` to `path`, atomically. */
FmStatus fm_train_model_save(const char *path, const FmModel *model, const FmCohort *c, int split,
                             const FmTrainSpec *spec, const FmTrainInfo *info, FmError *err);

/* Reads a model file with its statistics and its /study group (FM_ERR_FORMAT naming the file
 * when either is missing: a model file not written by training). *model (without optimiser
 * state), *norm (fm_norm_free) and *info (fm_train_info_free) are the caller's. */
FmStatus fm_train_model_load(const char *path, FmModel **model, FmNorm *norm, FmTrainInfo *info, FmError *err);

/* Reads only the /study group of the model file at `path` for a model of n_labels label
 * columns into *info (fm_train_info_free). */
FmStatus fm_train_model_read_info(const char *path, int n_labels, FmTrainInfo *info, FmError *err);

/* Adopts the model's statistics for cohort `c` (for batches made with
 * FM_COHORT_NORM_EXTERNAL): the model's modalities get its means and deviations after a check
 * that the cohort's channels are the model's, by name and order (FM_ERR_MISMATCH naming the
 * modality and channel); the cohort's other modalities, which the model never reads, keep
 * neutral statistics. `cohort_name` names the cohort in messages. */
FmStatus fm_train_model_use_norm(FmCohort *c, const char *cohort_name, const FmModelConfig *mc,
                                 const FmNorm *model_norm, FmError *err);

#endif
