#include "models/fusion.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "models/init.h"
#include "src/attention.h"
#include "src/dropout.h"
#include "src/layernorm.h"

/* Streams split off a layer's generator. */
enum { STREAM_ATTN_DROPOUT = 1, STREAM_MOE = 2, STREAM_MOE_DROPOUT = 3 };

static FmStatus declare(FmParams *p, const char *prefix, const char *name, int ndim, int d0, int d1, int decay,
                        int *id, FmError *err) {
    char full[FM_PARAM_NAME_MAX + 32];
    snprintf(full, sizeof full, "%s.%s", prefix, name);
    int shape[2] = {d0, d1};
    return fm_params_declare(p, full, ndim, shape, decay, id, err);
}

FmStatus fm_fusion_declare(FmFusionLayer *layer, int D, int H, float dropout, const FmMoeConfig *moe_cfg,
                           FmParams *params, const char *prefix, FmError *err) {
    memset(layer, 0, sizeof *layer);
    if (D < 1 || H < 1 || D % H != 0)
        return FM_FAIL(err, FM_ERR_CONFIG, prefix, "width %d must be divisible by the attention heads %d", D, H);
    if (!(dropout >= 0.0f && dropout < 1.0f))
        return FM_FAIL(err, FM_ERR_CONFIG, prefix, "dropout %g not in [0, 1)", (double)dropout);
    layer->D = D;
    layer->H = H;
    layer->dropout = dropout;
    FmStatus st;
    if ((st = declare(params, prefix, "ln1.weight", 1, D, 0, 0, &layer->ln1_w, err)) ||
        (st = declare(params, prefix, "ln1.bias", 1, D, 0, 0, &layer->ln1_b, err)) ||
        (st = declare(params, prefix, "attn.in_proj_weight", 2, 3 * D, D, 1, &layer->qkv_w, err)) ||
        (st = declare(params, prefix, "attn.in_proj_bias", 1, 3 * D, 0, 0, &layer->qkv_b, err)) ||
        (st = declare(params, prefix, "attn.out_proj.weight", 2, D, D, 1, &layer->out_w, err)) ||
        (st = declare(params, prefix, "attn.out_proj.bias", 1, D, 0, 0, &layer->out_b, err)) ||
        (st = declare(params, prefix, "ln2.weight", 1, D, 0, 0, &layer->ln2_w, err)) ||
        (st = declare(params, prefix, "ln2.bias", 1, D, 0, 0, &layer->ln2_b, err)))
        return st;
    char sub[FM_PARAM_NAME_MAX + 32];
    snprintf(sub, sizeof sub, "%s.moe", prefix);
    return fm_moe_declare(&layer->moe, moe_cfg, params, sub, err);
}

void fm_fusion_init(const FmFusionLayer *layer, FmParams *params, FmRng *rng) {
    const int D = layer->D;
    fm_init_const(params, layer->ln1_w, 1.0f);
    fm_init_const(params, layer->ln1_b, 0.0f);
    fm_init_const(params, layer->ln2_w, 1.0f);
    fm_init_const(params, layer->ln2_b, 0.0f);
    /* Xavier uniform over the (3D, D) in_proj as one matrix, as nn.MultiheadAttention does */
    fm_init_uniform(params, layer->qkv_w, sqrtf(6.0f / (float)(3 * D + D)), rng);
    fm_init_const(params, layer->qkv_b, 0.0f);
    fm_init_uniform(params, layer->out_w, 1.0f / sqrtf((float)D), rng);
    fm_init_const(params, layer->out_b, 0.0f);
    FmRng moe_rng = fm_rng_split(rng, 1);
    fm_moe_init(&layer->moe, params, &moe_rng);
}

void fm_fusion_cache_layout(FmFusionCache *c, FmLayout *l, int B, int T, int D, int H) {
    const size_t N = (size_t)B * T, ND = N * D;
    FmAttnShape s = {B, T, D, H};
    c->ln1 = fm_layout_floats(l, ND);
    c->mean1 = fm_layout_floats(l, N);
    c->rstd1 = fm_layout_floats(l, N);
    c->attn = fm_layout_floats(l, fm_attention_cache_size(s));
    c->a = fm_layout_floats(l, ND);
    c->keep1 = fm_layout_u8(l, ND);
    c->xmid = fm_layout_floats(l, ND);
    c->ln2 = fm_layout_floats(l, ND);
    c->mean2 = fm_layout_floats(l, N);
    c->rstd2 = fm_layout_floats(l, N);
    c->y = fm_layout_floats(l, ND);
    c->keep2 = fm_layout_u8(l, ND);
}

void fm_fusion_scratch_layout(FmFusionScratch *s, FmLayout *l, int B, int T, int D, int H) {
    const size_t ND = (size_t)B * T * D;
    FmAttnShape as = {B, T, D, H};
    s->d1 = fm_layout_floats(l, ND);
    s->dln = fm_layout_floats(l, ND);
    s->attn = fm_layout_floats(l, fm_attention_scratch_size(as));
}

