/* FmDist over MPI_COMM_WORLD (src/mpi/dist_mpi.h). */
#include "src/mpi/dist_mpi.h"

#include <limits.h>
#include <mpi.h>
#include <string.h>

#include "src/alloc.h"

/* Messages are cut into pieces of at most this many elements (MPI counts are int). */
#define PIECE (1 << 28)

typedef struct {
    int rank, size;
    float *scratch; /* one chunk of the ring */
    size_t cap;
} Ctx;

/* Chunk c of P over n items: [lo, lo + len). */
static void chunk(size_t n, int P, int c, size_t *lo, size_t *len) {
    size_t q = n / (size_t)P, r = n % (size_t)P;
    *lo = q * (size_t)c + ((size_t)c < r ? (size_t)c : r);
    *len = q + ((size_t)c < r ? 1 : 0);
}

/* One ring step. At least one message each way even when a chunk is empty, so that every
 * rank's k-th receive matches its neighbour's k-th send. */
static void sendrecv_floats(const float *send, size_t n_send, float *recv, size_t n_recv, int to, int from) {
    size_t done_s = 0, done_r = 0;
    do {
        int s = (int)(n_send - done_s < PIECE ? n_send - done_s : PIECE);
        int r = (int)(n_recv - done_r < PIECE ? n_recv - done_r : PIECE);
        MPI_Sendrecv(send + done_s, s, MPI_FLOAT, to, 71, recv + done_r, r, MPI_FLOAT, from, 71, MPI_COMM_WORLD,
                     MPI_STATUS_IGNORE);
        done_s += (size_t)s;
        done_r += (size_t)r;
    } while (done_s < n_send || done_r < n_recv);
}

static int ensure(Ctx *c, size_t floats) {
    if (floats <= c->cap) return 0;
    float *s = fm_realloc(c->scratch, floats * sizeof *s);
    if (!s) return -1;
    c->scratch = s;
    c->cap = floats;
    return 0;
}

static void ring_sum(Ctx *c, float *x, size_t n) {
    const int P = c->size, me = c->rank, right = (me + 1) % P, left = (me + P - 1) % P;
    if (P == 1) return;
    FM_ASSERT(ensure(c, n / (size_t)P + 1) == 0); /* one chunk of the arena, kept between calls */
    /* Reduce-scatter: after step k, chunk (me - k - 1) holds the sum of ranks me-k-1 .. me. */
    for (int k = 0; k < P - 1; k++) {
        int cs = ((me - k) % P + P) % P, cr = ((me - k - 1) % P + P) % P;
        size_t slo, slen, rlo, rlen;
        chunk(n, P, cs, &slo, &slen);
        chunk(n, P, cr, &rlo, &rlen);
        sendrecv_floats(x + slo, slen, c->scratch, rlen, right, left);
        float *dst = x + rlo;
        for (size_t i = 0; i < rlen; i++) dst[i] = c->scratch[i] + dst[i]; /* partial + own */
    }
    /* Allgather: rank me now owns the finished chunk (me + 1) mod P; pass the chunks round. */
    for (int k = 0; k < P - 1; k++) {
        int cs = ((me + 1 - k) % P + P) % P, cr = ((me - k) % P + P) % P;
        size_t slo, slen, rlo, rlen;
        chunk(n, P, cs, &slo, &slen);
        chunk(n, P, cr, &rlo, &rlen);
        sendrecv_floats(x + slo, slen, x + rlo, rlen, right, left);
    }
}

void fm_dist_mpi_ring_sum(FmDist *d, float *x, size_t n) { ring_sum(d->ctx, x, n); }

static void op_sum_floats(void *ctx, float *x, size_t n) { ring_sum(ctx, x, n); }

static void op_sum_doubles(void *ctx, double *x, size_t n) {
    const int P = ((Ctx *)ctx)->size;
    FM_ASSERT(n <= (size_t)INT_MAX / (size_t)P);
    double *all = fm_malloc_array(n * (size_t)P + 1, sizeof *all);
    FM_ASSERT(all != NULL); /* a few loss sums per rank */
    MPI_Allgather(x, (int)n, MPI_DOUBLE, all, (int)n, MPI_DOUBLE, MPI_COMM_WORLD);
    for (size_t i = 0; i < n; i++) {
        double s = all[i];
        for (int r = 1; r < P; r++) s += all[(size_t)r * n + i];
        x[i] = s;
    }
    fm_free(all);
}

static void op_max_ints(void *ctx, int *x, size_t n) {
    (void)ctx;
    FM_ASSERT(n <= (size_t)INT_MAX);
    MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
}

static void op_broadcast(void *ctx, void *buf, size_t bytes, int root) {
    (void)ctx;
    for (size_t done = 0; done < bytes;) {
        int k = (int)(bytes - done < PIECE ? bytes - done : PIECE);
        MPI_Bcast((char *)buf + done, k, MPI_BYTE, root, MPI_COMM_WORLD);
        done += (size_t)k;
    }
}

static void op_gather(void *ctx, const void *mine, void *all, const size_t *counts) {
    const int P = ((Ctx *)ctx)->size;
    int *cnt = fm_malloc_array((size_t)P, sizeof *cnt), *disp = fm_malloc_array((size_t)P, sizeof *disp);
    FM_ASSERT(cnt && disp);
    size_t off = 0;
    for (int r = 0; r < P; r++) {
        FM_ASSERT(counts[r] <= (size_t)INT_MAX && off <= (size_t)INT_MAX); /* predictions, not arenas */
        cnt[r] = (int)counts[r];
        disp[r] = (int)off;
        off += counts[r];
    }
    /* This rank's block already sits at its place in `all`. */
    (void)mine;
    MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, all, cnt, disp, MPI_BYTE, MPI_COMM_WORLD);
    fm_free(cnt);
    fm_free(disp);
}

static const FmDistOps OPS = {op_sum_floats, op_sum_doubles, op_max_ints, op_broadcast, op_gather};

int fm_dist_mpi_init(FmDist *d) {
    memset(d, 0, sizeof *d);
    Ctx *c = fm_calloc(1, sizeof *c);
    if (!c) return -1;
    MPI_Comm_rank(MPI_COMM_WORLD, &d->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &d->size);
    c->rank = d->rank;
    c->size = d->size;
    d->ops = &OPS;
    d->ctx = c;
    return 0;
}

void fm_dist_mpi_free(FmDist *d) {
    if (!d || !d->ctx) return;
    Ctx *c = d->ctx;
    fm_free(c->scratch);
    fm_free(c);
    memset(d, 0, sizeof *d);
}

void fm_dist_mpi_library_sum(float *x, size_t n) {
    for (size_t done = 0; done < n;) {
        int k = (int)(n - done < PIECE ? n - done : PIECE);
        MPI_Allreduce(MPI_IN_PLACE, x + done, k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        done += (size_t)k;
    }
}
