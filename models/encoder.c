#include "models/encoder.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "models/init.h"
#include "preprocessing/modality.h"
#include "src/linear.h"
#include "src/time2vec.h"

/* Width of mTAND's input items. */
static int item_width(const FmEncoderConfig *c) {
    return c->kind == FM_MODALITY_IMAGES ? c->patch_dim : c->kind == FM_MODALITY_SERIES ? 2 * c->C : c->C;
}

FmStatus fm_encoder_declare(FmEncoder *enc, const FmEncoderConfig *cfg, FmParams *params, const char *prefix,
                            FmError *err) {
    memset(enc, 0, sizeof *enc);
    enc->cfg = *cfg;
    if (cfg->C < 1) return FM_FAIL(err, FM_ERR_CONFIG, prefix, "channel count %d must be >= 1", cfg->C);
    char sub[FM_PARAM_NAME_MAX + 32];
    FmStatus st;
    if (cfg->kind == FM_MODALITY_STATIC) {
        int w[2] = {cfg->D, 2 * cfg->C};
        snprintf(sub, sizeof sub, "%s.static.weight", prefix);
        if ((st = fm_params_declare(params, sub, 2, w, 1, &enc->w_static, err))) return st;
        snprintf(sub, sizeof sub, "%s.static.bias", prefix);
        return fm_params_declare(params, sub, 1, &cfg->D, 0, &enc->b_static, err);
    }
    if (cfg->kind == FM_MODALITY_IMAGES) {
        snprintf(sub, sizeof sub, "%s.patch", prefix);
        if ((st = fm_patch_declare(&enc->patch, cfg->C, cfg->patch, cfg->patch_dim, cfg->patch_gelu, params, sub,
                                   err)))
            return st;
    }
    FmMtandConfig mc = {.Q = cfg->Q, .H = cfg->H, .DT = cfg->DT, .D = cfg->D,
                        .C = cfg->kind == FM_MODALITY_IMAGES ? cfg->patch_dim : cfg->C,
                        .per_channel = cfg->kind == FM_MODALITY_SERIES};
    snprintf(sub, sizeof sub, "%s.mtand", prefix);
    if ((st = fm_mtand_declare(&enc->mtand, &mc, params, sub, err))) return st;
    if (cfg->kind == FM_MODALITY_SERIES && cfg->imputation) {
        snprintf(sub, sizeof sub, "%s.utde", prefix);
        if ((st = fm_utde_declare(&enc->utde, cfg->Q, cfg->C, cfg->D, params, sub, err))) return st;
    }
    return FM_OK;
}

void fm_encoder_init(const FmEncoder *enc, FmParams *params, FmRng *rng) {
    const FmEncoderConfig *c = &enc->cfg;
    if (c->kind == FM_MODALITY_STATIC) {
        fm_init_linear(params, enc->w_static, enc->b_static, rng);
        return;
    }
    if (c->kind == FM_MODALITY_IMAGES) fm_patch_init(&enc->patch, params, rng);
    fm_mtand_init(&enc->mtand, params, rng);
    if (c->kind == FM_MODALITY_SERIES && c->imputation) fm_utde_init(&enc->utde, params, rng);
}

void fm_encoder_layout(FmEncoderBuffers *buf, FmLayout *l, const FmEncoder *enc, int max_B, int max_L) {
    const FmEncoderConfig *c = &enc->cfg;
    const size_t B = (size_t)max_B, N = (size_t)max_B * max_L, W = (size_t)item_width(c);
    const int utde = c->kind == FM_MODALITY_SERIES && c->imputation;
    buf->max_B = max_B;
    buf->max_L = max_L;
    buf->slot_stay = fm_layout_ints(l, B);
    buf->offset = fm_layout_ints(l, B + 1);
    if (c->kind == FM_MODALITY_STATIC) {
        buf->sx = fm_layout_floats(l, B * 2 * c->C);
        buf->z = fm_layout_floats(l, B * c->D);
        return;
    }
    buf->t = fm_layout_floats(l, N);
    buf->x = fm_layout_floats(l, N * W);
    buf->pix = fm_layout_floats(l, c->kind == FM_MODALITY_IMAGES ? N * c->C : 0);
    buf->phi = fm_layout_floats(l, N * c->DT);
    buf->zm = fm_layout_floats(l, utde ? B * c->Q * c->D : 0);
    buf->z = fm_layout_floats(l, B * c->Q * c->D);
    buf->dphi = fm_layout_floats(l, N * c->DT);
    buf->dx = fm_layout_floats(l, c->kind == FM_MODALITY_IMAGES ? N * W : 0);
    buf->dzm = fm_layout_floats(l, utde ? B * c->Q * c->D : 0);
    fm_mtand_layout(&buf->mt, l, &enc->mtand.cfg, max_B, (int)N, max_L);
    if (utde) fm_utde_layout(&buf->ut, l, c->Q, c->C, c->D, max_B);
    if (c->kind == FM_MODALITY_IMAGES) fm_patch_layout(&buf->pt, l, &enc->patch, (int)N);
}

