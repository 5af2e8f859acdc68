/* L2-regularised logistic regression, fitted by Newton's method (iteratively reweighted least
 * squares), for the clinical baselines (per-variable summaries, admission scores).
 *
 * Minimises  (1 / sum_i s_i) sum_i s_i BCE(y_i, sigmoid(w . z_i + b)) + (l2 / 2) ||w||^2
 * over w and the unpenalised intercept b, where z_i are the features standardised with their
 * (weighted) training mean and standard deviation and s_i are optional sample weights. With
 * l2 = 1 / (C n) and unit weights this is scikit-learn's LogisticRegression(C). */
#ifndef FM_LOGREG_H
#define FM_LOGREG_H

#include <stdint.h>

#include "src/error.h"

typedef struct {
    int F;        /* features */
    double *w;    /* (F) coefficients on standardised features */
    double b;     /* intercept */
    double *mean; /* (F) feature means used to standardise */
    double *std;  /* (F) feature standard deviations (1 for a constant feature) */
    int iterations;
} FmLogReg;

/* Fits the model on X (n, F) row-major and 0/1 targets y (n); sample_weight (n) may be NULL.
 * Non-finite features are refused (FM_ERR_ARG naming row and column): impute first. n must
 * have both classes. Converges when the Newton step's largest change is below 1e-8 (at most 100
 * iterations, with step halving when the loss would rise). On failure *m is empty. */
FmStatus fm_logreg_fit(FmLogReg *m, const float *X, const float *y, const float *sample_weight,
                       int64_t n, int F, double l2, FmError *err);

/* prob (n) = sigmoid(w . z + b) for rows of X (n, F). */
void fm_logreg_predict(const FmLogReg *m, const float *X, int64_t n, float *prob);

/* Frees the arrays; NULL or an empty model is accepted. */
void fm_logreg_free(FmLogReg *m);

#endif
