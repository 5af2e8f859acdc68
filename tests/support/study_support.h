/* Helpers shared by the study suites (test_train, test_eval, test_ablate): a small synthetic
 * cohort built once per suite process, tiny study files, running training as the CLI does,
 * and file comparisons. */
#ifndef FM_STUDY_SUPPORT_H
#define FM_STUDY_SUPPORT_H

#include <stddef.h>

#include "src/config.h"
#include "src/error.h"
#include "src/train.h"

/* Builds, in a fresh temporary folder, a synthetic cohort of 160 stays (fm_synth_write, then
 * fm_prepare_run: modalities vitals, labs, static, notes, image_features; labels mortality,
 * los_log_days, los_gt_7d and five phenotypes; 2 repeated 60/20/20 splits) as cohort.h5, and
 * variants of the same stays: cohort_seed2.h5 (splits drawn with seed 2, so other
 * statistics), cohort_nonotes.h5 (no notes modality), cohort_nophe.h5 (the phe_ columns as
 * plain labels: no phenotype task). Call once from main(), before the suite runs. */
void fm_study_setup(void);

/* Removes the folder of fm_study_setup. */
void fm_study_teardown(void);

/* The folder, and the path of a cohort file in it ("cohort.h5", "cohort_seed2.h5", ...). */
const char *fm_study_dir(void);
const char *fm_study_cohort(const char *name);

/* The fusemoe program beside the running suite (build/fusemoe for build/tests/test_x). */
const char *fm_study_cli(void);

/* Writes a tiny study file at `path` on `cohort`: width 8, 4 reference times, 2 heads, time
 * embedding 4, 1 layer, 4 experts (top 2, hidden 8), head hidden 8, tasks mortality,
 * phenotypes, los_regression, 2 epochs of batches of 16, 20 bootstrap replicates; then
 * `extra` (more lines, may be NULL). */
void fm_study_write(const char *path, const char *cohort, const char *extra);

/* Loads study `path`, applies the n overrides (section.key=value) and runs fm_train_run into
 * `out` as `fusemoe train` does. */
FmStatus fm_study_train(const char *path, const char *const *sets, int n, const char *out, int resume,
                        FmTrainObserver observer, void *ctx, FmError *err);

/* The whole file (fm_free), or NULL when unreadable; *len its size (may be NULL). */
char *fm_study_read(const char *path, size_t *len);

/* 1 when both files exist and hold the same bytes. */
int fm_study_same_file(const char *a, const char *b);

/* Lines of a text file (-1 when unreadable). */
long fm_study_lines(const char *path);

#endif
