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

#endif