FmStatus fm_encoder_pack(const FmEncoder *enc, FmEncoderBuffers *buf, const FmBatchModality *bm, int B,
                         const char *name, FmError *err) {
    const FmEncoderConfig *c = &enc->cfg;
    const int C = c->C, L = bm->max_L;
    if (bm->kind != c->kind || bm->C != C)
        return FM_FAIL(err, FM_ERR_ARG, NULL, "modality %s: the model expects %s data with %d channels, got %s with %d",
                       name, fm_modality_kind_name(c->kind), C, fm_modality_kind_name(bm->kind), bm->C);
    if (B > buf->max_B || L > buf->max_L || L < (c->kind == FM_MODALITY_STATIC ? 1 : 0))
        return FM_FAIL(err, FM_ERR_ARG, NULL,
                       "modality %s: batch of %d stays with %d observations each does not fit the workspace "
                       "(at most %d stays, %d observations)",
                       name, B, L, buf->max_B, buf->max_L);
    if (!bm->value || !bm->mask || !bm->count || (c->kind != FM_MODALITY_STATIC && !bm->time))
        return FM_FAIL(err, FM_ERR_ARG, NULL, "modality %s: value, mask, count or time array missing", name);
    int S = 0, N = 0;
    buf->offset[0] = 0;
    for (int b = 0; b < B; b++) {
        if (bm->present && !bm->present[b]) continue;
        const int cnt = bm->count[b];
        if (cnt < 0 || cnt > L || (c->kind == FM_MODALITY_STATIC && cnt > 1))
            return FM_FAIL(err, FM_ERR_ARG, NULL, "modality %s: stay %d: %d observations, not in [0, %d]", name, b,
                           cnt, c->kind == FM_MODALITY_STATIC ? 1 : L);
        buf->slot_stay[S] = b;
        if (c->kind == FM_MODALITY_STATIC) {
            /* [v * m ; m] of the stay's one row (absent row: everything unobserved) */
            float *row = buf->sx + (size_t)S * 2 * C;
            for (int ch = 0; ch < C; ch++) {
                int m = cnt > 0 && bm->mask[(size_t)b * L * C + ch];
                float v = bm->value[(size_t)b * L * C + ch];
                if (m && !isfinite(v))
                    return FM_FAIL(err, FM_ERR_ARG, NULL, "modality %s: stay %d: channel %d: value is not finite",
                                   name, b, ch);
                row[ch] = m ? v : 0.0f;
                row[C + ch] = (float)m;
            }
            S++;
            continue;
        }
        for (int l = 0; l < cnt; l++) {
            const size_t obs = (size_t)b * L + l;
            if (c->kind != FM_MODALITY_SERIES && !bm->mask[obs]) continue; /* not a real item */
            float t = bm->time[obs];
            if (!isfinite(t))
                return FM_FAIL(err, FM_ERR_ARG, NULL, "modality %s: stay %d: observation %d: time is not finite",
                               name, b, l);
            buf->t[N] = t;
            const float *v = bm->value + obs * C;
            if (c->kind == FM_MODALITY_SERIES) {
                float *row = buf->x + (size_t)N * 2 * C;
                for (int ch = 0; ch < C; ch++) {
                    int m = bm->mask[obs * C + ch] != 0;
                    if (m && !isfinite(v[ch]))
                        return FM_FAIL(err, FM_ERR_ARG, NULL,
                                       "modality %s: stay %d: observation %d: channel %d: value is not finite", name,
                                       b, l, ch);
                    row[ch] = m ? v[ch] : 0.0f;
                    row[C + ch] = (float)m;
                }
            } else {
                float *dst = c->kind == FM_MODALITY_IMAGES ? buf->pix + (size_t)N * C : buf->x + (size_t)N * C;
                for (int ch = 0; ch < C; ch++) {
                    if (!isfinite(v[ch]))
                        return FM_FAIL(err, FM_ERR_ARG, NULL,
                                       "modality %s: stay %d: item %d: value %d is not finite", name, b, l, ch);
                    dst[ch] = v[ch];
                }
            }
            N++;
        }
        S++;
        buf->offset[S] = N;
    }
    buf->S = S;
    return FM_OK;
}

