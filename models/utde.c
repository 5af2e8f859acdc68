#include "models/utde.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "models/init.h"
#include "src/activation.h"
#include "src/linear.h"

static FmStatus declare(FmParams *p, const char *prefix, const char *name, int ndim, int d0, int d1,
                        int *id, FmError *err) {
    char full[FM_PARAM_NAME_MAX + 32];
    snprintf(full, sizeof full, "%s.%s", prefix, name);
    int shape[2] = {d0, d1};
    return fm_params_declare(p, full, ndim, shape, ndim == 2, id, err);
}

FmStatus fm_utde_declare(FmUtde *u, int Q, int C, int D, FmParams *params, const char *prefix,
                         FmError *err) {
    if (Q < 2 || C < 1 || D < 1)
        return FM_FAIL(err, FM_ERR_CONFIG, prefix, "imputation branch needs Q >= 2, C >= 1, D >= 1");
    memset(u, 0, sizeof *u);
    u->Q = Q;
    u->C = C;
    u->D = D;
    FmStatus st;
    if ((st = declare(params, prefix, "imp.weight", 2, D, 2 * C, &u->w_imp, err)) ||
        (st = declare(params, prefix, "imp.bias", 1, D, 0, &u->b_imp, err)) ||
        (st = declare(params, prefix, "gate.fc1.weight", 2, D, 2 * D, &u->w_g1, err)) ||
        (st = declare(params, prefix, "gate.fc1.bias", 1, D, 0, &u->b_g1, err)) ||
        (st = declare(params, prefix, "gate.fc2.weight", 2, 1, D, &u->w_g2, err)) ||
        (st = declare(params, prefix, "gate.fc2.bias", 1, 1, 0, &u->b_g2, err)))
        return st;
    return FM_OK;
}

void fm_utde_init(const FmUtde *u, FmParams *params, FmRng *rng) {
    fm_init_linear(params, u->w_imp, u->b_imp, rng);
    fm_init_linear(params, u->w_g1, u->b_g1, rng);
    fm_init_linear(params, u->w_g2, u->b_g2, rng);
}

void fm_utde_layout(FmUtdeBuffers *buf, FmLayout *l, int Q, int C, int D, int max_stays) {
    size_t S = (size_t)max_stays;
    buf->ximp = fm_layout_floats(l, S * Q * 2 * C);
    buf->zi = fm_layout_floats(l, S * Q * D);
    buf->u = fm_layout_floats(l, S * 2 * D);
    buf->arg = fm_layout_ints(l, S * 2 * D);
    buf->a = fm_layout_floats(l, S * D);
    buf->hr = fm_layout_floats(l, S * D);
    buf->g = fm_layout_floats(l, S);
    buf->dzi = fm_layout_floats(l, S * Q * D);
    buf->du = fm_layout_floats(l, S * 2 * D);
    buf->dh = fm_layout_floats(l, S * D);
    buf->da = fm_layout_floats(l, S * D);
    buf->dg = fm_layout_floats(l, S);
}

void fm_utde_impute(float *ximp, const float *t, const float *x, int n, int Q, int C) {
    const int W = 2 * C;
    memset(ximp, 0, (size_t)Q * W * sizeof *ximp);
    /* Pass 1: per bin and channel, the latest observation; the indicator column holds its
     * time + 1 (>= 1) meanwhile, so a later-or-equal time replaces it. */
    for (int l = 0; l < n; l++) {
        float tl = t[l] < 0.0f ? 0.0f : t[l] > 1.0f ? 1.0f : t[l];
        int r = (int)lrintf(tl * (float)(Q - 1));
        float *row = ximp + (size_t)r * W;
        for (int c = 0; c < C; c++) {
            if (x[(size_t)l * W + C + c] < 0.5f) continue;
            if (tl + 1.0f >= row[C + c]) {
                row[c] = x[(size_t)l * W + c];
                row[C + c] = tl + 1.0f;
            }
        }
    }
    /* Pass 2: indicators to 0/1, values carried forward into bins without an observation. */
    for (int r = 0; r < Q; r++) {
        float *row = ximp + (size_t)r * W;
        for (int c = 0; c < C; c++) {
            if (row[C + c] > 0.0f)
                row[C + c] = 1.0f;
            else if (r > 0)
                row[c] = row[c - W];
        }
    }
}

