/* The arithmetic of the competition mode (models/moe_compete.h has the definitions): neural
 * responses, the router loss and the diversity loss, forward and backward, over plain arrays.
 * Internal to the MoE layer; the diagnostics (models/moe_diagnostics.c) share the cosine. */
#ifndef FM_MOE_COMPETE_LOSS_H
#define FM_MOE_COMPETE_LOSS_H

/* Below this norm a vector's norm is taken as this value in the cosine (as PyTorch's
 * cosine_similarity eps), so the cosine of a zero vector is 0, not NaN. */
#define FM_COMPETE_COS_EPS 1e-8f

/* s = (1/D) sum_d softplus(o[d]) for one expert output o (D). scratch (D) is overwritten. */
float fm_moe_compete_response(const float *o, int D, float *scratch);

/* L_R = (1 / (T Er)) sum_t sum_e (1 + beta [e in S_t]) (p_te - q_te)^2 over p, q (T, Er) and the
 * winners sel (T, K) (local ids); 0 for T = 0. */
double fm_moe_compete_router_loss(const float *p, const float *q, const int *sel, int T, int Er, int K,
                                  float beta);

/* dp (T, Er) = coef dL_R/dp (written, not accumulated), q held constant. */
void fm_moe_compete_router_loss_backward(float *dp, const float *p, const float *q, const int *sel, int T,
                                         int Er, int K, float beta, float coef);

/* cos(a, b) = a . b / (max(|a|, eps) max(|b|, eps)) with eps = FM_COMPETE_COS_EPS, accumulated in
 * double. */
double fm_moe_compete_cosine(const float *a, const float *b, int D);

/* The mean pairwise cosine of one token's K winners o[0..K) (each D floats):
 * (2 / (K (K - 1))) sum_{a < b} cos(o_a, o_b), 0 when K < 2. Keeps what the backward needs:
 * norm (K) the clamped norms max(|o_a|, eps), cosine (K, K) the cosines (diagonal 1). */
double fm_moe_compete_diversity(const float *const *o, int K, int D, float *norm, float *cosine);

/* d_o (D) += scale * d/do_a of sum_{a < b} cos(o_a, o_b), for winner a of a token whose norm and
 * cosine come from fm_moe_compete_diversity:
 *   dcos(a, b)/do_a = o_b / (n_a n_b) - cos(a, b) o_a / n_a^2   (the second term only when
 *   |o_a| > eps, where the clamped norm moves with o_a). */
void fm_moe_compete_diversity_backward(float *d_o, int a, const float *const *o, int K, int D,
                                       const float *norm, const float *cosine, float scale);

#endif