/* The forward of both modes: the MoE in competition mode when cs != NULL (training only). */
static void forward(const FmFusionLayer *layer, const FmParams *params, FmFusionCache *c, float *x_out,
                    const float *x_in, const int *token_modality, int B, int T, int training, FmRng *rng,
                    const FmCompeteSettings *cs, FmMoeAux *aux, FmCompeteAux *caux) {
    const int D = layer->D, N = B * T;
    const size_t ND = (size_t)N * D;
    FmAttnShape s = {B, T, D, layer->H};
    c->dropped = training && layer->dropout > 0.0f;
    /* a = Dropout(MHSA(LN1(x))) */
    fm_layernorm_forward(c->ln1, c->mean1, c->rstd1, x_in, fm_params_data(params, layer->ln1_w),
                         fm_params_data(params, layer->ln1_b), N, D);
    fm_attention_forward(c->a, c->attn, c->ln1, NULL, fm_params_data(params, layer->qkv_w),
                         fm_params_data(params, layer->qkv_b), fm_params_data(params, layer->out_w),
                         fm_params_data(params, layer->out_b), s);
    if (c->dropped) {
        FmRng r = fm_rng_split(rng, STREAM_ATTN_DROPOUT);
        fm_dropout_forward(c->a, c->keep1, c->a, ND, layer->dropout, &r);
    }
    for (size_t i = 0; i < ND; i++) c->xmid[i] = x_in[i] + c->a[i];
    /* y = Dropout(MoE(LN2(xmid))) */
    fm_layernorm_forward(c->ln2, c->mean2, c->rstd2, c->xmid, fm_params_data(params, layer->ln2_w),
                         fm_params_data(params, layer->ln2_b), N, D);
    FmRng moe_rng;
    if (training) moe_rng = fm_rng_split(rng, STREAM_MOE);
    c->competed = cs != NULL;
    if (cs) {
        c->compete = *cs;
        fm_moe_compete_forward(&layer->moe, params, c->moe, c->y, c->ln2, token_modality, N, 1, &moe_rng,
                               cs->winner_weight, caux);
    } else {
        fm_moe_forward(&layer->moe, params, c->moe, c->y, c->ln2, token_modality, N, training,
                       training ? &moe_rng : NULL, aux);
    }
    if (c->dropped) {
        FmRng r = fm_rng_split(rng, STREAM_MOE_DROPOUT);
        fm_dropout_forward(c->y, c->keep2, c->y, ND, layer->dropout, &r);
    }
    for (size_t i = 0; i < ND; i++) x_out[i] = c->xmid[i] + c->y[i];
}

void fm_fusion_forward(const FmFusionLayer *layer, const FmParams *params, FmFusionCache *c, float *x_out,
                       const float *x_in, const int *token_modality, int B, int T, int training, FmRng *rng,
                       FmMoeAux *aux) {
    forward(layer, params, c, x_out, x_in, token_modality, B, T, training, rng, NULL, aux, NULL);
}

void fm_fusion_forward_compete(const FmFusionLayer *layer, const FmParams *params, FmFusionCache *c,
                               float *x_out, const float *x_in, const int *token_modality, int B, int T, FmRng *rng,
                               const FmCompeteSettings *settings, FmCompeteAux *caux) {
    FM_ASSERT(settings != NULL && rng != NULL);
    forward(layer, params, c, x_out, x_in, token_modality, B, T, 1, rng, settings, NULL, caux);
}

void fm_fusion_backward(const FmFusionLayer *layer, FmParams *params, FmFusionCache *c, FmFusionScratch *s,
                        float *dx, const float *x_in, int B, int T, float balance_coef, float entropy_coef) {
    const int D = layer->D, N = B * T;
    const size_t ND = (size_t)N * D;
    FmAttnShape as = {B, T, D, layer->H};
    /* x_out = xmid + y:  dxmid = dx (in place);  dy = dx through the dropout mask */
    if (c->dropped) {
        memset(s->d1, 0, ND * sizeof(float));
        fm_dropout_backward(s->d1, dx, c->keep2, ND, layer->dropout);
    } else {
        memcpy(s->d1, dx, ND * sizeof(float));
    }
    /* y = MoE(ln2):  dln2 */
    memset(s->dln, 0, ND * sizeof(float));
    if (c->competed)
        fm_moe_compete_backward(&layer->moe, params, c->moe, s->dln, s->d1, c->compete.router_coef,
                                c->compete.diversity_coef, c->compete.balance_coef);
    else
        fm_moe_backward(&layer->moe, params, c->moe, s->dln, s->d1, balance_coef, entropy_coef);
    /* ln2 = LN2(xmid):  dxmid += LN2'(dln2) */
    fm_layernorm_backward(dx, fm_params_grad(params, layer->ln2_w), fm_params_grad(params, layer->ln2_b), s->dln,
                          c->xmid, c->mean2, c->rstd2, fm_params_data(params, layer->ln2_w), N, D);
    /* xmid = x_in + a:  dx_in = dxmid (in place);  da = dxmid through the dropout mask */
    if (c->dropped) {
        memset(s->d1, 0, ND * sizeof(float));
        fm_dropout_backward(s->d1, dx, c->keep1, ND, layer->dropout);
    } else {
        memcpy(s->d1, dx, ND * sizeof(float));
    }
    /* a = MHSA(ln1):  dln1 */
    memset(s->dln, 0, ND * sizeof(float));
    fm_attention_backward(s->dln, fm_params_grad(params, layer->qkv_w), fm_params_grad(params, layer->qkv_b),
                          fm_params_grad(params, layer->out_w), fm_params_grad(params, layer->out_b), s->attn, s->d1,
                          c->ln1, c->attn, NULL, fm_params_data(params, layer->qkv_w),
                          fm_params_data(params, layer->out_w), as);
    /* ln1 = LN1(x_in):  dx_in += LN1'(dln1) */
    fm_layernorm_backward(dx, fm_params_grad(params, layer->ln1_w), fm_params_grad(params, layer->ln1_b), s->dln,
                          x_in, c->mean1, c->rstd1, fm_params_data(params, layer->ln1_w), N, D);
}
