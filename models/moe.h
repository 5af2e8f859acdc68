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
#define FM_MOE_MAX_EXPERTS 256

/* Smoothing of the Laplace distance at the cone point x == w_e: the Laplace logit is
 * l_e = -(sqrt(||x - w_e||^2 + eps^2) - eps), which is within eps of -||x - w_e|| everywhere, equal
 * to it at x == w_e, and has a gradient of norm ||x - w_e|| / sqrt(||x - w_e||^2 + eps^2) < 1
 * that is continuous through the centre (0 there). */
#define FM_MOE_LAPLACE_EPS 1e-3f

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
 * `params` under `prefix` (e.g. "fusion.0.moe"):
 *   <prefix>.router.<r>.weight        (E_r, D)  centres (Laplace, Gaussian) or weights (softmax)
 *   <prefix>.router.<r>.noise_weight  (E_r, D)  only when cfg->noisy (else noise_w[r] = -1)
 *   <prefix>.experts.fc1.weight (E, hidden, D), .fc1.bias (E, hidden),
 *   <prefix>.experts.fc2.weight (E, D, hidden), .fc2.bias (E, D)
 * with r = 0 .. n_routers - 1. Weight decay is marked on the expert and noise weight matrices
 * and on softmax router weights, not on Laplace/Gaussian centres (decay would pull every centre
 * towards the origin and so towards each other) nor on biases.
 * Limits: 1 <= K <= E_r, 1 <= M <= FM_MOE_MAX_MODALITIES, E <= FM_MOE_MAX_EXPERTS, disjoint
 * needs E divisible by M, 0 <= dropout < 1, noisy in {0, 1}. On failure `params` is left as it
 * was (no tensor of the layer stays declared) and *moe is unspecified. */
FmStatus fm_moe_declare(FmMoe *moe, const FmMoeConfig *cfg, FmParams *params, const char *prefix,
                        FmError *err);

/* Initialises the layer's parameters after fm_params_allocate, drawing from rng:
 *   router centres / weights  N(0, 1/D) entries, so distinct (never all at one point, which would
 *                             tie every expert) and, for unit-variance inputs (after LayerNorm),
 *                             logit gaps of order 1 under each of the three gates;
 *   noise weights             0, so the initial noise scale is softplus(0) + 0.01 = 0.703 for
 *                             every expert (as in Shazeer et al. 2017);
 *   expert weights and biases uniform in +-1/sqrt(fan_in), as PyTorch's nn.Linear
 *                             (fan_in D for fc1, hidden for fc2). */
void fm_moe_init(const FmMoe *moe, FmParams *params, FmRng *rng);

/* Activations kept by the forward for the backward, sized for up to max_tokens tokens: every
 * buffer the forward and backward use is allocated here, none later. About
 * max_tokens * K * (2 hidden + 2 D) floats for the expert activations (plus max_tokens * K *
 * hidden bytes of dropout mask when cfg->dropout > 0) and max_tokens * (2 hidden + 2 D) floats
 * of backward scratch (3 hidden with dropout). Fails with FM_ERR_CONFIG on a bad cfg, FM_ERR_ARG on max_tokens < 1,
 * FM_ERR_NOMEM (nothing left allocated). */
typedef struct FmMoeCache FmMoeCache;
FmStatus fm_moe_cache_create(FmMoeCache **cache, const FmMoeConfig *cfg, int max_tokens,
                             FmError *err);
/* The same cache, able in addition to run the layer's competition mode (models/moe_compete.h).
 * On top of fm_moe_cache_create's buffers it holds every expert's output on every token
 * (max_tokens * E_r * D floats, E_r = experts per router: E for joint and per-modality routers,
 * E / M for disjoint ones), the inputs again in router order (max_tokens * D), and
 * max_tokens * (3 E_r + K (K + 3) + 2) words of responses, targets, token order and backward
 * scratch: at the default size (D = 128, E = 16, K = 4, 4608 tokens) 41.5 MB more. A cache made by
 * fm_moe_cache_create cannot compete, so normal training does not pay for it. Failures as
 * fm_moe_cache_create. */
FmStatus fm_moe_cache_create_compete(FmMoeCache **cache, const FmMoeConfig *cfg, int max_tokens,
                                     FmError *err);
