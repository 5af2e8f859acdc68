/* The competition mode of the MoE layer: CompeteSMoE (Pham, Ho et al. 2024, "CompeteSMoE:
 * effective training of sparse mixture of experts via competition", arXiv 2402.02526; BRIEF
 * section 5).
 *
 * On a competition step every expert of a token's router (the E shared experts for joint and
 * per-modality routers, the modality's E / M experts for disjoint ones) runs on the token, and
 * each scores its own neural response
 *   s_e = (1/D) sum_d softplus(o_e[d]),   o_e = FFN_e(x)   (s_e > 0).
 * The K largest s win (ties: the lowest expert id), S; their weights are w_e = s_e / sum_{j in S}
 * s_j and the output is y = sum_{e in S} w_e o_e. Gradients reach the winners through o_e and
 * through w (which depends on their outputs through s). Three losses are computed (returned
 * unweighted, their coefficients are given to the backward):
 *
 *   router   L_R = (1 / (T E_r)) sum_t sum_{e < E_r} (1 + beta [e in S_t]) (p_te - q_te)^2,
 *            p_t = softmax over the router's E_r experts of its clean logits (no noise),
 *            q_t = softmax over the same experts of s_t, held constant (stop-gradient): the
 *            router learns to predict the competition and nothing flows into the experts.
 *            beta (winner_weight, >= 0) puts extra weight on the winners; beta = 0 (the
 *            default) is the plain mean squared error over tokens and experts.
 *   diversity L_div = (1/T) sum_t (2 / (K (K - 1))) sum_{a < b in S_t} cos(o_a, o_b),
 *            cos(a, b) = a . b / (max(|a|, 1e-8) max(|b|, 1e-8)); 0 when K = 1. Minimising it
 *            pushes a token's winners apart.
 *   balance  per router r over its tokens, summed over routers:
 *            CV^2(importance_r) + CV^2(load_r), importance_{r,e} = sum_t w_te (0 for losers),
 *            load_{r,e} = the number of its tokens that e wins (a count, no gradient), with
 *            CV^2 as the routed layer's balance loss (population variance over E_r,
 *            Var / (mean^2 + 1e-10)); a router without tokens adds 0. Its gradient flows
 *            through the winners' weights into their responses.
 *
 * The routed layer's own auxiliary losses (noisy load balance and the entropy regulariser)
 * belong to normal steps and are not part of a competition step. The router runs without noise
 * (its logits are only a prediction here). Inference never competes. */
#ifndef FM_MOE_COMPETE_H
#define FM_MOE_COMPETE_H

#include "models/moe.h"

/* The brief's default for each of the three coefficients. */
#define FM_COMPETE_COEF_DEFAULT 0.01f

/* What a training step needs to run a layer in competition mode: the losses' coefficients
 * (config keys [competition] router_coef, diversity_coef, balance_coef) and beta of L_R. */
typedef struct {
    float router_coef, diversity_coef, balance_coef; /* each FM_COMPETE_COEF_DEFAULT by default */
    float winner_weight;                             /* beta, 0 by default */
} FmCompeteSettings;

/* The defaults above. */
FmCompeteSettings fm_compete_settings_default(void);

/* Values of the competition losses from the last competition forward (unweighted). */
typedef struct {
    float router;    /* L_R */
    float diversity; /* L_div */
    float balance;   /* competition balance, summed over routers */
} FmCompeteAux;

/* out (T, D) = the competition output for inp (T, D), on a cache made by
 * fm_moe_cache_create_compete (FM_ASSERT otherwise). token_modality, T, out/inp aliasing and
 * the cache's copies are as for fm_moe_forward. training != 0 applies the experts' dropout
 * (cfg.dropout), drawn like fm_moe_forward's: one draw from rng, then one stream per (token,
 * expert), so a pair sees the same mask in both modes for the same rng state. No routing noise
 * is drawn, so without dropout rng is not used (and may be NULL); training == 0 is
 * deterministic (diagnostics on probe tokens). winner_weight is beta of L_R
 * (>= 0). aux (may be NULL) receives the three losses.
 * Work: each expert runs as two GEMMs over all the tokens of its router (T rows for joint and
 * per-modality routers), that is E_r / K times the routed layer's expert work; the winners'
 * outputs are taken from those GEMMs, not recomputed. Allocates nothing. */
void fm_moe_compete_forward(const FmMoe *moe, const FmParams *params, FmMoeCache *cache, float *out,
                            const float *inp, const int *token_modality, int T, int training, FmRng *rng,
                            float winner_weight, FmCompeteAux *aux);

/* Accumulates (+=) into params->grad and dinp (T, D) (may be NULL) the gradient of
 *   sum(dout * out) + router_coef L_R + diversity_coef L_div + balance_coef balance
 * for the last forward on this cache, which must have been fm_moe_compete_forward. The experts
 * get gradients on the winning (token, expert) pairs only; the router's centres/weights get
 * gradients from L_R only (the noise weights get none). The winners' hidden activations are
 * recomputed here (one fc1 GEMM over T K rows, K / (2 E_r) of the forward's expert GEMM work)
 * rather than kept for every expert, which would take T E_r hidden floats twice. Allocates
 * nothing. */
void fm_moe_compete_backward(const FmMoe *moe, FmParams *params, FmMoeCache *cache, float *dinp,
                             const float *dout, float router_coef, float diversity_coef, float balance_coef);

/* A read-only view of the last competition forward, for diagnostics and tests; pointers into the
 * cache, valid until the next forward. Ids are local to the token's router (global id =
 * local + r E_r for disjoint routers, = local otherwise). */
typedef struct {
    int T, K, E_r;
    const float *response;      /* (T, E_r) s */
    const float *target;        /* (T, E_r) q = softmax(s) */
    const float *router_probs;  /* (T, E_r) p, the router's softmax of its clean logits */
    const float *router_logits; /* (T, E_r) its clean logits */
    const int *winners;         /* (T, K) local ids of S, largest s first */
    const float *weights;       /* (T, K) w, each row sums to 1 */
    const int *router;          /* (T) each token's router */
} FmCompeteView;

/* Fills *view from the last forward, which must have been a competition forward (FM_ASSERT). */
void fm_moe_compete_view(const FmMoeCache *cache, FmCompeteView *view);

/* The output of local expert j of token t's router on token t in the last competition forward:
 * a pointer to D floats in the cache (every expert ran on every token of its router). */
const float *fm_moe_compete_expert_output(const FmMoeCache *cache, int t, int j);

#endif
