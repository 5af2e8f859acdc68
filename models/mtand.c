#include "models/mtand.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "models/init.h"
#include "src/gemm.h"
#include "src/linear.h"
#include "src/vecmath.h"

/* A per-channel denominator below this (while the channel has observations) has lost its
 * precision to underflow of exp(s - row max): that (h, r, c) is recomputed directly. */
#define MTAND_TINY 1e-30f

static FmStatus declare(FmParams *p, const char *prefix, const char *name, int rows, int cols,
                        int *id, FmError *err) {
    char full[FM_PARAM_NAME_MAX + 32];
    snprintf(full, sizeof full, "%s.%s", prefix, name);
    int shape[2] = {rows, cols};
    return fm_params_declare(p, full, cols > 0 ? 2 : 1, shape, cols > 0, id, err);
}

FmStatus fm_mtand_declare(FmMtand *mt, const FmMtandConfig *cfg, FmParams *params, const char *prefix,
                          FmError *err) {
    if (cfg->Q < 2 || cfg->H < 1 || cfg->DT < 1 || cfg->D < 1 || cfg->C < 1 || cfg->DT % cfg->H != 0)
        return FM_FAIL(err, FM_ERR_CONFIG, prefix,
                       "mTAND needs Q >= 2, C >= 1 and DT divisible by H (Q %d, H %d, DT %d, D %d, C %d)",
                       cfg->Q, cfg->H, cfg->DT, cfg->D, cfg->C);
    memset(mt, 0, sizeof *mt);
    mt->cfg = *cfg;
    mt->Cin = cfg->per_channel ? 2 * cfg->C : cfg->C;
    FmStatus st;
    if ((st = declare(params, prefix, "w_q", cfg->DT, cfg->DT, &mt->w_q, err)) ||
        (st = declare(params, prefix, "b_q", cfg->DT, 0, &mt->b_q, err)) ||
        (st = declare(params, prefix, "w_k", cfg->DT, cfg->DT, &mt->w_k, err)) ||
        (st = declare(params, prefix, "b_k", cfg->DT, 0, &mt->b_k, err)) ||
        (st = declare(params, prefix, "w_o", cfg->D, cfg->H * mt->Cin, &mt->w_o, err)) ||
        (st = declare(params, prefix, "b_o", cfg->D, 0, &mt->b_o, err)))
        return st;
    return FM_OK;
}

void fm_mtand_init(const FmMtand *mt, FmParams *params, FmRng *rng) {
    fm_init_linear(params, mt->w_q, mt->b_q, rng);
    fm_init_linear(params, mt->w_k, mt->b_k, rng);
    fm_init_linear(params, mt->w_o, mt->b_o, rng);
}

void fm_mtand_layout(FmMtandBuffers *buf, FmLayout *l, const FmMtandConfig *cfg, int max_stays,
                     int max_obs, int max_per_stay) {
    size_t HQ = (size_t)cfg->H * cfg->Q, Cin = cfg->per_channel ? 2 * (size_t)cfg->C : (size_t)cfg->C;
    size_t S = (size_t)max_stays, N = (size_t)max_obs;
    int pc = cfg->per_channel;
    buf->q = fm_layout_floats(l, (size_t)cfg->Q * cfg->DT);
    buf->k = fm_layout_floats(l, N * cfg->DT);
    buf->p = fm_layout_floats(l, HQ * N);
    buf->rs = fm_layout_floats(l, pc ? S * HQ : 0);
    buf->nd = fm_layout_floats(l, pc ? S * HQ * 2 * cfg->C : 0);
    buf->cnt = fm_layout_floats(l, pc ? S * cfg->C : 0);
    buf->o = fm_layout_floats(l, S * cfg->Q * cfg->H * Cin);
    buf->d_o = fm_layout_floats(l, S * cfg->Q * cfg->H * Cin);
    buf->dp = fm_layout_floats(l, HQ * (size_t)max_per_stay);
    buf->drs = fm_layout_floats(l, HQ);
    buf->a = fm_layout_floats(l, pc ? (size_t)max_per_stay : 0);
    buf->dnd = fm_layout_floats(l, pc ? HQ * 2 * cfg->C : 0);
    buf->dq = fm_layout_floats(l, (size_t)cfg->Q * cfg->DT);
    buf->dk = fm_layout_floats(l, N * cfg->DT);
}

/* Element-wise loops in blocks of FM_VEC_BLOCK (a constant trip count) so that -O2 vectorises
 * them, as src/vecmath.h explains; the tails run the same operations one at a time. */
enum { BLK = FM_VEC_BLOCK };

