/* Epoch order, micro-batches and their ranks (src/train_order.h). */
#include "src/train_order.h"

#include <string.h>

#include "src/alloc.h"

void fm_train_order_free(FmTrainOrder *o) {
    if (!o) return;
    fm_free(o->shard_lo);
    fm_free(o->perm);
    fm_free(o->batch_start);
    fm_free(o->batch_size);
    fm_free(o->batch_shard);
    memset(o, 0, sizeof *o);
}

FmStatus fm_train_order_init(FmTrainOrder *o, int64_t n, int B, int S, FmError *err) {
    memset(o, 0, sizeof *o);
    FM_ASSERT(n >= 1 && B >= 1 && S >= 1 && S <= n);
    o->n = n;
    o->B = B;
    o->S = S;
    o->shard_lo = fm_malloc_array((size_t)S + 1, sizeof *o->shard_lo);
    o->perm = fm_malloc_array((size_t)n, sizeof *o->perm);
    if (!o->shard_lo || !o->perm) goto nomem;
    long total = 0, rounds = 0;
    for (int k = 0; k <= S; k++) o->shard_lo[k] = n / S * k + (k < n % S ? k : n % S);
    for (int k = 0; k < S; k++) {
        long b = (long)((o->shard_lo[k + 1] - o->shard_lo[k] + B - 1) / B);
        total += b;
        if (b > rounds) rounds = b;
    }
    o->n_batches = total;
    o->batch_start = fm_malloc_array((size_t)total, sizeof *o->batch_start);
    o->batch_size = fm_malloc_array((size_t)total, sizeof *o->batch_size);
    o->batch_shard = fm_malloc_array((size_t)total, sizeof *o->batch_shard);
    if (!o->batch_start || !o->batch_size || !o->batch_shard) goto nomem;
    long j = 0;
    for (long i = 0; i < rounds; i++)
        for (int k = 0; k < S; k++) {
            int64_t start = o->shard_lo[k] + (int64_t)i * B, end = o->shard_lo[k + 1];
            if (start >= end) continue;
            o->batch_start[j] = start;
            o->batch_size[j] = (int)(end - start < B ? end - start : B);
            o->batch_shard[j] = k;
            j++;
        }
    FM_ASSERT(j == total);
    for (int64_t i = 0; i < n; i++) o->perm[i] = (size_t)i;
    return FM_OK;
nomem:
    fm_train_order_free(o);
    return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory for the epoch order of %lld stays", (long long)n);
}

void fm_train_order_shuffle(FmTrainOrder *o, const FmRng *epoch_stream) {
    for (int64_t i = 0; i < o->n; i++) o->perm[i] = (size_t)i;
    if (o->S == 1) {
        FmRng r = *epoch_stream;
        fm_rng_shuffle(&r, o->perm, (size_t)o->n);
        return;
    }
    for (int k = 0; k < o->S; k++) {
        FmRng r = fm_rng_split(epoch_stream, (uint64_t)k);
        fm_rng_shuffle(&r, o->perm + o->shard_lo[k], (size_t)(o->shard_lo[k + 1] - o->shard_lo[k]));
    }
}

int fm_train_order_sharded(const FmTrainOrder *o, int size) { return size > 1 && o->S % size == 0; }

int fm_train_order_owner(const FmTrainOrder *o, long j, int size) {
    FM_ASSERT(j >= 0 && j < o->n_batches && size >= 1);
    return fm_train_order_sharded(o, size) ? o->batch_shard[j] % size : (int)(j % size);
}

void fm_train_order_mark(const FmTrainOrder *o, int rank, int size, uint8_t *want) {
    for (int k = 0; k < o->S; k++) {
        if (fm_train_order_sharded(o, size) && k % size != rank) continue;
        for (int64_t i = o->shard_lo[k]; i < o->shard_lo[k + 1]; i++) want[i] = 1;
    }
}