/* 1 when the cache was made by fm_moe_cache_create_compete. */
int fm_moe_cache_can_compete(const FmMoeCache *cache);
/* NULL is accepted. */
void fm_moe_cache_free(FmMoeCache *cache);

/* out (T, D) = MoE(inp (T, D)). token_modality (T) holds each token's modality in [0, M) (NULL
 * means all 0). T <= the cache's max_tokens (T = 0 is allowed). training != 0 turns on the
 * routing noise (if cfg.noisy) and dropout, drawn from rng; training == 0 is deterministic and
 * rng may be NULL. aux (may be NULL) receives the auxiliary loss values. out must not alias inp.
 * A modality outside [0, M) or T > max_tokens is a programmer error (FM_ASSERT).
 * Randomness: a training forward that needs noise or dropout advances rng by one draw and
 * derives from that state one stream per token for the routing noise and one per (token,
 * expert) for the dropout mask (fm_rng_split), so the numbers a token sees depend only on rng,
 * its index and its experts, never on scheduling (rng may be NULL when neither is on).
 * The cache keeps a copy of inp and of token_modality, so the caller may reuse them before the
 * backward; the parameters must not change in between. */
void fm_moe_forward(const FmMoe *moe, const FmParams *params, FmMoeCache *cache, float *out,
                    const float *inp, const int *token_modality, int T, int training, FmRng *rng,
                    FmMoeAux *aux);

/* Accumulates (+=) into params->grad and dinp (T, D) the gradient of
 *   sum(dout * out) + balance_coef * aux.balance + entropy_coef * aux.entropy
 * for the last forward on this cache. dinp may be NULL (no input gradient). Gradients reach the
 * experts, the gates, the clean logits (centres/weights and inputs), the noise scales (noise
 * weights and inputs) and, through the load estimator, the threshold logits. The last forward
 * must have been fm_moe_forward (after a competition forward use fm_moe_compete_backward). */
void fm_moe_backward(const FmMoe *moe, FmParams *params, FmMoeCache *cache, float *dinp,
                     const float *dout, float balance_coef, float entropy_coef);

/* Tokens routed to each expert by the last forward, per modality: (M, E), row-major. Every token
 * counts once for each of its K experts, so the whole table sums to T * K. */
const int *fm_moe_expert_counts(const FmMoeCache *cache);

/* A read-only view of the routing of the last forward on a cache, for diagnostics and tests.
 * The pointers are into the cache and stay valid until the next forward. E_r is
 * moe->experts_per_router; expert ids in `selected` are global ids in [0, E) (disjoint: router r
 * owns r E_r .. (r + 1) E_r - 1); the other per-expert arrays use the token's router's local ids. */
typedef struct {
    int T, K, E_r, n_routers;
    const int *selected;          /* (T, K) experts of each token, largest noisy logit first */
    const float *gates;           /* (T, K) their gates (each row sums to 1) */
    const float *logits;          /* (T, E_r) clean logits of the token's router */
    const float *noisy_logits;    /* (T, E_r) logits after the noise (== logits without noise) */
    const float *probs;           /* (T, E_r) softmax of the clean logits over all E_r experts */
    const double *importance;     /* (n_routers, E_r) sum of gates per expert */
    const double *load;           /* (n_routers, E_r) smooth load (noisy) or hard count */
    const double *modality_probs; /* (M, E) mean router probabilities per modality, global ids
                                   * (0 rows for modalities absent from the batch) */
    const int *counts;            /* (M, E) as fm_moe_expert_counts */
    int noisy;                    /* 1: the last forward used routing noise */
    int competition;              /* 1: the last forward was a competition forward
                                   * (models/moe_compete.h): selected, gates, importance, load
                                   * and counts then describe the competition's winners and
                                   * weights, logits and probs the router's clean logits */
} FmMoeRouting;
void fm_moe_routing(const FmMoeCache *cache, FmMoeRouting *view);

/* Test hook: fixes the routing noise. eps (T, E_r), each token's standard normal draws over its
 * router's experts, is copied into the cache and used by every following noisy training forward
 * of exactly T tokens instead of drawing from rng; eps NULL returns to drawing. T <= max_tokens. */
void fm_moe_inject_noise(FmMoeCache *cache, const float *eps, int T);

#endif
