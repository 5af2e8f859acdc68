/* Standardisation statistics: per modality and channel, the mean and standard deviation used
 * to standardise values (x - mean) / std.
 *
 * A cohort file stores one FmNorm per split, fitted on that split's training stays only; a
 * trained model stores the FmNorm it was trained with, so a new cohort can be standardised
 * with the model's statistics (fm_cohort_use_norm in preprocessing/cohort.h) after checking
 * that its modalities and variables match the model's by name (fm_norm_check_match). */
#ifndef FM_NORM_H
#define FM_NORM_H

#include <hdf5.h>
#include <stdint.h>

#include "preprocessing/batch.h"
#include "src/error.h"

/* Smallest standard deviation used: a channel whose training values are (nearly) constant,
 * such as P12's MechVent (always 1 when recorded), would otherwise divide by zero. In the
 * channel's own units; values then standardise to about 0. */
#define FM_NORM_STD_FLOOR 1e-3

typedef struct {
    char *name; /* modality name */
    FmModalityKind kind;
    int C;           /* channels */
    char **channel;  /* (C) channel names for SERIES/STATIC; NULL for EVENTS/IMAGES */
    int standardise; /* 0: values pass through unchanged (IMAGES), mean 0 and std 1 */
    double *mean;    /* (C) */
    double *std;     /* (C) >= FM_NORM_STD_FLOOR */
} FmNormModality;

typedef struct {
    int M;
    FmNormModality *mod; /* (M) in the cohort's modality order */
} FmNorm;

/* Allocates an FmNorm with M modalities of the given names, kinds, widths and channel names
 * (channel may be NULL, or channel[m] NULL, for modalities without named channels); means are
 * set to 0 and stds to 1. On failure *norm is empty. */
FmStatus fm_norm_alloc(FmNorm *norm, int M, const char *const *names, const FmModalityKind *kinds,
                       const int *C, const char *const *const *channel, const int *standardise, FmError *err);

/* Deep copy (dst is overwritten; free it first if it held data). On failure dst is empty. */
FmStatus fm_norm_copy(FmNorm *dst, const FmNorm *src, FmError *err);

/* Frees everything; NULL or an empty norm is accepted. */
void fm_norm_free(FmNorm *norm);

/* Checks that `have` (e.g. a new cohort's layout) matches `want` (e.g. the model's) by name:
 * same modalities in the same order with the same kinds and widths, and for named channels the
 * same channel names in the same order. The message names the first difference ("modality
 * 'labs': channel 3 is 'Lactate' here but 'K' in the model"). `what` labels `want` in messages
 * ("the model"). */
FmStatus fm_norm_check_match(const FmNorm *have, const FmNorm *want, const char *what, FmError *err);

/* Writes `norm` as group `group` (a path from the file root, e.g. "norm" or "splits/norm/0";
 * created here): attribute `modalities` lists the modality names separated by ','; one
 * subgroup per modality holds attributes kind (string) and standardise (int), datasets mean
 * (C) and std (C) float64 and, for named channels, channel (C strings). */
FmStatus fm_norm_write_h5(hid_t file, const char *group, const FmNorm *norm, FmError *err);

/* Reads what fm_norm_write_h5 wrote, with full validation (every dataset's rank and length,
 * std finite and >= floor, kinds known). `label` names the file in messages, which then read
 * "model.h5:/norm/vitals/std: expected 15 values, got 14". */
FmStatus fm_norm_read_h5(hid_t file, const char *label, const char *group, FmNorm *norm, FmError *err);

#endif