void fm_encoder_forward(const FmEncoder *enc, const FmParams *params, FmEncoderBuffers *buf,
                        const float *phi_ref, int t2v_w, int t2v_b) {
    const FmEncoderConfig *c = &enc->cfg;
    const int S = buf->S;
    if (c->kind == FM_MODALITY_STATIC) {
        fm_linear_forward(buf->z, buf->sx, fm_params_data(params, enc->w_static),
                          fm_params_data(params, enc->b_static), S, 2 * c->C, c->D);
        return;
    }
    const int N = buf->offset[S];
    fm_time2vec_forward(buf->phi, buf->t, fm_params_data(params, t2v_w), fm_params_data(params, t2v_b), N, c->DT);
    if (c->kind == FM_MODALITY_IMAGES) fm_patch_forward(&enc->patch, params, &buf->pt, buf->x, buf->pix, N);
    const int utde = c->kind == FM_MODALITY_SERIES && c->imputation;
    fm_mtand_forward(&enc->mtand, params, &buf->mt, utde ? buf->zm : buf->z, phi_ref, buf->phi, buf->x,
                     buf->offset, S);
    if (utde) fm_utde_forward(&enc->utde, params, &buf->ut, buf->z, buf->zm, buf->t, buf->x, buf->offset, S);
}

void fm_encoder_backward(const FmEncoder *enc, FmParams *params, FmEncoderBuffers *buf, const float *dz,
                         const float *phi_ref, float *dphi_ref, int t2v_w, int t2v_b) {
    const FmEncoderConfig *c = &enc->cfg;
    const int S = buf->S;
    if (c->kind == FM_MODALITY_STATIC) {
        fm_linear_backward(NULL, fm_params_grad(params, enc->w_static), fm_params_grad(params, enc->b_static), dz,
                           buf->sx, fm_params_data(params, enc->w_static), S, 2 * c->C, c->D);
        return;
    }
    const int N = buf->offset[S];
    const int utde = c->kind == FM_MODALITY_SERIES && c->imputation;
    const float *dzm = dz;
    if (utde) {
        fm_utde_backward(&enc->utde, params, &buf->ut, buf->dzm, dz, buf->zm, S);
        dzm = buf->dzm;
    }
    memset(buf->dphi, 0, (size_t)N * c->DT * sizeof(float));
    float *dx = NULL;
    if (c->kind == FM_MODALITY_IMAGES) {
        dx = buf->dx;
        memset(dx, 0, (size_t)N * c->patch_dim * sizeof(float));
    }
    fm_mtand_backward(&enc->mtand, params, &buf->mt, dphi_ref, buf->dphi, dx, dzm, phi_ref, buf->phi,
                      buf->x, buf->offset, S);
    if (dx) fm_patch_backward(&enc->patch, params, &buf->pt, dx, N);
    /* phi = Time2Vec(t); the times are data: only the Time2Vec parameters get a gradient */
    fm_time2vec_backward(NULL, fm_params_grad(params, t2v_w), fm_params_grad(params, t2v_b), buf->dphi, buf->t,
                         fm_params_data(params, t2v_w), fm_params_data(params, t2v_b), N, c->DT);
}
