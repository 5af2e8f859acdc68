/* Evaluating or applying a trained model on a cohort file: `fusemoe eval` and
 * `fusemoe predict` as one library call.
 *
 * The model file (src/train_model_file.h) carries everything needed: the configuration, the
 * normalisation statistics of its training split, the label columns and the decision
 * thresholds chosen on validation. The cohort is always standardised with the model's
 * statistics (after a by-name check of its modalities and channels), so a cohort the model
 * has never seen (another data set, another hospital) is scored exactly as its training
 * cohort would be.
 *
 * Stays: part `part` (train, val or test) of split `split` of the cohort, or all of its stays
 * (FM_EVAL_PART_ALL, for a new cohort whose splits mean nothing to the model).
 *
 * Outputs in out_dir (created when missing), written atomically:
 *   eval     predictions.csv (stay_id,task,y_true,y_score; known labels only) and
 *            metrics.json ("run": cohort, split, part, stays, missing rate, seed, the model's
 *            training split and best epoch; "tasks": src/evaluate_report.h; "experts": the
 *            expert diagnostics of these stays, src/evaluate_experts.h)
 *   predict  predictions.csv (stay_id,task,y_score; every stay and label column) */
#ifndef FM_EVALUATE_RUN_H
#define FM_EVALUATE_RUN_H

#include <stdint.h>

#include "src/error.h"
#include "src/evaluate_experts.h"
#include "src/evaluate_usage.h"

#define FM_EVAL_PART_ALL (-1)

typedef struct {
    const char *model_path;
    const char *cohort_path;
    int split;           /* -1: the split the model was trained on */
    int part;            /* FM_PART_TRAIN, FM_PART_VAL, FM_PART_TEST or FM_EVAL_PART_ALL */
    double missing_rate; /* src/evaluate_missing.h */
    uint64_t seed;       /* of the injection and of the bootstrap */
    int bootstrap;       /* replicates; 0 = no intervals */
    int batch_size;      /* stays per forward; 0 = the model's training batch size (the
                            rounding of the batched products depends on it, so this repeats
                            the training run's test predictions to the bit) */
    int with_labels;     /* 1: eval (labels, metrics); 0: predict */
    int threads;         /* OpenBLAS threads */
    const char *out_dir; /* NULL: write nothing (e.g. to collect expert usage only) */
    FmExpertUsage *usage; /* when not NULL: created for the model (fm_evaluate_usage_free is the
                             caller's) and filled with the expert counts of every forward */
    FmExpertProbe *probe; /* when not NULL: created for the model (fm_evaluate_experts_free is
                             the caller's) and filled with the expert similarity and agreement
                             of every forward's tokens */
} FmEvaluateRunOptions;

/* Defaults: split -1, part test, no missing modalities, seed 1, 1000 replicates, batch size 0,
 * with labels, 1 thread. model_path, cohort_path and out_dir must be set. */
FmEvaluateRunOptions fm_evaluate_run_defaults(void);

/* What a run did. */
typedef struct {
    int64_t n_stays;
    int split;           /* the split used (-1 with FM_EVAL_PART_ALL) */
} FmEvaluateRunResult;

/* Runs it. Errors name the file: FM_ERR_IO, FM_ERR_FORMAT (model or cohort file),
 * FM_ERR_MISMATCH (the cohort lacks a modality, channel or label column of the model),
 * FM_ERR_ARG (split out of range). */
FmStatus fm_evaluate_run(const FmEvaluateRunOptions *opt, FmEvaluateRunResult *res, FmError *err);

#endif
