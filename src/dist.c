/* Communication between ranks (src/dist.h). */
#include "src/dist.h"

#include <string.h>
#include <time.h>

#include "src/alloc.h"

/* Byte counts of a gather live on the stack up to this many ranks. */
#define FM_DIST_MAX_RANKS_ON_STACK 64

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int fm_dist_rank(const FmDist *d) { return d ? d->rank : 0; }

int fm_dist_size(const FmDist *d) { return d ? d->size : 1; }

int fm_dist_is_writer(const FmDist *d) { return fm_dist_rank(d) == 0; }

void fm_dist_sum_floats(FmDist *d, float *x, size_t n) {
    if (!d || d->size == 1) return;
    double t0 = now_s();
    d->ops->sum_floats(d->ctx, x, n);
    d->sum_seconds += now_s() - t0;
    d->sum_calls++;
}

void fm_dist_sum_doubles(FmDist *d, double *x, size_t n) {
    if (d && d->size > 1) d->ops->sum_doubles(d->ctx, x, n);
}

int fm_dist_max_int(FmDist *d, int x) {
    if (d && d->size > 1) d->ops->max_ints(d->ctx, &x, 1);
    return x;
}

void fm_dist_broadcast(FmDist *d, void *buf, size_t bytes) {
    if (d && d->size > 1) d->ops->broadcast(d->ctx, buf, bytes, 0);
}

void fm_dist_gather_items(FmDist *d, void *all, size_t size, const int64_t *counts) {
    if (!d || d->size == 1) return;
    size_t bytes[FM_DIST_MAX_RANKS_ON_STACK] = {0}, *cnt = bytes;
    if (d->size > FM_DIST_MAX_RANKS_ON_STACK) {
        cnt = fm_malloc_array((size_t)d->size, sizeof *cnt);
        FM_ASSERT(cnt != NULL); /* a few bytes per rank */
    }
    size_t offset = 0;
    for (int r = 0; r < d->size; r++) {
        cnt[r] = (size_t)counts[r] * size;
        if (r < d->rank) offset += cnt[r];
    }
    d->ops->gather(d->ctx, (const char *)all + offset, all, cnt);
    if (cnt != bytes) fm_free(cnt);
}

FmStatus fm_dist_agree(FmDist *d, FmStatus st, FmError *err) {
    if (!d || d->size == 1) return st;
    /* size - (lowest failing rank), or 0 when every rank is fine */
    int first = fm_dist_max_int(d, st != FM_OK ? d->size - d->rank : 0);
    if (first == 0) return FM_OK;
    const int root = d->size - first;
    FmError e;
    memset(&e, 0, sizeof e);
    if (d->rank == root) {
        if (err) e = *err;
        e.code = st;
    }
    d->ops->broadcast(d->ctx, &e, sizeof e, root);
    if (d->rank != root) {
        e.src_file = NULL; /* a pointer into the other process */
        if (err) {
            *err = e;
            fm_error_prefix(err, "rank %d", root);
        }
    }
    return e.code;
}

void fm_dist_block_range(int64_t n, int64_t block, int rank, int size, int64_t *begin, int64_t *end) {
    FM_ASSERT(block >= 1 && size >= 1 && rank >= 0 && rank < size && n >= 0);
    const int64_t blocks = (n + block - 1) / block;
    int64_t b0 = blocks * rank / size, b1 = blocks * (rank + 1) / size;
    *begin = b0 * block < n ? b0 * block : n;
    *end = b1 * block < n ? b1 * block : n;
}
