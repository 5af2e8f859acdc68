/* The order in which a training epoch visits the training stays, its micro-batches (batches
 * of train.batch_size stays, the unit of a forward and backward pass), and which data-parallel
 * rank computes each micro-batch.
 *
 * Shards (train.shards = S). The n training stays, in the order the run lists them (cohort
 * order), are cut into S contiguous shards of n/S stays (sizes differ by at most one). Epoch
 * e shuffles each shard on its own stream (with S = 1, the one shuffle of all stays with the
 * epoch's stream itself), cuts each shard into micro-batches of B stays (its last one may be
 * smaller), and interleaves the shards round-robin: micro-batch 0 of shards 0, 1, ..., S-1,
 * then micro-batch 1 of each shard that has one, and so on. The micro-batch sequence depends
 * only on (n, B, S, the seed), never on the number of ranks, so 1 and N processes train on the
 * same micro-batches.
 *
 * Ranks. With N ranks and N dividing S, micro-batch j is computed by rank (shard of j) mod N:
 * a rank only ever reads the stays of its S/N shards (and can load only those). Otherwise by
 * rank j mod N, and every rank needs every training stay. With train.accumulation a multiple
 * of N, each optimiser step gives every rank the same number of micro-batches (all but the
 * epoch's last round). */
#ifndef FM_TRAIN_ORDER_H
#define FM_TRAIN_ORDER_H

#include <stddef.h>
#include <stdint.h>

#include "src/error.h"
#include "src/rng.h"

typedef struct {
    int64_t n;          /* training stays */
    int B;              /* stays per micro-batch */
    int S;              /* shards */
    int64_t *shard_lo;  /* (S + 1) first position of each shard; shard_lo[S] = n */
    size_t *perm;       /* (n) this epoch's order: positions 0..n-1 in the training list */
    long n_batches;     /* micro-batches per epoch */
    int64_t *batch_start; /* (n_batches) first entry of perm */
    int *batch_size;      /* (n_batches) stays */
    int *batch_shard;     /* (n_batches) shard */
} FmTrainOrder;

/* Builds the micro-batch layout of n >= 1 stays, B >= 1 per micro-batch, 1 <= S <= n shards.
 * perm is the identity until fm_train_order_shuffle. FM_ERR_NOMEM (nothing left allocated). */
FmStatus fm_train_order_init(FmTrainOrder *o, int64_t n, int B, int S, FmError *err);

/* NULL and zeroed orders are accepted. */
void fm_train_order_free(FmTrainOrder *o);

/* This epoch's order from the epoch's stream (not advanced: it is copied). */
void fm_train_order_shuffle(FmTrainOrder *o, const FmRng *epoch_stream);

/* The rank (of `size`) that computes micro-batch j. */
int fm_train_order_owner(const FmTrainOrder *o, long j, int size);

/* 1 when rank `rank` of `size` reads only some shards (size divides S, size > 1). */
int fm_train_order_sharded(const FmTrainOrder *o, int size);

/* Marks in want[0..n) the training positions rank `rank` of `size` may read in any epoch
 * (sets 1, never clears). */
void fm_train_order_mark(const FmTrainOrder *o, int rank, int size, uint8_t *want);

#endif
