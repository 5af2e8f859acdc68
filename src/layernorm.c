#include "src/layernorm.h"

#include <math.h>
#include <stddef.h>

void fm_layernorm_forward(float *out, float *mean, float *rstd, const float *inp, const float *gamma,
                          const float *beta, int N, int D) {
    /* inp, out (N, D); gamma, beta (D); mean, rstd (N). Statistics in double (two passes), so
     * rows with a large offset keep their precision; out may alias inp because each row's
     * statistics are complete before the row is written. */
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * D;
        float *y = out + (size_t)n * D;
        double s = 0.0;
        for (int i = 0; i < D; i++)
            s += x[i];
        const double mu = s / D;
        double ss = 0.0;
        for (int i = 0; i < D; i++) {
            double c = x[i] - mu;
            ss += c * c;
        }
        const float m = (float)mu;
        const float r = (float)(1.0 / sqrt(ss / D + (double)FM_LAYERNORM_EPS));
        for (int i = 0; i < D; i++)
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
void fm_layernorm_backward(float *dinp, float *dgamma, float *dbeta, const float *dout, const float *inp,
                           const float *mean, const float *rstd, const float *gamma, int N, int D) {
    for (int n = 0; n < N; n++) {
        const float *x = inp + (size_t)n * D;
        const float *dy = dout + (size_t)n * D;
        const float m = mean[n], r = rstd[n];
        if (dgamma || dbeta)
            for (int i = 0; i < D; i++) {
                /* forward: y[i] = (x[i] - m) * r * gamma[i] + beta[i] */
                if (dgamma) dgamma[i] += dy[i] * (x[i] - m) * r;
                if (dbeta) dbeta[i] += dy[i];
            }
        if (!dinp) continue;
        float g_mean = 0.0f, gx_mean = 0.0f;
        for (int i = 0; i < D; i++) {
            float g = dy[i] * gamma[i];
            g_mean += g;
            gx_mean += g * (x[i] - m) * r;
        }
        g_mean /= (float)D;
        gx_mean /= (float)D;
        float *dx = dinp + (size_t)n * D;
        for (int i = 0; i < D; i++) {
            float xhat = (x[i] - m) * r;
            dx[i] += r * (dy[i] * gamma[i] - g_mean - xhat * gx_mean);
        }
    }
}
