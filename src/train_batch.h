/* The model's view of a cohort batch: the cohort's batch gathered once per step
 * (preprocessing/cohort.h), seen through the study's modality selection and label columns
 * (src/train_spec.h).
 *
 * The view's modalities share the gathered batch's arrays (no copy); its labels are the spec's
 * label columns, copied or derived per stay into buffers of their own. Everything is sized once
 * by fm_train_batch_alloc, so making a batch allocates nothing. */
#ifndef FM_TRAIN_BATCH_H
#define FM_TRAIN_BATCH_H

#include <stdint.h>

#include "models/model.h"
#include "preprocessing/cohort.h"
#include "src/error.h"
#include "src/train_spec.h"

typedef struct {
    FmBatch full; /* every cohort modality and label column (owned) */
    FmBatch view; /* what the model reads; its arrays belong to `full` and to the fields below */
    FmBatchModality mod[FM_MODEL_MAX_MODALITIES];
    float *label;       /* (cap, n_labels) */
    uint8_t *label_mask; /* (cap, n_labels) */
    int cap;            /* stays the buffers hold */
} FmTrainBatch;

/* Allocates buffers for up to max_B stays of cohort `c` under `spec`. On failure *tb is
 * zeroed. */
FmStatus fm_train_batch_alloc(FmTrainBatch *tb, const FmCohort *c, const FmTrainSpec *spec, int max_B,
                              FmError *err);

/* Frees the buffers; NULL and zeroed batches are accepted. */
void fm_train_batch_free(FmTrainBatch *tb);

/* Gathers stays idx[0..n) (standardised with statistics `norm`: a split index or
 * FM_COHORT_NORM_EXTERNAL) and fills tb->view for the model: its modalities in model order,
 * its label columns (unknown where the cohort's label is unknown or the spec reads none). */
FmStatus fm_train_batch_make(FmTrainBatch *tb, const FmCohort *c, const FmTrainSpec *spec, int norm,
                             const int64_t *idx, int n, FmError *err);

/* The largest batch shape the model sees on this cohort: max_B stays, each modality at the
 * cohort's longest stay (for fm_model_workspace_create). */
void fm_train_batch_shape(const FmCohort *c, const FmTrainSpec *spec, int max_B, FmModelShape *shape);

#endif
