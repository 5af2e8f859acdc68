/* The data of one study run: the cohort, the model's view of it (src/train_spec.h) and the
 * stays of the split's parts, with the training subset (train.train_fraction) drawn.
 *
 * Shared by the model's training (src/train.c) and the baselines (src/baseline.c), so both see
 * exactly the same stays for the same configuration. */
#ifndef FM_TRAIN_STUDY_H
#define FM_TRAIN_STUDY_H

#include <stdint.h>

#include "preprocessing/cohort.h"
#include "src/config.h"
#include "src/error.h"
#include "src/rng.h"
#include "src/train_spec.h"

/* Random stream of the train.train_fraction draw, split off the run's root stream (seeded by
 * train.seed). */
#define FM_STUDY_STREAM_SUBSET 0x53554253u /* "SUBS" */

typedef struct {
    const char *cohort_path; /* data.cohort (owned by the configuration) */
    FmCohort cohort;
    FmTrainSpec spec;
    int split;
    int64_t *train_all, *train, *val, *test; /* parts; train: the subset used (may be train_all) */
    int64_t n_train_all, n_train, n_val, n_test;
} FmStudyData;

/* Loads data.cohort without its observation rows (fm_cohort_load_meta: the caller reads the
 * rows of the stays it serves with fm_cohort_load_rows), checks data.split against it (FM_ERR_CONFIG at the key), builds the spec
 * (modalities, tasks, label columns), lists the split's parts (FM_ERR_ARG without training or
 * validation stays), draws the stratified, seeded train.train_fraction of the training stays
 * (strata: 0, 1 and unknown of the first binary label; at least one stay of every non-empty
 * stratum; cohort order kept) from stream FM_STUDY_STREAM_SUBSET of `root`, and sets balanced
 * class weights when train.class_weighting asks. `cfg` must have passed fm_config_check. On
 * failure everything is released. */
FmStatus fm_study_data_open(FmStudyData *d, const FmConfig *cfg, const FmRng *root, FmError *err);

/* Releases what fm_study_data_open allocated; a zeroed record is accepted. */
void fm_study_data_close(FmStudyData *d);

#endif