/* x[i] += c */
FM_VEC_CLONES
static void add_const(float *x, float c, size_t n) {
    size_t i = 0;
    for (; i + BLK <= n; i += BLK)
        for (int k = 0; k < BLK; k++) x[i + k] += c;
    for (; i < n; i++) x[i] += c;
}

/* y[i] = a[i] * (y[i] + c) */
FM_VEC_CLONES
static void mul_shifted(float *restrict y, const float *restrict a, float c, size_t n) {
    size_t i = 0;
    for (; i + BLK <= n; i += BLK)
        for (int k = 0; k < BLK; k++) y[i + k] = a[i + k] * (y[i + k] + c);
    for (; i < n; i++) y[i] = a[i] * (y[i] + c);
}

/* rows (R, n) contiguous: row <- exp(row - max(row)) in place, sums[r] = sum of row r. One
 * exponential pass over the whole block keeps the vector loop long. */
static void exp_rows(float *rows, int R, int n, float *sums) {
    for (int r = 0; r < R; r++) {
        float *row = rows + (size_t)r * n;
        add_const(row, -fm_vec_max(row, (size_t)n), (size_t)n);
    }
    fm_vec_exp_sub(rows, rows, 0.0f, (size_t)R * n);
    for (int r = 0; r < R; r++) sums[r] = fm_vec_sum(rows + (size_t)r * n, (size_t)n);
}

/* Value channel c of row (h, r) computed directly, with the maximum over its own observed
 * times: the path for a denominator that underflowed. Writes alpha_l (0 where not observed)
 * into a (n) when a != NULL. Accumulates in double. */
static float direct_channel(const float *q_row, const float *ks, const float *xs, int n, int DT,
                            int Cin, int C, int c, float scale, int dh, float *a) {
    double mx = -INFINITY;
    for (int l = 0; l < n; l++) {
        if (xs[(size_t)l * Cin + C + c] < 0.5f) continue;
        double s = 0.0;
        for (int j = 0; j < dh; j++) s += (double)q_row[j] * ks[(size_t)l * DT + j];
        s *= scale;
        if (s > mx) mx = s;
    }
    double den = 0.0, num = 0.0;
    for (int l = 0; l < n; l++) {
        double e = 0.0;
        if (xs[(size_t)l * Cin + C + c] >= 0.5f) {
            double s = 0.0;
            for (int j = 0; j < dh; j++) s += (double)q_row[j] * ks[(size_t)l * DT + j];
            e = exp(s * scale - mx);
        }
        if (a) a[l] = (float)e;
        den += e;
        num += e * xs[(size_t)l * Cin + c];
    }
    if (a)
        for (int l = 0; l < n; l++) a[l] = (float)(a[l] / den);
    return (float)(num / den);
}

