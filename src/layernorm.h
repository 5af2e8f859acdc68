/* Layer normalisation over the last dimension, eps = 1e-5 (PyTorch's default).
 *   out (N, D) = (inp - mean) * rstd * gamma + beta,  rstd = 1 / sqrt(var + eps), biased var */
#ifndef FM_LAYERNORM_H
#define FM_LAYERNORM_H

#define FM_LAYERNORM_EPS 1e-5f

/* mean (N) and rstd (N) receive the row statistics for the backward; both may be NULL at
 * inference. out may alias inp. */
void fm_layernorm_forward(float *out, float *mean, float *rstd, const float *inp,
                          const float *gamma, const float *beta, int N, int D);

/* Accumulates (+=) dinp (N, D), dgamma (D), dbeta (D); any may be NULL. mean and rstd are the
 * forward's. dinp must not alias dout. */
void fm_layernorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout,
                           const float *inp, const float *mean, const float *rstd,
                           const float *gamma, int N, int D);

#endif
