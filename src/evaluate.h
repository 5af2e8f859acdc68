/* Running a model over a set of stays: predictions (and labels) per stay and label column,
 * the task losses, and the experts each modality's tokens went to.
 *
 * The forward is the evaluation forward (no dropout, no routing noise), so predictions depend
 * only on the model and the stays; the stays are processed in the given order, in batches of
 * the batch buffers' capacity. Expert counts and probes are added to what they already hold
 * (clear them first for one evaluation's). */
#ifndef FM_EVALUATE_H
#define FM_EVALUATE_H

#include <stdint.h>

#include "models/model.h"
#include "preprocessing/cohort.h"
#include "src/error.h"
#include "src/evaluate_experts.h"
#include "src/evaluate_usage.h"
#include "src/train_batch.h"
#include "src/train_spec.h"

/* Predictions of n stays for n_labels label columns (the model's). */
typedef struct {
    int64_t n;
    int n_labels;
    int64_t *stay_id; /* (n) */
    float *score;     /* (n, n_labels) probabilities (binary, multi-label) or values (regression) */
    float *label;     /* (n, n_labels) the known labels; NaN where unknown */
    uint8_t *mask;    /* (n, n_labels) 1 = label known */
} FmPredictions;

/* Allocates room for n stays (n may be 0). On failure *p is zeroed. */
FmStatus fm_evaluate_predictions_alloc(FmPredictions *p, int64_t n, int n_labels, FmError *err);

/* Frees the arrays; NULL and zeroed records are accepted. */
void fm_evaluate_predictions_free(FmPredictions *p);

/* Task losses over a whole evaluation set: per task the mean over its known labels (each
 * batch's mean weighted by its known labels), and total = sum_t weight_t loss_t (the task loss
 * the model trains on, without the auxiliary terms). A task without any known label has loss
 * NaN and adds nothing to the total. */
typedef struct {
    double task_loss[FM_MAX_TASKS];
    int64_t known[FM_MAX_TASKS];
    double total;
} FmEvaluateLoss;

/* What an evaluation injects and collects. */
typedef struct {
    double missing_rate; /* modalities dropped at random (src/evaluate_missing.h); 0 = none */
    uint64_t seed;       /* of the injection */
    FmExpertUsage *usage; /* when not NULL, the expert counts of every forward are added */
    FmExpertProbe *probe; /* when not NULL, every forward's tokens are probed into its sums
                             (src/evaluate_experts.h) */
    FmEvaluateLoss *loss; /* when not NULL, receives the task losses */
} FmEvaluateOptions;

/* Runs `model` over stays idx[0..n) of cohort `c` (standardised with `norm`: a split index or
 * FM_COHORT_NORM_EXTERNAL) with workspace `ws` and batch buffers `tb` (both sized for tb->cap
 * stays), and fills `out` (allocated for n stays and the spec's label columns). */
FmStatus fm_evaluate_predict(const FmModel *model, FmModelWorkspace *ws, FmTrainBatch *tb, const FmCohort *c,
                             const FmTrainSpec *spec, int norm, const int64_t *idx, int64_t n,
                             const FmEvaluateOptions *opt, FmPredictions *out, FmError *err);

#endif
