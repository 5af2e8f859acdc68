/* A study's model as the cohort feeds it: the mapping from a study configuration (or a trained
 * model) and a cohort to the model configuration, the cohort modalities the model reads and
 * the label columns its tasks learn.
 *
 * Modalities. data.modalities lists cohort modalities by name, in the order the model takes
 * them (empty = every modality of the cohort, in the cohort's order).
 *
 * Tasks and label columns. The model's label columns are compact (0 .. n_labels-1, task by
 * task, in data.tasks order); each comes from one cohort label column:
 *   mortality       the cohort column "mortality" (binary)
 *   los_binary      LOS > data.los_threshold_days: the cohort column los_gt_<T>d when T is the
 *                   threshold the cohort was prepared with; otherwise derived from the cohort's
 *                   los_log_days column v = ln(LOS + offset) as v > ln(T + offset) computed in
 *                   float, so a stay of exactly T days is negative as in the prepared column;
 *                   the derived column is called los_gt_<T>d (e.g. los_gt_3d)
 *   los_regression  the cohort column los_log_days (regression, ln(LOS days + offset))
 *   phenotypes      every binary cohort column of task "phenotype", in cohort order (one
 *                   multi-label task)
 * The model's task names are the data.tasks names.
 *
 * Errors in a configuration are reported where the offending key was set, as
 * src/config.h does ("study.ini:4: [data] modalities: the cohort c.h5 has no modality
 * \"notes\" (it has vitals, labs, static)"). */
#ifndef FM_TRAIN_SPEC_H
#define FM_TRAIN_SPEC_H

#include <stdint.h>

#include "models/model.h"
#include "preprocessing/cohort.h"
#include "src/config.h"
#include "src/error.h"

#define FM_TRAIN_MAX_LABELS 64
#define FM_TRAIN_LABEL_NAME_MAX 64

/* Where one model label column comes from. */
typedef struct {
    char name[FM_TRAIN_LABEL_NAME_MAX]; /* "mortality", "los_gt_7d", "los_log_days", "phe_shock" */
    int column;    /* the cohort's label column read, or -1: none (predictions without labels) */
    int derived;   /* 1: y = (value of `column` > log_cut), LOS above a threshold */
    float log_cut; /* derived only: ln(threshold days + offset) in float */
} FmTrainLabel;

typedef struct {
    FmModelConfig model;                     /* modalities, tasks and every size */
    int cohort_mod[FM_MODEL_MAX_MODALITIES]; /* cohort modality of each model modality */
    int n_labels;                            /* = model.n_labels */
    FmTrainLabel label[FM_TRAIN_MAX_LABELS];
} FmTrainSpec;

/* Builds the spec of study `cfg` (checked with fm_config_check before) on cohort `c`
 * (`cohort_name` names it in messages). Every problem is FM_ERR_CONFIG at the key that causes
 * it: a modality or a task's label the cohort lacks (data.modalities, data.tasks), more than
 * FM_MODEL_MAX_MODALITIES modalities, sizes the model refuses (model.ref_points < 2,
 * model.layers above FM_MODEL_MAX_LAYERS, model.experts above FM_MOE_MAX_EXPERTS, a disjoint
 * router whose experts do not divide among the modalities). Positive-class weights are 1 (see
 * fm_train_spec_class_weights). No allocation. */
FmStatus fm_train_spec_from_config(const FmConfig *cfg, const FmCohort *c, const char *cohort_name,
                                   FmTrainSpec *spec, FmError *err);

/* Builds the spec of a trained model (configuration `mc`, label column names `label_names`,
 * mc->n_labels of them) on cohort `c`: the model's modalities by name (FM_ERR_MISMATCH when the
 * cohort lacks one or has it with another kind or width) and, when need_labels != 0, each
 * label column by name, or derived from los_log_days for a los_gt_<T>d the cohort lacks
 * (FM_ERR_MISMATCH naming the column when neither is possible). With need_labels = 0 every
 * column is -1 (no labels are read). */
FmStatus fm_train_spec_from_model(const FmModelConfig *mc, const char *const *label_names, const FmCohort *c,
                                  const char *cohort_name, int need_labels, FmTrainSpec *spec, FmError *err);

/* Label j of the spec for cohort stay `stay`: returns 1 and sets *y when known, 0 when
 * unknown (or when the column is -1). */
int fm_train_spec_label(const FmTrainSpec *spec, const FmCohort *c, int64_t stay, int j, float *y);

/* "balanced" class weighting: for every binary and multi-label task, pos_weight = negatives /
 * positives among the known labels of the stays idx[0..n) (a multi-label task pools its
 * columns); 1 when a class is absent. */
void fm_train_spec_class_weights(FmTrainSpec *spec, const FmCohort *c, const int64_t *idx, int64_t n);

/* The model label column that stratified draws (train.train_fraction) use: the first column
 * of the first binary or multi-label task, or -1 when every task is a regression. */
int fm_train_spec_strata_label(const FmTrainSpec *spec);

#endif