void fm_mtand_forward(const FmMtand *mt, const FmParams *params, FmMtandBuffers *buf, float *z,
                      const float *phi_ref, const float *phi_obs, const float *x, const int *offset,
                      int S) {
    const FmMtandConfig *cf = &mt->cfg;
    const int Q = cf->Q, H = cf->H, DT = cf->DT, C = cf->C, Cin = mt->Cin, dh = DT / H, HQ = H * Q;
    const int HC = H * Cin;
    const float scale = 1.0f / sqrtf((float)dh);
    const int N = offset[S];

    /* q = phi_ref W_Q^T + b_Q (Q, DT);  k = phi_obs W_K^T + b_K (N, DT) */
    fm_linear_forward(buf->q, phi_ref, fm_params_data(params, mt->w_q), fm_params_data(params, mt->b_q),
                      Q, DT, DT);
    fm_linear_forward(buf->k, phi_obs, fm_params_data(params, mt->w_k), fm_params_data(params, mt->b_k),
                      N, DT, DT);

    for (int s = 0; s < S; s++) {
        const int off = offset[s], n = offset[s + 1] - off;
        float *o = buf->o + (size_t)s * Q * HC;
        if (n == 0) {
            memset(o, 0, (size_t)Q * HC * sizeof *o);
            continue;
        }
        float *P = buf->p + (size_t)HQ * off;
        const float *ks = buf->k + (size_t)off * DT, *xs = x + (size_t)off * Cin;
        /* s_h (Q, n) = scale * q_h (Q, dh) @ k_h^T (dh, n) */
        for (int h = 0; h < H; h++)
            fm_gemm(FM_NO_TRANS, FM_TRANS, Q, n, dh, scale, buf->q + h * dh, DT, ks + h * dh, DT, 0.0f,
                    P + (size_t)h * Q * n, n);
        /* E = exp(s - row max), once per (h, r, l); per item, alpha = E / sum_l E */
        exp_rows(P, HQ, n, cf->per_channel ? buf->rs + (size_t)s * HQ : buf->drs);
        if (!cf->per_channel)
            for (int i = 0; i < HQ; i++) fm_vec_scale(P + (size_t)i * n, 1.0f / buf->drs[i], (size_t)n);
        if (!cf->per_channel) {
            /* o_h (Q, C) = alpha_h (Q, n) @ x (n, C), written into o's head-h columns */
            for (int h = 0; h < H; h++)
                fm_gemm(FM_NO_TRANS, FM_NO_TRANS, Q, Cin, n, 1.0f, P + (size_t)h * Q * n, n, xs, Cin,
                        0.0f, o + h * Cin, HC);
            continue;
        }
        float *cnt = buf->cnt + (size_t)s * C;
        for (int c = 0; c < C; c++) cnt[c] = 0.0f;
        for (int l = 0; l < n; l++)
            for (int c = 0; c < C; c++) cnt[c] += xs[(size_t)l * Cin + C + c] >= 0.5f;
        /* [num | den] (HQ, 2C) = E (HQ, n) @ [v | m] (n, 2C) */
        float *nd = buf->nd + (size_t)s * HQ * Cin;
        fm_gemm(FM_NO_TRANS, FM_NO_TRANS, HQ, Cin, n, 1.0f, P, n, xs, Cin, 0.0f, nd, Cin);
        const float *rs = buf->rs + (size_t)s * HQ;
        for (int h = 0; h < H; h++) {
            for (int r = 0; r < Q; r++) {
                const int i = h * Q + r;
                const float *ndi = nd + (size_t)i * Cin, inv_rs = 1.0f / rs[i];
                float *orow = o + (size_t)r * HC + h * Cin;
                for (int c = 0; c < C; c++) {
                    float den = ndi[C + c], ov;
                    if (cnt[c] == 0.0f)
                        ov = 0.0f; /* never observed: o = 0 */
                    else if (den >= MTAND_TINY)
                        ov = ndi[c] / den;
                    else
                        ov = direct_channel(buf->q + (size_t)r * DT + h * dh, ks + h * dh, xs, n, DT, Cin,
                                            C, c, scale, dh, NULL);
                    orow[c] = ov;
                    orow[C + c] = den * inv_rs;
                }
            }
        }
    }
    /* Z = o W_O^T + b_O over all S*Q rows */
    fm_linear_forward(z, buf->o, fm_params_data(params, mt->w_o), fm_params_data(params, mt->b_o), S * Q,
                      HC, cf->D);
}

