/* The imputation branch and gate for SERIES modalities (UTDE; BRIEF section 2).
 *
 * Alongside mTAND, the window is cut into Q bins aligned with the reference times: bin r holds
 * the observations with round(t (Q - 1)) = r, t in [0, 1] (times outside are clamped). Per bin
 * and channel: the last observed value up to the end of the bin, carried forward (0, the
 * training mean after standardising, before the first observation), and an indicator that the
 * channel was observed in the bin (2C inputs per bin). "Last" is the latest time; equal times
 * go to the later packed row. A linear map takes each bin to D:
 *   Z_imp = X_imp W_imp^T + b_imp                                           (Q, D)
 * The gate mixes the two branches per stay:
 *   u = [max_r Z_mTAND ; max_r Z_imp]                                       (2D, column max)
 *   g = sigmoid(w_2 . ReLU(W_1 u + b_1) + b_2),   W_1 (D, 2D), w_2 (1, D)
 *   Z = g Z_mTAND + (1 - g) Z_imp
 * The column maximum sends its gradient to the first row attaining it. */
#ifndef FM_UTDE_H
#define FM_UTDE_H

#include "models/layout.h"
#include "src/error.h"
#include "src/params.h"
#include "src/rng.h"

typedef struct {
    int Q, C, D;
    int w_imp, b_imp; /* "<prefix>.imp.weight" (D, 2C), ".imp.bias" (D) */
    int w_g1, b_g1;   /* ".gate.fc1.weight" (D, 2D), ".gate.fc1.bias" (D) */
    int w_g2, b_g2;   /* ".gate.fc2.weight" (1, D), ".gate.fc2.bias" (1) */
} FmUtde;

typedef struct {
    /* cache */
    float *ximp; /* (S, Q, 2C) imputed values | indicators */
    float *zi;   /* (S, Q, D) imputation branch */
    float *u;    /* (S, 2D) column maxima */
    int *arg;    /* (S, 2D) rows of the maxima */
    float *a;    /* (S, D) gate pre-activation */
    float *hr;   /* (S, D) ReLU(a) */
    float *g;    /* (S) gate */
    /* scratch */
    float *dzi; /* (S, Q, D) */
    float *du;  /* (S, 2D) */
    float *dh;  /* (S, D) */
    float *da;  /* (S, D) */
    float *dg;  /* (S) */
} FmUtdeBuffers;

FmStatus fm_utde_declare(FmUtde *u, int Q, int C, int D, FmParams *params, const char *prefix,
                         FmError *err);
void fm_utde_init(const FmUtde *u, FmParams *params, FmRng *rng);
void fm_utde_layout(FmUtdeBuffers *buf, FmLayout *l, int Q, int C, int D, int max_stays);

/* The imputation input of one stay: ximp (Q, 2C) from its n packed observations, times t (n)
 * and x (n, 2C) = [values | 0/1 mask]. */
void fm_utde_impute(float *ximp, const float *t, const float *x, int n, int Q, int C);

/* z (S, Q, D) = the gated mix of zm (S, Q, D) (mTAND) and the imputation branch of the S
 * stays' packed observations (t, x, offset as for mTAND). z must not alias zm. */
void fm_utde_forward(const FmUtde *u, const FmParams *params, FmUtdeBuffers *buf, float *z, const float *zm,
                     const float *t, const float *x, const int *offset, int S);

/* From dz (S, Q, D): accumulates params->grad, and WRITES dzm (S, Q, D), the gradient reaching
 * the mTAND branch. */
void fm_utde_backward(const FmUtde *u, FmParams *params, FmUtdeBuffers *buf, float *dzm, const float *dz,
                      const float *zm, int S);

#endif
