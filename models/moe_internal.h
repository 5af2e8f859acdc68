/* The MoE layer's cache and the steps of the forward and backward that its routed mode
 * (models/moe.c) and its competition mode (models/moe_compete.c) share. Internal to the layer:
 * callers use models/moe.h and models/moe_compete.h. */
#ifndef FM_MOE_INTERNAL_H
#define FM_MOE_INTERNAL_H

#include <stdint.h>

#include "models/moe.h"
#include "models/moe_balance.h"
#include "models/moe_gate.h"

struct FmMoeCache {
    FmMoeConfig cfg;
    int max_tokens, R, Er;
    /* the last forward */
    int T, noisy, dropout_on;
    float *x;      /* (max_tokens, D) copy of the input */
    int *modality; /* (max_tokens) */
    int *router;   /* (max_tokens) */
    FmMoeRoutes rt;
    FmMoeRouteGrads rg;
    FmMoeAuxState as;
    FmMoeAux aux;
    /* dispatch: rows of the expert blocks */
    int *selected; /* (max_tokens, K) global expert ids */
    int *counts;   /* (M, E) */
    int *start;    /* (E + 1) first row of each expert's block */
    int *fill;     /* (E) scratch */
    int *row_of;   /* (max_tokens * K) row of pair (t, k) */
    int *pair_of;  /* (max_tokens * K) pair t * K + k of each row */
    float *xg;     /* (rows, D) gathered inputs */
    float *hpre;   /* (rows, hidden) fc1 output */
    float *hact;   /* (rows, hidden) dropout(GELU(hpre)) */
    uint8_t *keep; /* (rows, hidden) dropout mask (dropout > 0 only) */
    float *eo;     /* (rows, D) expert outputs */
    /* backward scratch for one expert block (at most max_tokens rows) */
    float *d_eo, *d_act, *d_drop, *d_pre, *d_xg;
    /* injected noise */
    float *inj_eps; /* (max_tokens, Er) */
    int inj_T;      /* -1: none */

    /* Competition mode (models/moe_compete.c). The buffers exist only in a cache made by
     * fm_moe_cache_create_compete (can_compete = 1); they are NULL otherwise. */
    int can_compete;
    int competed;    /* 1: the last forward was a competition forward */
    float *dense_eo; /* (max_tokens * Er, D) every expert of each token's router on the token:
                      * router r's tokens (in perm order) form rows rstart[r] Er ..; within them
                      * local expert j owns the n_r rows from rstart[r] Er + j n_r */
    float *resp;     /* (max_tokens, Er) responses s, per token in token order */
    float *target;   /* (max_tokens, Er) softmax(s) */
    float *xr;       /* (max_tokens, D) inputs in perm order */
    int *perm;       /* (max_tokens) tokens grouped by router, token order within a router */
    int *pos;        /* (max_tokens) index of token t in perm */
    int rstart[FM_MOE_MAX_MODALITIES + 1];
    float *cmp_dw;   /* (max_tokens, K) gradient of the winners' weights (backward) */
    float *cmp_ds;   /* (max_tokens, K) gradient of the winners' responses (backward) */
    float *cmp_norm; /* (max_tokens, K) norms of the winners' outputs */
    float *cmp_cos;  /* (max_tokens, K, K) cosines between the winners' outputs */
    float *cmp_dp;   /* (max_tokens, Er) gradient of the router probabilities (backward) */
    FmRng drop_rng;  /* the dropout stream of the last competition forward */
    float winner_weight;
    float cmp_losses[3]; /* router, diversity, balance of the last competition forward */
};

/* The router tensors of the layer as arrays indexed by router: parameters (grad = 0) or their
 * gradients (grad = 1). wn[r] is NULL without noise weights. */
void fm_moe_router_tensors(const FmMoe *moe, const FmParams *params, int grad, float **w, float **wn);

/* Copies the input (T, D) and the modalities (NULL: all 0) into the cache and sets each token's
 * router; sets c->T. Asserts the shapes and that out and inp do not overlap. */
void fm_moe_stage_input(const FmMoe *moe, FmMoeCache *c, float *out, const float *inp,
                        const int *token_modality, int T);

/* Fills c->counts from c->selected and groups the (token, slot) pairs into expert blocks (rows),
 * gathering the inputs into c->xg. */
void fm_moe_dispatch(FmMoeCache *c);

/* Combines the expert outputs c->eo (rows as fm_moe_dispatch placed them) into out (c->T, D):
 * y_t = sum_k c->rt.gate[t, k] * eo[row_of(t, k)]. */
void fm_moe_combine(const FmMoeCache *c, float *out);

/* Expert e on n rows x (n, D): hpre (n, hidden) = x W1_e^T + b1_e, hact = GELU(hpre), then,
 * when drop_rng != NULL, dropout with row i's mask drawn from stream
 * tokens[i] / token_div * E + e of drop_rng (kept in keep (n, hidden)), and, when eo != NULL,
 * eo (n, D) = hact W2_e^T + b2_e. The stream keys are those of the routed forward, so a
 * (token, expert) pair sees the same mask in both modes for the same rng state. */
void fm_moe_expert_forward(const FmMoe *moe, const FmParams *params, int e, const float *x, int n,
                           const int *tokens, int token_div, float *hpre, float *hact, uint8_t *keep,
                           float *eo, const FmRng *drop_rng);

/* The backward of expert e's block of the dispatch (rows start[e] .. start[e + 1]) given the
 * gradient of its outputs d_eo (n, D): accumulates the expert's parameter gradients and, when
 * dinp != NULL, adds the input gradient to the rows of dinp (T, D) of the block's tokens. Uses
 * c->d_act, d_drop, d_pre and d_xg as scratch (d_eo may be c->d_eo). */
void fm_moe_expert_backward(const FmMoe *moe, FmParams *params, FmMoeCache *c, int e, const float *d_eo,
                            float *dinp);

#endif
