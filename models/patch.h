/* The patch encoder of IMAGES modalities (BRIEF section 2): an S x S grayscale image is cut into
 * (S/P)^2 non-overlapping P x P patches (row-major patch order, pixels row-major within a
 * patch), each patch goes through one linear map to F, optionally through an exact GELU, and
 * the patches are averaged: one F-vector per image, which then goes to the modality's mTAND.
 *   out = mean_p act(W patch_p + b),   W (F, P*P), b (F)
 * Without the activation (the brief's "patches -> linear -> mean") the map is linear, so the
 * mean is taken first: out = W mean_p(patch_p) + b, the same function at 1/(S/P)^2 the cost. */
#ifndef FM_PATCH_H
#define FM_PATCH_H

#include "models/layout.h"
#include "src/error.h"
#include "src/params.h"
#include "src/rng.h"

typedef struct {
    int S;    /* image side (pixels) */
    int P;    /* patch side, divides S */
    int F;    /* output width */
    int gelu; /* 1: GELU after the linear map */
    int w, b; /* "<prefix>.weight" (F, P*P), "<prefix>.bias" (F) */
} FmPatch;

typedef struct {
    float *in;   /* gelu: (N * NP, P*P) the patches; else (N, P*P) the mean patch */
    float *pre;  /* gelu: (N * NP, F) pre-activations */
    float *act;  /* gelu: (N * NP, F) activations */
    float *dpre; /* gelu: (N * NP, F) scratch */
} FmPatchBuffers;

/* C = S * S must be a perfect square with P dividing S (FM_ERR_CONFIG otherwise). */
FmStatus fm_patch_declare(FmPatch *pe, int C, int P, int F, int gelu, FmParams *params, const char *prefix,
                          FmError *err);
void fm_patch_init(const FmPatch *pe, FmParams *params, FmRng *rng);
void fm_patch_layout(FmPatchBuffers *buf, FmLayout *l, const FmPatch *pe, int max_images);

/* out (N, F) from pixels (N, S*S). */
void fm_patch_forward(const FmPatch *pe, const FmParams *params, FmPatchBuffers *buf, float *out,
                      const float *pixels, int N);

/* Accumulates params->grad from dout (N, F) (the pixels are data: no gradient for them). */
void fm_patch_backward(const FmPatch *pe, FmParams *params, FmPatchBuffers *buf, const float *dout, int N);

#endif
