/* Regularised generalised linear models fitted by Newton's method (iteratively reweighted
 * least squares), for the clinical baselines (per-variable summaries, admission scores):
 * logistic regression for binary targets, ridge (least-squares) regression for values.
 *
 * Minimises  (1 / sum_i s_i) sum_i s_i loss(y_i, eta_i) + (l2 / 2) ||w||^2,
 * eta_i = w . z_i + b, over w and the unpenalised intercept b, where z_i are the features
 * standardised with their (weighted) training mean and standard deviation, s_i optional sample
 * weights, and loss the binary cross-entropy of sigmoid(eta) (FM_GLM_LOGISTIC) or the half
 * squared error (eta - y)^2 / 2 (FM_GLM_GAUSSIAN). With unit weights, l2 = 1 / (C n) gives
 * scikit-learn's LogisticRegression(C), and l2 = alpha / n its Ridge(alpha) on standardised
 * features. */
#ifndef FM_GLM_H
#define FM_GLM_H

#include <stdint.h>

#include "src/error.h"

typedef enum { FM_GLM_LOGISTIC, FM_GLM_GAUSSIAN } FmGlmFamily;

typedef struct {
    FmGlmFamily family;
    int F;        /* features */
    double *w;    /* (F) coefficients on standardised features */
    double b;     /* intercept */
    double *mean; /* (F) feature means used to standardise */
    double *std;  /* (F) feature standard deviations (1 for a constant feature) */
    int iterations;
} FmGlm;

/* Fits the model on X (n, F) row-major and targets y (n): 0/1 for FM_GLM_LOGISTIC (which also
 * needs both classes), any finite value for FM_GLM_GAUSSIAN. sample_weight (n) may be NULL.
 * Non-finite features are refused (FM_ERR_ARG naming row and column): impute first. Converges
 * when the Newton step's largest change is below 1e-8 (at most 100 iterations, with step
 * halving when the objective would rise). On failure *m is empty. */
FmStatus fm_glm_fit(FmGlm *m, FmGlmFamily family, const float *X, const float *y, const float *sample_weight,
                    int64_t n, int F, double l2, FmError *err);

/* out (n): sigmoid(eta) (logistic) or eta (gaussian) for the rows of X (n, F). */
void fm_glm_predict(const FmGlm *m, const float *X, int64_t n, float *out);

/* Frees the arrays; NULL or an empty model is accepted. */
void fm_glm_free(FmGlm *m);

#endif
