/* Per-stay summary features for the clinical baselines: the classical way to turn irregular
 * series into a fixed vector for logistic regression.
 *
 * For each channel of a SERIES modality, over the stay's observations in the window: first,
 * last, min, max, mean, and log(1 + count). For each channel of a STATIC modality: its value.
 * For an EVENTS modality (note embeddings, image features): the mean item vector and
 * log(1 + items). IMAGES modalities are not summarised (pixels are not features). A summary
 * with no observation is NaN: impute before fitting (fm_summary_impute_means). Raw (cleaned,
 * unstandardised) values are used; the fitter standardises. */
#ifndef FM_SUMMARY_FEATURES_H
#define FM_SUMMARY_FEATURES_H

#include <stdint.h>

#include "preprocessing/cohort.h"
#include "src/error.h"

typedef struct {
    int F;         /* features */
    char **name;   /* (F) "vitals.HR.first", "static.Age", "notes.count"... */
    int64_t n;     /* rows */
    float *X;      /* (n, F) */
} FmSummaryFeatures;

/* Summaries of the stays idx[0..n) over the modalities listed by index (mods, n_mods; NULL
 * and 0 mean every modality). On failure *out is empty. */
FmStatus fm_summary_features(const FmCohort *c, const int *mods, int n_mods, const int64_t *idx,
                             int64_t n, FmSummaryFeatures *out, FmError *err);

/* Replaces NaN in each column by the mean of that column's finite values over the rows
 * rows[0..n_rows) (the training stays; 0 if none is finite). means (F) receives the values
 * used, so other parts (validation, test) can be imputed the same way with
 * fm_summary_impute_with. */
void fm_summary_impute_means(FmSummaryFeatures *s, const int64_t *rows, int64_t n_rows, double *means);
void fm_summary_impute_with(FmSummaryFeatures *s, const double *means);

/* Frees names and values; NULL or an empty set is accepted. */
void fm_summary_features_free(FmSummaryFeatures *s);

#endif
