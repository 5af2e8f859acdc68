/* The MoE router: clean logits, noisy top-k selection and gates, forward and backward, for a
 * batch of T tokens (BRIEF section 3). Internal to the MoE layer (models/moe.c owns the buffers).
 *
 * Each token t goes to router rt->router[t] (one of R), which has Er experts with centres (or,
 * for the softmax gate, weights) w_r (Er, D) and noise weights wn_r (Er, D):
 *   clean logits   Laplace  l_e = -(sqrt(||x - w_e||^2 + FM_MOE_LAPLACE_EPS^2) - FM_MOE_LAPLACE_EPS)
 *                  Gaussian l_e = -||x - w_e||^2
 *                  softmax  l_e = x . w_e
 *   noise scale    s_e = softplus(x . wn_e) + FM_MOE_NOISE_FLOOR
 *   noisy logits   l~_e = l_e + eps_e s_e    (eps_e ~ N(0, 1); l~ = l when the noise is off)
 *   selection      S = the K largest l~ (ties: the lowest index first)
 *   gates          g_e = exp(l~_e) / sum_{j in S} exp(l~_j) for e in S
 *   probabilities  p_e = softmax over all Er experts of the clean logits (for the entropy loss)
 * ||x - w||^2 is summed from the differences, so it is never negative. */
#ifndef FM_MOE_GATE_H
#define FM_MOE_GATE_H

#include "models/moe.h"

#define FM_MOE_NOISE_FLOOR 0.01f

/* The routing of one batch. All arrays are owned by the layer's cache; shapes use the local
 * expert index e in [0, Er) of the token's router; base[r] turns it into the global index
 * (0 for joint and per-modality routers, r * Er for disjoint ones). */
typedef struct {
    int T, Er, K, R;
    int base[FM_MOE_MAX_MODALITIES];
    const int *router; /* (T) router of each token */
    float *logit;      /* (T, Er) clean logits l */
    float *noise_pre;  /* (T, Er) x . wn_e (noisy only) */
    float *noise_std;  /* (T, Er) s_e (noisy only) */
    float *eps;        /* (T, Er) N(0, 1) draws, filled by the caller (noisy only) */
    float *noisy;      /* (T, Er) l~ (a copy of l when the noise is off) */
    float *prob;       /* (T, Er) p */
    int *sel;          /* (T, K) local ids of S, largest noisy logit first */
    int *kth;          /* (T, 2) local ids of the K-th and (K+1)-th largest l~ (-1: none) */
    float *sel_logit;  /* (T, K) l~ of the selected experts */
    float *gate;       /* (T, K) gates, in the order of sel */
} FmMoeRoutes;

/* Gradient buffers of the routing, zeroed by the caller before the backward. The experts'
 * backward fills dgate and the auxiliary losses add to dgate, dnoisy, dlogit and dstd;
 * fm_moe_gate_backward then consumes all of them. dsel and dprob are scratch. */
typedef struct {
    float *dgate;  /* (T, K) */
    float *dsel;   /* (T, K) scratch */
    float *dnoisy; /* (T, Er) */
    float *dlogit; /* (T, Er) */
    float *dstd;   /* (T, Er) */
    float *dpre;   /* (T, Er) scratch */
    float *coef;   /* (T, Er) scratch */
} FmMoeRouteGrads;

/* Clean logits of one token x (D) against w (Er, D): logit (Er). */
void fm_moe_gate_logits(float *logit, const float *x, const float *w, int Er, int D, FmGate gate);

/* sel (K) = the local ids of the K largest values of noisy (Er), largest first, ties to the
 * lowest index; kth (2) = the ids at ranks K and K + 1 (1-based; -1 when Er < K + 1). */
void fm_moe_gate_select(int *sel, int *kth, const float *noisy, int Er, int K);

/* Fills every routing array of rt from x (T, D) and the routers' tensors w[r], wn[r] (Er, D).
 * With noisy != 0 the caller has filled rt->eps; otherwise l~ = l and the noise arrays are not
 * touched. scratch (T, Er) is overwritten. */
void fm_moe_gate_forward(FmMoeRoutes *rt, const float *x, const float *const *w, const float *const *wn,
                         int D, FmGate gate, int noisy, float *scratch);

/* Finishes the routing backward: turns g->dgate into gradients of the noisy logits, adds
 * g->dnoisy, splits them into clean-logit and noise-scale gradients (l~ = l + eps s), and
 * accumulates (+=) dx (T, D), dw[r] and dwn[r] (Er, D). dx and any dw[r]/dwn[r] may be NULL.
 * The buffers of g are used as scratch and left changed. */
void fm_moe_gate_backward(const FmMoeRoutes *rt, FmMoeRouteGrads *g, float *dx, float *const *dw,
                          float *const *dwn, const float *x, const float *const *w, const float *const *wn,
                          int D, FmGate gate, int noisy);

#endif
