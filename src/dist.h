/* Communication between the processes ("ranks") of one data-parallel job.
 *
 * The library never calls MPI itself: it talks to an FmDist, a small table of collective
 * operations that the MPI build fills over MPI_COMM_WORLD (src/mpi/dist_mpi.h). A NULL FmDist
 * is one process, and every function below then does what one process would (nothing, or a
 * copy), so the trainer has one code path.
 *
 * Every function is collective: all ranks call it, in the same order, with the same sizes.
 * A communication failure is not returned: MPI's default error handler ends the whole job (the
 * last checkpoint written stands).
 *
 * Determinism. fm_dist_sum_floats and fm_dist_sum_doubles add the ranks' values in an order
 * that depends only on the number of ranks, never on timing, and every rank receives the same
 * bits (see src/mpi/dist_mpi.h for the orders). Results of a job therefore repeat exactly for
 * the same number of ranks. */
#ifndef FM_DIST_H
#define FM_DIST_H

#include <stddef.h>
#include <stdint.h>

#include "src/error.h"

/* The operations an implementation provides; `ctx` is its own state. */
typedef struct {
    /* x[0..n) <- sum over ranks, in a fixed order, identical bits on every rank. */
    void (*sum_floats)(void *ctx, float *x, size_t n);
    void (*sum_doubles)(void *ctx, double *x, size_t n);
    /* x[0..n) <- maximum over ranks. */
    void (*max_ints)(void *ctx, int *x, size_t n);
    /* buf (bytes) <- rank `root`'s buf. */
    void (*broadcast)(void *ctx, void *buf, size_t bytes, int root);
    /* all <- the ranks' blocks in rank order; rank r contributes counts[r] bytes (`mine`). */
    void (*gather)(void *ctx, const void *mine, void *all, const size_t *counts);
} FmDistOps;

typedef struct {
    int rank, size;
    const FmDistOps *ops;
    void *ctx;
    /* Time spent in fm_dist_sum_floats and how many calls (for timing.json and benchmarks). */
    double sum_seconds;
    long sum_calls;
} FmDist;

/* This process's rank (0 for NULL) and the number of ranks (1 for NULL). */
int fm_dist_rank(const FmDist *d);
int fm_dist_size(const FmDist *d);

/* 1 on the rank that writes the job's files (rank 0; always for NULL). */
int fm_dist_is_writer(const FmDist *d);

/* Collective wrappers of the operations above (no-ops for NULL). */
void fm_dist_sum_floats(FmDist *d, float *x, size_t n);
void fm_dist_sum_doubles(FmDist *d, double *x, size_t n);
int fm_dist_max_int(FmDist *d, int x);
void fm_dist_broadcast(FmDist *d, void *buf, size_t bytes);

/* Gathers every rank's block of `size` bytes per item: rank r has counts[r] items (the same
 * counts array on every rank) starting at item offset sum(counts[0..r)) of `all`, where this
 * rank's items already are; afterwards `all` holds every rank's items in rank order. */
void fm_dist_gather_items(FmDist *d, void *all, size_t size, const int64_t *counts);

/* Makes every rank agree on how a collective stage ended. Each rank passes its own status
 * (and error record); when all are FM_OK the result is FM_OK. Otherwise every rank returns the
 * status and error of the lowest failing rank, its message prefixed with "rank R: " on the
 * other ranks; so all ranks stop together and report the same error. */
FmStatus fm_dist_agree(FmDist *d, FmStatus st, FmError *err);

/* The first and one-past-last item of rank `rank`'s contiguous share when n items are dealt
 * in blocks of `block` items (the last block may be partial) to `size` ranks: rank r gets
 * blocks [r B / size, (r + 1) B / size) of the B = ceil(n / block) blocks. */
void fm_dist_block_range(int64_t n, int64_t block, int rank, int size, int64_t *begin, int64_t *end);

#endif
