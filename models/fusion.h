/* One layer of the FuseMoE fusion stack (BRIEF section 3), pre-LayerNorm with residuals over
 * the B stays' T tokens of width D:
 *   X <- X + Dropout(MHSA(LN1(X)))     attention over all T tokens of a stay (cross-modal)
 *   X <- X + Dropout(MoE(LN2(X)))      per token, each with its modality index for routing
 * Tensors under the layer's prefix (e.g. "fusion.0"): ln1.weight, ln1.bias (D),
 * attn.in_proj_weight (3D, D), attn.in_proj_bias (3D), attn.out_proj.weight (D, D),
 * attn.out_proj.bias (D), ln2.weight, ln2.bias (D), and the MoE's under ".moe". */
#ifndef FM_FUSION_H
#define FM_FUSION_H

#include <stdint.h>

#include "models/layout.h"
#include "models/moe.h"
#include "models/moe_compete.h"
#include "src/error.h"
#include "src/params.h"
#include "src/rng.h"

typedef struct {
    int D, H;      /* width, attention heads */
    float dropout; /* on both residual branches, training only */
    int ln1_w, ln1_b, qkv_w, qkv_b, out_w, out_b, ln2_w, ln2_b;
    FmMoe moe;
} FmFusionLayer;

/* What one layer's forward keeps for its backward (B*T tokens). */
typedef struct {
    float *ln1, *mean1, *rstd1; /* (BT, D), (BT), (BT) */
    float *attn;                /* fm_attention_cache_size floats */
    float *a;                   /* (BT, D) attention branch after dropout */
    uint8_t *keep1;             /* (BT * D) */
    float *xmid;                /* (BT, D) X after the attention residual */
    float *ln2, *mean2, *rstd2;
    float *y;       /* (BT, D) MoE branch after dropout */
    uint8_t *keep2; /* (BT * D) */
    int dropped;    /* 1 when the last forward applied dropout */
    FmMoeCache *moe; /* created by the owner with fm_moe_cache_create (max tokens B*T), or with
                      * fm_moe_cache_create_compete for fm_fusion_forward_compete */
    int competed;               /* 1 when the last forward ran the MoE in competition mode */
    FmCompeteSettings compete;  /* the settings of that forward, for the backward */
} FmFusionCache;

/* Scratch shared by all layers' backwards. */
typedef struct {
    float *d1, *dln; /* (BT, D) each */
    float *attn;     /* fm_attention_scratch_size floats */
} FmFusionScratch;

/* Declares the layer's tensors (the MoE through fm_moe_declare) under `prefix`. */
FmStatus fm_fusion_declare(FmFusionLayer *layer, int D, int H, float dropout, const FmMoeConfig *moe_cfg,
                           FmParams *params, const char *prefix, FmError *err);

/* LayerNorms at (1, 0); attention projections as PyTorch's nn.MultiheadAttention (Xavier-uniform
 * in_proj, zero biases, out_proj as nn.Linear's weight); the MoE by fm_moe_init. */
void fm_fusion_init(const FmFusionLayer *layer, FmParams *params, FmRng *rng);

/* The cache's buffers except `moe`, and the scratch, for B stays of T tokens. */
void fm_fusion_cache_layout(FmFusionCache *cache, FmLayout *l, int B, int T, int D, int H);
void fm_fusion_scratch_layout(FmFusionScratch *scratch, FmLayout *l, int B, int T, int D, int H);

/* x_out (B, T, D) = the layer applied to x_in (B, T, D) (x_out must not alias x_in).
 * token_modality (B*T): each token's modality. training != 0: dropout and routing noise from
 * streams split off `rng`; training == 0 is deterministic (rng may be NULL). aux receives the
 * MoE's auxiliary losses (unweighted). */
void fm_fusion_forward(const FmFusionLayer *layer, const FmParams *params, FmFusionCache *cache, float *x_out,
                       const float *x_in, const int *token_modality, int B, int T, int training, FmRng *rng,
                       FmMoeAux *aux);

/* A training forward (dropout as fm_fusion_forward) with the layer's MoE in competition mode
 * (models/moe_compete.h): cache->moe must come from fm_moe_cache_create_compete. caux (may be
 * NULL) receives the competition losses (unweighted); the cache keeps `settings` for the
 * backward. */
void fm_fusion_forward_compete(const FmFusionLayer *layer, const FmParams *params, FmFusionCache *cache,
                               float *x_out, const float *x_in, const int *token_modality, int B, int T, FmRng *rng,
                               const FmCompeteSettings *settings, FmCompeteAux *caux);

/* dx holds the gradient of x_out on entry and that of x_in on return. Accumulates params->grad,
 * with balance_coef * aux.balance + entropy_coef * aux.entropy added to the loss. After
 * fm_fusion_forward_compete the MoE's part is the competition backward instead, with the
 * forward's settings' coefficients (balance_coef and entropy_coef are then unused). */
void fm_fusion_backward(const FmFusionLayer *layer, FmParams *params, FmFusionCache *cache,
                        FmFusionScratch *scratch, float *dx, const float *x_in, int B, int T, float balance_coef,
                        float entropy_coef);

#endif
