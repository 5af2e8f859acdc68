/* Expert diagnostics of an evaluation (BRIEF section 5: collapse shows as low utilisation
 * entropy, dead experts and experts whose outputs look alike): per fusion layer and token
 * modality, the mean over the probed tokens of
 *   similarity  the mean pairwise cosine of the outputs of every expert of the token's router
 *               on the token (in [-1, 1]; near 1: the experts compute the same function)
 *   agreement   |router top K intersect competition top K| / K (in [0, 1]; the router's top K
 *               by clean logit, as inference routes, against the K largest neural responses of
 *               CompeteSMoE)
 * as models/moe_diagnostics.h defines them, whatever the training mode; and, with the token
 * counts of an FmExpertUsage (src/evaluate_usage.h), the "experts" object of metrics.json.
 *
 * The probe follows an evaluation forward (no dropout, no noise): it takes the tokens that
 * entered each layer's MoE (fm_model_moe_input) and runs the layer in competition mode at
 * evaluation on them in a MoE cache of its own, `chunk` tokens at a time. So the model's
 * workspace stays an ordinary one (ordinary training does not carry the competition buffers
 * of a whole batch: the probe needs those of `chunk` tokens only), the workspace's last forward
 * is left as it was, and the result depends only on the model, the stays and their batches
 * (the same every run). */
#ifndef FM_EVALUATE_EXPERTS_H
#define FM_EVALUATE_EXPERTS_H

#include <cJSON.h>

#include "models/model.h"
#include "models/moe_diagnostics.h"
#include "src/error.h"
#include "src/evaluate_usage.h"

/* Tokens probed at a time by default: the competition cache then holds about 5 MB at the
 * default model size (E = 16, D = 128, hidden 512), against 41.5 MB for a batch of 32 stays. */
#define FM_EVALUATE_EXPERTS_CHUNK 512

typedef struct {
    int layers, M, D;
    int chunk;            /* tokens per competition forward */
    FmMoeCache *cache;    /* competition-capable, `chunk` tokens; every fusion layer's MoE has
                             the same configuration, so the layers share it */
    float *out;           /* (chunk, D) scratch for the competition output */
    FmMoeProbeSums *sums; /* (layers) sums over the probed tokens by modality */
} FmExpertProbe;

/* Creates a probe for `model` that runs `chunk` (>= 1) tokens at a time, with empty sums.
 * On failure *p is zeroed and nothing is leaked. */
FmStatus fm_evaluate_experts_create(FmExpertProbe *p, const FmModel *model, int chunk, FmError *err);

/* Frees it; NULL and zeroed records are accepted. */
void fm_evaluate_experts_free(FmExpertProbe *p);

/* Empties the sums. */
void fm_evaluate_experts_clear(FmExpertProbe *p);

/* Probes every layer on the tokens of the last forward on `ws` (which must have been an
 * evaluation forward of `model`, the model the probe was created for) and adds them to the
 * sums. Changes nothing in `ws`. Allocates nothing. */
void fm_evaluate_experts_add(FmExpertProbe *p, const FmModel *model, const FmModelWorkspace *ws);

/* Mean similarity / agreement of layer `layer` over the probed tokens of modality `m` (-1: all
 * modalities); NaN when no token was probed (similarity: also when the router has one expert). */
double fm_evaluate_experts_similarity(const FmExpertProbe *p, int layer, int m);
double fm_evaluate_experts_agreement(const FmExpertProbe *p, int layer, int m);

/* The sums as layers * M * 4 doubles (similarity, its tokens, agreement, tokens; counts are
 * exact below 2^53), and back: for adding the sums of several processes. */
size_t fm_evaluate_experts_n_values(const FmExpertProbe *p);
void fm_evaluate_experts_get_values(const FmExpertProbe *p, double *v);
void fm_evaluate_experts_set_values(FmExpertProbe *p, const double *v);

/* Adds to `root` the object "experts":
 *   "layers": [ per fusion layer {"entropy", "dead", "similarity", "agreement"} ],
 *   "entropy", "dead", "similarity", "agreement": the means over the layers (of those where
 *   the value is defined; null when none is)
 * entropy and dead from the token counts `u` over all modalities (fm_evaluate_usage_entropy,
 * fm_evaluate_usage_dead: per layer an integer count; its mean over layers need not be),
 * similarity and agreement from `p` over all modalities. FM_ERR_NOMEM leaves `root` without
 * the object. */
FmStatus fm_evaluate_experts_report(cJSON *root, const FmExpertUsage *u, const FmExpertProbe *p,
                                    FmError *err);

#endif