void fm_utde_forward(const FmUtde *u, const FmParams *params, FmUtdeBuffers *buf, float *z, const float *zm,
                     const float *t, const float *x, const int *offset, int S) {
    const int Q = u->Q, C = u->C, D = u->D;
    for (int s = 0; s < S; s++)
        fm_utde_impute(buf->ximp + (size_t)s * Q * 2 * C, t + offset[s], x + (size_t)offset[s] * 2 * C,
                       offset[s + 1] - offset[s], Q, C);
    /* Z_imp = X_imp W_imp^T + b_imp */
    fm_linear_forward(buf->zi, buf->ximp, fm_params_data(params, u->w_imp), fm_params_data(params, u->b_imp),
                      S * Q, 2 * C, D);
    /* u = [max_r Z_mTAND ; max_r Z_imp] */
    for (int s = 0; s < S; s++) {
        for (int half = 0; half < 2; half++) {
            const float *src = (half ? buf->zi : zm) + (size_t)s * Q * D;
            float *us = buf->u + (size_t)s * 2 * D + half * D;
            int *as = buf->arg + (size_t)s * 2 * D + half * D;
            for (int d = 0; d < D; d++) {
                us[d] = src[d];
                as[d] = 0;
            }
            for (int r = 1; r < Q; r++)
                for (int d = 0; d < D; d++)
                    if (src[(size_t)r * D + d] > us[d]) {
                        us[d] = src[(size_t)r * D + d];
                        as[d] = r;
                    }
        }
    }
    /* g = sigmoid(w_2 . ReLU(W_1 u + b_1) + b_2) */
    fm_linear_forward(buf->a, buf->u, fm_params_data(params, u->w_g1), fm_params_data(params, u->b_g1), S,
                      2 * D, D);
    fm_relu_forward(buf->hr, buf->a, (size_t)S * D);
    fm_linear_forward(buf->g, buf->hr, fm_params_data(params, u->w_g2), fm_params_data(params, u->b_g2), S,
                      D, 1);
    fm_sigmoid_forward(buf->g, buf->g, (size_t)S);
    /* Z = g Z_mTAND + (1 - g) Z_imp */
    for (int s = 0; s < S; s++) {
        const float g = buf->g[s];
        const size_t base = (size_t)s * Q * D;
        for (size_t i = 0; i < (size_t)Q * D; i++) z[base + i] = g * zm[base + i] + (1.0f - g) * buf->zi[base + i];
    }
}

void fm_utde_backward(const FmUtde *u, FmParams *params, FmUtdeBuffers *buf, float *dzm, const float *dz,
                      const float *zm, int S) {
    const int Q = u->Q, C = u->C, D = u->D;
    /* Z = g Zm + (1 - g) Zi:  dZm = g dZ;  dZi = (1 - g) dZ;  dg = sum dZ (Zm - Zi) */
    for (int s = 0; s < S; s++) {
        const float g = buf->g[s];
        const size_t base = (size_t)s * Q * D;
        double dg = 0.0;
        for (size_t i = 0; i < (size_t)Q * D; i++) {
            dzm[base + i] = g * dz[base + i];
            buf->dzi[base + i] = (1.0f - g) * dz[base + i];
            dg += (double)dz[base + i] * (zm[base + i] - buf->zi[base + i]);
        }
        buf->dg[s] = (float)dg;
    }
    /* g = sigmoid(w_2 . h + b_2), h = ReLU(a), a = W_1 u + b_1 */
    float *dlogit = buf->dg; /* in place: dlogit = dg g (1 - g) */
    for (int s = 0; s < S; s++) dlogit[s] = buf->dg[s] * buf->g[s] * (1.0f - buf->g[s]);
    memset(buf->dh, 0, (size_t)S * D * sizeof(float));
    fm_linear_backward(buf->dh, fm_params_grad(params, u->w_g2), fm_params_grad(params, u->b_g2), dlogit,
                       buf->hr, fm_params_data(params, u->w_g2), S, D, 1);
    memset(buf->da, 0, (size_t)S * D * sizeof(float));
    fm_relu_backward(buf->da, buf->dh, buf->a, (size_t)S * D);
    memset(buf->du, 0, (size_t)S * 2 * D * sizeof(float));
    fm_linear_backward(buf->du, fm_params_grad(params, u->w_g1), fm_params_grad(params, u->b_g1), buf->da,
                       buf->u, fm_params_data(params, u->w_g1), S, 2 * D, D);
    /* u = column maxima: the gradient goes to the row that attained each */
    for (int s = 0; s < S; s++) {
        for (int half = 0; half < 2; half++) {
            float *dst = (half ? buf->dzi : dzm) + (size_t)s * Q * D;
            const float *du = buf->du + (size_t)s * 2 * D + half * D;
            const int *as = buf->arg + (size_t)s * 2 * D + half * D;
            for (int d = 0; d < D; d++) dst[(size_t)as[d] * D + d] += du[d];
        }
    }
    /* Z_imp = X_imp W_imp^T + b_imp (the inputs are data: no gradient below) */
    fm_linear_backward(NULL, fm_params_grad(params, u->w_imp), fm_params_grad(params, u->b_imp), buf->dzi,
                       buf->ximp, fm_params_data(params, u->w_imp), S * Q, 2 * C, D);
}
