/* The sparse mixture-of-experts layer of the FuseMoE fusion stack (BRIEF section 3).
 *
 * Per token x (width D): router logits l_e(x) (Laplace -||x - w_e||, Gaussian -||x - w_e||^2,
 * softmax x . w_e), noisy top-k in training only, gates g = softmax over the K selected logits,
 * y = sum_{e in S(x)} g_e(x) FFN_e(x), FFN_e: D -> hidden -> D with erf GELU. Routers: joint (one
 * router, shared experts), per-modality (one router per modality, shared experts), disjoint (one
 * router and E/M own experts per modality). Auxiliary losses: load balance CV^2(importance) +
 * CV^2(load) and the per-modality entropy regulariser, each with its own coefficient. */
#ifndef FM_MOE_H
#define FM_MOE_H

#include "src/error.h"
#include "src/params.h"
#include "src/rng.h"

typedef enum { FM_GATE_LAPLACE, FM_GATE_GAUSSIAN, FM_GATE_SOFTMAX } FmGate;
typedef enum { FM_ROUTER_JOINT, FM_ROUTER_PER_MODALITY, FM_ROUTER_DISJOINT } FmRouter;

typedef struct {
    int D;         /* token width */
    int hidden;    /* expert hidden width */
    int E;         /* experts in all (disjoint: E / M per modality; E divisible by M) */
    int K;         /* experts per token (disjoint: K <= E / M) */
    int M;         /* modalities (number of routers for per-modality and disjoint) */
    FmGate gate;
    FmRouter router;
    float dropout; /* on the expert hidden activations, training only */
    int noisy;     /* 1: noisy top-k during training (never at evaluation) */
} FmMoeConfig;

/* Values of the auxiliary losses from the last forward (unweighted). */
typedef struct {
    float balance; /* CV^2(importance) + CV^2(load) (sum over routers) */
    float entropy; /* (1/M) sum_m H(p_m) - H(mean_m p_m) */
} FmMoeAux;

#define FM_MOE_MAX_MODALITIES 8

/* The layer: its configuration and the ids of its tensors in the model's FmParams.
 * Filled by fm_moe_declare; the fields are for the layer's own code and for inspection. */
typedef struct {
    FmMoeConfig cfg;
    int n_routers;          /* 1 (joint) or M */
    int experts_per_router; /* E (joint, per-modality) or E / M (disjoint) */
    int router_w[FM_MOE_MAX_MODALITIES]; /* per router: centres / weights (E_r, D) */
    int noise_w[FM_MOE_MAX_MODALITIES];  /* per router: noise weights (E_r, D) */
    int fc1_w, fc1_b, fc2_w, fc2_b;      /* experts: (E, hidden, D), (E, hidden), (E, D, hidden), (E, D) */
} FmMoe;

/* Checks `cfg` (FM_ERR_CONFIG naming the bad value) and declares the layer's tensors in
 * `params` under `prefix` (e.g. "fusion.0.moe"). */
FmStatus fm_moe_declare(FmMoe *moe, const FmMoeConfig *cfg, FmParams *params, const char *prefix,
                        FmError *err);

/* Initialises the layer's parameters after fm_params_allocate (distinct router centres; never
 * all at one point, which would tie every expert). */
void fm_moe_init(const FmMoe *moe, FmParams *params, FmRng *rng);

/* Activations kept by the forward for the backward, sized for up to max_tokens tokens. */
typedef struct FmMoeCache FmMoeCache;
FmStatus fm_moe_cache_create(FmMoeCache **cache, const FmMoeConfig *cfg, int max_tokens,
                             FmError *err);
/* NULL is accepted. */
void fm_moe_cache_free(FmMoeCache *cache);

/* out (T, D) = MoE(inp (T, D)). token_modality (T) holds each token's modality in [0, M) (NULL
 * means all 0). T <= the cache's max_tokens. training != 0 turns on the routing noise (if
 * cfg.noisy) and dropout, drawn from rng; training == 0 is deterministic and rng may be NULL.
 * aux (may be NULL) receives the auxiliary loss values. out must not alias inp. */
void fm_moe_forward(const FmMoe *moe, const FmParams *params, FmMoeCache *cache, float *out,
                    const float *inp, const int *token_modality, int T, int training, FmRng *rng,
                    FmMoeAux *aux);

/* Accumulates (+=) into params->grad and dinp (T, D) the gradient of
 *   sum(dout * out) + balance_coef * aux.balance + entropy_coef * aux.entropy
 * for the last forward on this cache. */
void fm_moe_backward(const FmMoe *moe, FmParams *params, FmMoeCache *cache, float *dinp,
                     const float *dout, float balance_coef, float entropy_coef);

/* Tokens routed to each expert by the last forward, per modality: (M, E), row-major. */
const int *fm_moe_expert_counts(const FmMoeCache *cache);

#endif
