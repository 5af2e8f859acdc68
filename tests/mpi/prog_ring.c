/* Checked under mpirun by the MPI suite (tests/mpi/test_mpi.c): the ring sum of
 * src/mpi/dist_mpi.c against the order its header states, computed here on every rank from
 * every rank's inputs (seeded, so each rank can make all of them). Exit 0 when every rank
 * holds exactly those bits, for arena sizes with empty, uneven and large chunks; also the
 * double sums, the gather of src/dist.h and fm_dist_agree. Prints the first difference. */
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/alloc.h"
#include "src/dist.h"
#include "src/mpi/dist_mpi.h"
#include "src/rng.h"

/* Rank r's input values: seeded by (r, n), spread over magnitudes so rounding shows. */
static void input(float *x, size_t n, int r) {
    FmRng g;
    fm_rng_seed(&g, 1000u * (uint64_t)n + (uint64_t)r);
    for (size_t i = 0; i < n; i++) x[i] = (float)(fm_rng_normal(&g) * exp(6.0 * fm_rng_uniform(&g) - 3.0));
}

static int check_floats(FmDist *d, size_t n) {
    const int P = d->size;
    float *x = fm_malloc_array(n + 1, sizeof *x), *other = fm_malloc_array(n + 1, sizeof *other);
    float *want = fm_malloc_array(n + 1, sizeof *want);
    int bad = 0;
    input(x, n, d->rank);
    /* Expected: chunk c summed over ranks c, c+1, ... (mod P), partial + own. */
    size_t q = n / (size_t)P, rem = n % (size_t)P;
    for (int c = 0; c < P; c++) {
        size_t lo = q * (size_t)c + ((size_t)c < rem ? (size_t)c : rem), len = q + ((size_t)c < rem ? 1 : 0);
        input(other, n, c);
        memcpy(want + lo, other + lo, len * sizeof *want);
        for (int k = 1; k < P; k++) {
            input(other, n, (c + k) % P);
            for (size_t i = lo; i < lo + len; i++) want[i] = want[i] + other[i];
        }
    }
    fm_dist_sum_floats(d, x, n);
    for (size_t i = 0; i < n && !bad; i++)
        if (memcmp(&x[i], &want[i], sizeof *x) != 0) {
            fprintf(stderr, "rank %d, n %zu: element %zu is %.9g, the stated order gives %.9g\n", d->rank, n, i,
                    (double)x[i], (double)want[i]);
            bad = 1;
        }
    /* Every rank holds the same bits (rank 0's, sent round). */
    memcpy(other, x, n * sizeof *x);
    MPI_Bcast(other, (int)n, MPI_FLOAT, 0, MPI_COMM_WORLD);
    if (!bad && n && memcmp(other, x, n * sizeof *x) != 0) {
        fprintf(stderr, "rank %d, n %zu: differs from rank 0\n", d->rank, n);
        bad = 1;
    }
    fm_free(x);
    fm_free(other);
    fm_free(want);
    return bad;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    FmDist d;
    if (fm_dist_mpi_init(&d) != 0) MPI_Abort(MPI_COMM_WORLD, 2);
    int bad = 0;
    const size_t sizes[] = {0, 1, 2, 5, 1000, 65537, 1000003};
    for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) bad |= check_floats(&d, sizes[k]);
    /* Doubles: in rank order. */
    double v[3] = {0.1 * (d.rank + 1), 1e16, -1e16 + d.rank}, want[3] = {0, 0, 0};
    for (int r = 0; r < d.size; r++) {
        double w[3] = {0.1 * (r + 1), 1e16, -1e16 + r};
        for (int i = 0; i < 3; i++) want[i] = r == 0 ? w[i] : want[i] + w[i];
    }
    fm_dist_sum_doubles(&d, v, 3);
    if (memcmp(v, want, sizeof v) != 0) {
        fprintf(stderr, "rank %d: double sums differ from rank order\n", d.rank);
        bad = 1;
    }
    /* Gather: rank r contributes r + 1 items valued 100 r + i. */
    int64_t counts[64], total = 0, at = 0;
    for (int r = 0; r < d.size; r++) {
        counts[r] = r + 1;
        if (r < d.rank) at += counts[r];
        total += counts[r];
    }
    int64_t *all = fm_calloc((size_t)total, sizeof *all);
    for (int64_t i = 0; i < counts[d.rank]; i++) all[at + i] = 100 * d.rank + i;
    fm_dist_gather_items(&d, all, sizeof *all, counts);
    int64_t k = 0;
    for (int r = 0; r < d.size; r++)
        for (int64_t i = 0; i < counts[r]; i++, k++)
            if (all[k] != 100 * r + i) {
                fprintf(stderr, "rank %d: gathered item %lld is %lld\n", d.rank, (long long)k, (long long)all[k]);
                bad = 1;
                r = d.size;
                break;
            }
    fm_free(all);
    /* Agreement: the last rank fails; everyone gets its message, prefixed by its rank. */
    FmError err;
    fm_error_clear(&err);
    FmStatus st = FM_OK;
    if (d.rank == d.size - 1) st = FM_FAIL(&err, FM_ERR_IO, "x.h5", "disk full");
    st = fm_dist_agree(&d, st, &err);
    if (st != FM_ERR_IO || strstr(err.message, "disk full") == NULL ||
        (d.rank != d.size - 1 && strstr(err.message, "rank") == NULL)) {
        fprintf(stderr, "rank %d: agreement gave status %d, \"%s\"\n", d.rank, (int)st, err.message);
        bad = 1;
    }
    if (fm_dist_agree(&d, FM_OK, &err) != FM_OK) bad = 1;
    int any = bad;
    MPI_Allreduce(MPI_IN_PLACE, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
    if (d.rank == 0) printf("ring sums, double sums, gather, agreement on %d ranks: %s\n", d.size, any ? "FAILED" : "ok");
    fm_dist_mpi_free(&d);
    MPI_Finalize();
    return any ? 1 : 0;
}