void fm_mtand_backward(const FmMtand *mt, FmParams *params, FmMtandBuffers *buf, float *dphi_ref,
                       float *dphi_obs, float *dx, const float *dz, const float *phi_ref,
                       const float *phi_obs, const float *x, const int *offset, int S) {
    const FmMtandConfig *cf = &mt->cfg;
    const int Q = cf->Q, H = cf->H, DT = cf->DT, C = cf->C, Cin = mt->Cin, dh = DT / H, HQ = H * Q;
    const int HC = H * Cin;
    const float scale = 1.0f / sqrtf((float)dh);
    const int N = offset[S];

    /* Z = o W_O^T + b_O:  d_o = dZ W_O;  dW_O += dZ^T o;  db_O += sum dZ */
    memset(buf->d_o, 0, (size_t)S * Q * HC * sizeof(float));
    fm_linear_backward(buf->d_o, fm_params_grad(params, mt->w_o), fm_params_grad(params, mt->b_o), dz,
                       buf->o, fm_params_data(params, mt->w_o), S * Q, HC, cf->D);
    memset(buf->dq, 0, (size_t)Q * DT * sizeof(float));
    memset(buf->dk, 0, (size_t)N * DT * sizeof(float));

    for (int s = 0; s < S; s++) {
        const int off = offset[s], n = offset[s + 1] - off;
        if (n == 0) continue; /* o = 0 does not depend on anything */
        const float *P = buf->p + (size_t)HQ * off;
        const float *ks = buf->k + (size_t)off * DT, *xs = x + (size_t)off * Cin;
        const float *dos = buf->d_o + (size_t)s * Q * HC, *os = buf->o + (size_t)s * Q * HC;
        float *dP = buf->dp, *drs = buf->drs;
        if (!cf->per_channel) {
            for (int h = 0; h < H; h++) {
                const float *Ph = P + (size_t)h * Q * n;
                /* o_h = alpha_h x:  dalpha_h (Q, n) = do_h (Q, C) x^T;  dx += alpha_h^T do_h */
                fm_gemm(FM_NO_TRANS, FM_TRANS, Q, n, Cin, 1.0f, dos + h * Cin, HC, xs, Cin, 0.0f,
                        dP + (size_t)h * Q * n, n);
                if (dx)
                    fm_gemm(FM_TRANS, FM_NO_TRANS, n, Cin, Q, 1.0f, Ph, n, dos + h * Cin, HC, 1.0f,
                            dx + (size_t)off * Cin, Cin);
            }
            /* alpha = softmax(s):  ds = alpha (dalpha - sum_l alpha dalpha) */
            for (int i = 0; i < HQ; i++) {
                const float *a = P + (size_t)i * n;
                float *da = dP + (size_t)i * n;
                mul_shifted(da, a, -fm_vec_dot(a, da, (size_t)n), (size_t)n);
            }
        } else {
            const float *nd = buf->nd + (size_t)s * HQ * Cin, *rs = buf->rs + (size_t)s * HQ;
            const float *cnt = buf->cnt + (size_t)s * C;
            /* o_value = num / den,  o_mask = den / R,  R = sum_l E:
             *   dnum = do_value / den;  dden = -do_value o_value / den + do_mask / R;
             *   dR = -sum_c do_mask o_mask / R */
            int direct = 0; /* some channel was computed directly in the forward */
            for (int h = 0; h < H; h++) {
                for (int r = 0; r < Q; r++) {
                    const int i = h * Q + r;
                    const float *ndi = nd + (size_t)i * Cin, *dorow = dos + (size_t)r * HC + h * Cin;
                    const float *orow = os + (size_t)r * HC + h * Cin, inv_rs = 1.0f / rs[i];
                    float *dndi = buf->dnd + (size_t)i * Cin, dr = 0.0f;
                    for (int c = 0; c < C; c++) {
                        float den = ndi[C + c], dden = dorow[C + c] * inv_rs, dnum = 0.0f;
                        dr -= dorow[C + c] * orow[C + c];
                        if (cnt[c] > 0.0f && den >= MTAND_TINY) {
                            const float inv = 1.0f / den;
                            dnum = dorow[c] * inv;
                            dden -= dorow[c] * orow[c] * inv;
                        } else {
                            direct |= cnt[c] > 0.0f;
                        }
                        dndi[c] = dnum;
                        dndi[C + c] = dden;
                    }
                    drs[i] = dr * inv_rs;
                }
            }
            /* [num | den] = E [v | m]:  dE (HQ, n) = [dnum | dden] [v | m]^T + dR;  ds = E dE */
            fm_gemm(FM_NO_TRANS, FM_TRANS, HQ, n, Cin, 1.0f, buf->dnd, Cin, xs, Cin, 0.0f, dP, n);
            for (int i = 0; i < HQ; i++) mul_shifted(dP + (size_t)i * n, P + (size_t)i * n, drs[i], (size_t)n);
            /* Channels computed directly in the forward: o = sum_l a_l v_l with a = softmax over
             * the channel's observed l, so ds_l += a_l do (v_l - o). */
            for (int h = 0; h < H && direct; h++) {
                for (int r = 0; r < Q; r++) {
                    const int i = h * Q + r;
                    for (int c = 0; c < C; c++) {
                        if (cnt[c] == 0.0f || nd[(size_t)i * Cin + C + c] >= MTAND_TINY) continue;
                        float *a = buf->a;
                        float ov = direct_channel(buf->q + (size_t)r * DT + h * dh, ks + h * dh, xs, n, DT,
                                                  Cin, C, c, scale, dh, a);
                        float dov = dos[(size_t)r * HC + h * Cin + c];
                        for (int l = 0; l < n; l++)
                            dP[(size_t)i * n + l] += a[l] * dov * (xs[(size_t)l * Cin + c] - ov);
                    }
                }
            }
        }
        /* s_h = scale q_h k_h^T:  dq_h += scale ds_h k_h;  dk_h += scale ds_h^T q_h */
        for (int h = 0; h < H; h++) {
            const float *dPh = dP + (size_t)h * Q * n;
            fm_gemm(FM_NO_TRANS, FM_NO_TRANS, Q, dh, n, scale, dPh, n, ks + h * dh, DT, 1.0f, buf->dq + h * dh,
                    DT);
            fm_gemm(FM_TRANS, FM_NO_TRANS, n, dh, Q, scale, dPh, n, buf->q + h * dh, DT, 1.0f,
                    buf->dk + (size_t)off * DT + h * dh, DT);
        }
    }
    /* q = phi_ref W_Q^T + b_Q;  k = phi_obs W_K^T + b_K */
    fm_linear_backward(dphi_ref, fm_params_grad(params, mt->w_q), fm_params_grad(params, mt->b_q), buf->dq,
                       phi_ref, fm_params_data(params, mt->w_q), Q, DT, DT);
    fm_linear_backward(dphi_obs, fm_params_grad(params, mt->w_k), fm_params_grad(params, mt->b_k), buf->dk,
                       phi_obs, fm_params_data(params, mt->w_k), N, DT, DT);
}
