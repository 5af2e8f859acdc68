/* Expert utilisation: how many tokens each expert of each MoE layer received, per modality,
 * summed over the forwards of an evaluation (from fm_model_expert_counts).
 *
 * Summaries per layer (over all modalities, or one):
 *   share      count / the layer's (or modality's) total, per expert
 *   entropy    normalised entropy of the shares, H / ln(E_avail) in [0, 1], E_avail the
 *              experts the tokens could reach (E; with disjoint routers a modality reaches
 *              only its own E/M): 1 = every expert used equally, 0 = one expert takes all
 *   dead       experts that received no token (of those reachable) */
#ifndef FM_EVALUATE_USAGE_H
#define FM_EVALUATE_USAGE_H

#include <stdint.h>

#include "models/model.h"
#include "src/error.h"

typedef struct {
    int layers, M, E;
    int disjoint;    /* 1: modality m reaches only experts [m E/M, (m+1) E/M) */
    int64_t *count;  /* (layers, M, E) tokens routed */
} FmExpertUsage;

/* Allocates zeroed counts for `model`. On failure *u is zeroed. */
FmStatus fm_evaluate_usage_create(FmExpertUsage *u, const FmModel *model, FmError *err);

/* Frees the counts; NULL and zeroed records are accepted. */
void fm_evaluate_usage_free(FmExpertUsage *u);

/* Sets every count to 0. */
void fm_evaluate_usage_clear(FmExpertUsage *u);

/* Adds the counts of the last forward on `ws`. */
void fm_evaluate_usage_add(FmExpertUsage *u, const FmModelWorkspace *ws);

/* Normalised entropy of layer `layer`'s shares for modality `m` (-1: all modalities pooled);
 * NaN when no token was routed. */
double fm_evaluate_usage_entropy(const FmExpertUsage *u, int layer, int m);

/* Experts of layer `layer` reachable by modality `m` (-1: any) that received none of its
 * tokens (-1: pooled over modalities). */
int fm_evaluate_usage_dead(const FmExpertUsage *u, int layer, int m);

/* Share of modality m's tokens (-1: all) that layer `layer` sent to expert e (NaN when no
 * token); experts a disjoint modality cannot reach are NaN. */
double fm_evaluate_usage_share(const FmExpertUsage *u, int layer, int m, int e);

#endif
