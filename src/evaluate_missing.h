/* Missing-modality injection at evaluation: how a model copes when modalities are absent.
 *
 * Each modality that a stay has (present = 1) is dropped (present set to 0) with probability
 * p, independently; if that would drop every modality the stay has, one of them, drawn
 * uniformly, is kept, so every stay keeps at least one modality (with p = 1 exactly one). A
 * stay that has no modality to begin with is left alone. Only the presence flags change: the
 * model never reads an absent modality's values, so nothing else needs to.
 *
 * The draws of a stay come from the random stream of its stay id (fm_rng_split of the
 * seed's injection stream), one uniform per modality in the batch's order whether or not the
 * stay has it: the same seed drops the same modalities of the same stay whatever the batch,
 * its order or the other stays. */
#ifndef FM_EVALUATE_MISSING_H
#define FM_EVALUATE_MISSING_H

#include <stdint.h>

#include "preprocessing/batch.h"

/* Applies the injection with probability p (in [0, 1]; 0 changes nothing) and seed `seed` to
 * every stay of `batch`; returns the number of modalities dropped. */
int64_t fm_evaluate_drop_modalities(FmBatch *batch, double p, uint64_t seed);

#endif
