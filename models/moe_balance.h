/* The MoE layer's auxiliary losses, forward and backward, over the routing of one batch
 * (BRIEF section 3). Internal to the MoE layer (models/moe.c owns the buffers).
 *
 * Load balance (Shazeer et al. 2017, "Outrageously large neural networks", section 4 and
 * appendix A), per router r over the tokens it routes, summed over routers:
 *   importance_e = sum_t g_{t,e}                       (g = 0 for experts outside S)
 *   load_e       = sum_t P(e in top-k)                  with the noise:
 *                  P = Phi((l_e - thr_e) / s_e), thr_e = the K-th largest noisy logit among the
 *                  other experts (the (K+1)-th overall if e is in S, else the K-th), i.e. the
 *                  probability that a fresh draw of e's noise alone keeps e in the top K.
 *                  Without noise (evaluation, or cfg.noisy == 0) the estimator is undefined
 *                  (s = 0), so load_e is the hard count of tokens with e in S, which has no
 *                  gradient: only the importance term trains the router then.
 *   L_bal        = CV^2(importance) + CV^2(load),   CV^2(v) = Var(v) / (mean(v)^2 + 1e-10)
 *   with Var the population variance (divide by Er). The gradient flows through the gates, the
 *   clean logits, the noise scales and the threshold logit. A router with no tokens adds 0.
 *
 * Entropy regulariser (FuseMoE, Han et al. 2024, Eq. 3): with p_t the softmax of token t's
 * clean logits over all experts of its router (disjoint routers: embedded in the global expert
 * index, 0 outside the router's own experts) and p^_m the mean of p_t over modality m's tokens,
 *   E = (1/M') sum_m H(p^_m) - H((1/M') sum_m p^_m),   H(p) = -sum_i p_i log p_i (0 log 0 = 0),
 * where the sums run over the M' modalities that have at least one token in the batch (an
 * absent modality has no distribution to be confident about). E = 0 when M' <= 1. */
#ifndef FM_MOE_BALANCE_H
#define FM_MOE_BALANCE_H

#include "models/moe_gate.h"

/* State of the auxiliary losses of one batch; arrays owned by the layer's cache. */
typedef struct {
    double *importance; /* (R, Er) */
    double *load;       /* (R, Er) */
    float *p_in;        /* (T, Er) P(e in top-k) (noisy only) */
    double *mod_prob;   /* (M, E) p^_m over global expert ids; rows of absent modalities are 0 */
    int *mod_tokens;    /* (M) tokens per modality */
    float *dprob;       /* (T, Er) scratch of the entropy backward */
} FmMoeAuxState;

/* CV^2(v) = Var(v) / (mean(v)^2 + 1e-10) of v (n), population variance. */
double fm_moe_cv_squared(const double *v, int n);

/* dv (n) += dloss * dCV^2/dv. */
void fm_moe_cv_squared_backward(double *dv, const double *v, int n, double dloss);

/* Fills a->importance, a->load (and a->p_in when noisy) and returns L_bal. */
double fm_moe_balance_forward(FmMoeAuxState *a, const FmMoeRoutes *rt, int noisy);

/* Adds coef * dL_bal to g->dgate, and when noisy to g->dlogit, g->dnoisy and g->dstd. */
void fm_moe_balance_backward(const FmMoeAuxState *a, const FmMoeRoutes *rt, FmMoeRouteGrads *g, int noisy,
                             float coef);

/* Fills a->mod_prob and a->mod_tokens from rt->prob and each token's modality (T) in [0, M),
 * with E global experts, and returns the entropy regulariser. */
double fm_moe_entropy_forward(FmMoeAuxState *a, const FmMoeRoutes *rt, const int *modality, int M, int E);

/* Adds coef * dE/dl to g->dlogit (through the softmax of the clean logits). */
void fm_moe_entropy_backward(FmMoeAuxState *a, const FmMoeRoutes *rt, FmMoeRouteGrads *g, const int *modality,
                             int M, int E, float coef);

#endif
