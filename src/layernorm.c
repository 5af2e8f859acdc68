#include "src/layernorm.h"

#include <math.h>
#include <stddef.h>
#include <string.h>

#include "src/vecmath.h"

/* Rows are processed in blocks of FM_VEC_BLOCK with one partial sum per lane so that the loops
 * vectorise (see src/vecmath.h); the tails go to lanes 0, 1, ... like fm_vec_sum. */
enum { BLK = FM_VEC_BLOCK };

/* sum_i (x[i] - m)^2 */
static inline float sum_sq_dev(const float *x, float m, int D) {
    float acc[BLK] = {0};
    int i = 0;
    for (; i + BLK <= D; i += BLK)
        for (int k = 0; k < BLK; k++)
            acc[k] += (x[i + k] - m) * (x[i + k] - m);
    for (int k = 0; i < D; i++, k++)
        acc[k] += (x[i] - m) * (x[i] - m);
    return fm_vec_reduce_lanes(acc);
}

FM_VEC_CLONES
void fm_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *gamma,
                          const float *beta, int N, int D) {
    /* inp, out (N, D); gamma, beta (D); mean, rstd (N). Two passes (mean, then the mean of the
     * squared deviations) keep rows far from 0 accurate; out may alias inp because each row's
     * statistics are complete before the row is written. */
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * D;
        float *y = out + (size_t)n * D;
        const float m = fm_vec_sum(x, (size_t)D) / (float)D;
        const float r = 1.0f / sqrtf(sum_sq_dev(x, m, D) / (float)D + FM_LAYERNORM_EPS);
        int i = 0;
        for (; i + BLK <= D; i += BLK) {
            float t[BLK];
            for (int k = 0; k < BLK; k++)
                t[k] = (x[i + k] - m) * r * gamma[i + k] + beta[i + k];
            memcpy(y + i, t, sizeof t);
        }
        for (; i < D; i++)
            y[i] = (x[i] - m) * r * gamma[i] + beta[i];
        if (mean) mean[n] = m;
        if (rstd) rstd[n] = r;
    }
}

/* Backward. Per row, with xhat = (x - mu) r, r = (var + eps)^-1/2, var = mean((x - mu)^2),
 * y = gamma xhat + beta, and g = dy * gamma (the gradient reaching xhat):
 *   d mu / d x_i = 1/D,   d r / d x_i = -r^3 (x_i - mu) / D = -r^2 xhat_i / D,
 *   d xhat_j / d x_i = r (delta_ij - 1/D) - r xhat_j xhat_i / D,
 * so  dx_i = sum_j g_j d xhat_j / d x_i = r (g_i - mean_j(g_j) - xhat_i mean_j(g_j xhat_j)).
 * The parameters: dgamma_i += dy_i xhat_i,  dbeta_i += dy_i. */
FM_VEC_CLONES
void fm_layernorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                           const float *mean, const float *rstd, const float *gamma, int N, int D) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * D;
        const float *dy = dout + (size_t)n * D;
        const float m = mean[n], r = rstd[n];
        /* forward: y[i] = (x[i] - m) * r * gamma[i] + beta[i] */
        if (dgamma) {
            int i = 0;
            for (; i + BLK <= D; i += BLK) {
                float t[BLK];
                for (int k = 0; k < BLK; k++)
                    t[k] = dgamma[i + k] + dy[i + k] * ((x[i + k] - m) * r);
                memcpy(dgamma + i, t, sizeof t);
            }
            for (; i < D; i++)
                dgamma[i] += dy[i] * ((x[i] - m) * r);
        }
        if (dbeta) {
            int i = 0;
            for (; i + BLK <= D; i += BLK) {
                float t[BLK];
                for (int k = 0; k < BLK; k++)
                    t[k] = dbeta[i + k] + dy[i + k];
                memcpy(dbeta + i, t, sizeof t);
            }
            for (; i < D; i++)
                dbeta[i] += dy[i];
        }
        if (!dinp) continue;
        float acc_g[BLK] = {0}, acc_gx[BLK] = {0};
        int i = 0;
        for (; i + BLK <= D; i += BLK)
            for (int k = 0; k < BLK; k++) {
                float g = dy[i + k] * gamma[i + k];
                acc_g[k] += g;
                acc_gx[k] += g * ((x[i + k] - m) * r);
            }
        for (int k = 0; i < D; i++, k++) {
            float g = dy[i] * gamma[i];
            acc_g[k] += g;
            acc_gx[k] += g * ((x[i] - m) * r);
        }
        const float g_mean = fm_vec_reduce_lanes(acc_g) / (float)D;
        const float gx_mean = fm_vec_reduce_lanes(acc_gx) / (float)D;
        float *dx = dinp + (size_t)n * D;
        for (i = 0; i + BLK <= D; i += BLK) {
            float t[BLK];
            for (int k = 0; k < BLK; k++)
                t[k] = dx[i + k] + r * (dy[i + k] * gamma[i + k] - g_mean - (x[i + k] - m) * r * gx_mean);
            memcpy(dx + i, t, sizeof t);
        }
        for (; i < D; i++)
            dx[i] += r * (dy[i] * gamma[i] - g_mean - (x[i] - m) * r * gx_mean);
    }
}
