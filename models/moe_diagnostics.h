/* Diagnostics of expert collapse in a MoE layer (BRIEF section 5): collapse shows as low
 * expert-utilisation entropy, dead experts and experts whose outputs look alike; a router that
 * has learnt from the competition agrees with it.
 *
 *   utilisation entropy  H(c / sum c) / log E over the E experts' token counts c (natural log,
 *                        0 log 0 = 0): 1 when every expert gets the same number of tokens, 0 when
 *                        one expert gets them all; 1 for E = 1; NaN (not measured) for no tokens.
 *   dead experts         the number of experts with count 0.
 *   output similarity    on a probe batch, every expert of a token's router runs on the token;
 *                        the mean over tokens of the mean pairwise cosine of those E_r outputs
 *                        (cosine as the competition's diversity loss, models/moe_compete.h).
 *                        Near 1: the experts compute the same function.
 *   agreement            on a probe batch, the mean over tokens of |R_t intersect S_t| / K, R_t the
 *                        router's top K by clean logit (what it routes to at inference), S_t the
 *                        competition's top K by response. 1: the router predicts the competition.
 * Counts come from fm_moe_expert_counts; a pass's counts are accumulated in an FmMoeUsage. */
#ifndef FM_MOE_DIAGNOSTICS_H
#define FM_MOE_DIAGNOSTICS_H

#include "models/moe.h"

/* Token counts per expert over a pass (an epoch, an evaluation), summed over modalities. */
typedef struct {
    int E;
    long long counts[FM_MOE_MAX_EXPERTS];
} FmMoeUsage;

/* Empties *u for a layer of E experts (1 .. FM_MOE_MAX_EXPERTS). */
void fm_moe_usage_reset(FmMoeUsage *u, int E);

/* Adds the counts of the last forward of layer `moe` on `cache` (fm_moe_expert_counts, summed
 * over the modalities) to *u, which must have been reset for moe's E. */
void fm_moe_usage_add(FmMoeUsage *u, const FmMoe *moe, const FmMoeCache *cache);

/* H(c / sum c) / log E, see above. */
double fm_moe_diag_utilisation_entropy(const long long *counts, int E);

/* The number of counts equal to 0. */
int fm_moe_diag_dead_experts(const long long *counts, int E);

/* The mean of cos(rows[a], rows[b]) over the n (n - 1) / 2 pairs a < b of n vectors of D floats;
 * NaN for n < 2. */
double fm_moe_diag_mean_pairwise_cosine(const float *const *rows, int n, int D);

/* The mean over T tokens of |a_t intersect b_t| / K for two id lists a, b (T, K) (ids within a row
 * distinct); NaN for T = 0. */
double fm_moe_diag_topk_agreement(const int *a, const int *b, int T, int K);

/* Output similarity and agreement of a layer on a probe batch. */
typedef struct {
    double similarity; /* mean pairwise cosine of the experts' outputs (NaN when E_r = 1 or T = 0) */
    double agreement;  /* router / competition top-K agreement (NaN when T = 0) */
} FmMoeProbe;

/* Sums of the per-token probe values by token modality, for averaging over many tokens (several
 * batches, or a batch probed in chunks): a token's similarity is the mean pairwise cosine of
 * its router's E_r expert outputs (counted only when E_r > 1), its agreement |R_t intersect
 * S_t| / K. Means: similarity[m] / similarity_tokens[m], agreement[m] / tokens[m]. */
typedef struct {
    double similarity[FM_MOE_MAX_MODALITIES];
    double agreement[FM_MOE_MAX_MODALITIES];
    long long similarity_tokens[FM_MOE_MAX_MODALITIES];
    long long tokens[FM_MOE_MAX_MODALITIES];
} FmMoeProbeSums;

/* As fm_moe_diag_probe (same arguments, cache and side effects), but adds each token's values
 * to sums (by its modality, 0 when modality is NULL) instead of averaging. Tokens are added in
 * order, so the sums depend only on the tokens and how the caller cuts them into calls.
 * Allocates nothing. */
void fm_moe_diag_probe_add(const FmMoe *moe, const FmParams *params, FmMoeCache *cache, float *out,
                           const float *x, const int *modality, int T, FmMoeProbeSums *sums);

/* Runs the layer's competition forward at evaluation (no dropout, no noise) on the probe tokens
 * x (T, D) with their modalities (NULL: all 0) and fills *probe. cache must come from
 * fm_moe_cache_create_compete with room for T tokens; its last forward is replaced, so do not
 * call this between a training forward and its backward. out (T, D) is scratch. The router's
 * top K is taken from its clean logits, as the evaluation forward routes. Allocates nothing. */
void fm_moe_diag_probe(const FmMoe *moe, const FmParams *params, FmMoeCache *cache, float *out,
                       const float *x, const int *modality, int T, FmMoeProbe *probe);

#endif
