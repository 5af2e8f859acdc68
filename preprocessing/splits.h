/* Train/validation/test splits of a cohort's stays.
 *
 * Generated splits are seeded and stratified by mortality (strata: survived, died, unknown):
 *   repeated:n[:tr,va,te]  n independent splits (default fractions 0.8,0.1,0.1); repeat r draws
 *                          from stream r of the seed (fm_rng_split), so each repeat has its own
 *                          seed and adding repeats does not change the earlier ones. In each
 *                          stratum of n_s stays, round(va * n_s) go to val, round(te * n_s) to
 *                          test, the rest to train.
 *   kfold:k                k folds (k >= 3): each stratum is shuffled and dealt round-robin into
 *                          folds (continuing across strata so folds differ by at most one stay);
 *                          split f tests on fold f, validates on fold (f+1) mod k, trains on the rest.
 * A split file (`stay_id,<name>[,<name>...]`, one column per split, values train / val / test,
 * or empty / none for a stay left out) gives splits by hand: every cohort stay needs a row;
 * rows for stays not in the cohort (e.g. dropped ones) are counted and ignored. */
#ifndef FM_SPLITS_H
#define FM_SPLITS_H

#include <stdint.h>

#include "preprocessing/cohort.h"
#include "src/error.h"

typedef enum { FM_SPLITS_REPEATED, FM_SPLITS_KFOLD, FM_SPLITS_FILE } FmSplitKind;

typedef struct {
    FmSplitKind kind;
    int n;              /* repeats or folds */
    double frac[3];     /* train, val, test (repeated) */
    const char *path;   /* split file */
    const char *id_col; /* split file's id column ("stay_id") */
} FmSplitSpec;

/* Parses "repeated:5", "repeated:5:0.7,0.15,0.15" or "kfold:5" (FM_ERR_ARG with a message
 * otherwise). */
FmStatus fm_splits_parse(const char *text, FmSplitSpec *spec, FmError *err);

/* Writes the canonical text of a spec ("repeated:5:0.8,0.1,0.1", "kfold:5", "file:<path>"). */
void fm_splits_describe(const FmSplitSpec *spec, char *buf, size_t cap);

/* Makes the splits of a generated spec for N stays with strata stratum[i] in {0, 1, 2}.
 * *splits is an fm_calloc'd array of *n_splits with names and parts filled (norms empty). */
FmStatus fm_splits_make(const FmSplitSpec *spec, uint64_t seed, int64_t N, const uint8_t *stratum,
                        FmCohortSplit **splits, int *n_splits, FmError *err);

/* Reads a split file for the stays stay_id[0..N). *rows_ignored counts rows of stays not in the
 * cohort. Errors name the file and line. */
FmStatus fm_splits_read_file(const char *path, const char *id_col, const int64_t *stay_id, int64_t N,
                             FmCohortSplit **splits, int *n_splits, int64_t *rows_ignored, FmError *err);

/* Frees an array of splits (names, parts, norms). */
void fm_splits_free(FmCohortSplit *splits, int n_splits);

#endif
