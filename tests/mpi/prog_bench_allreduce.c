/* Benchmark (scripts/bench-mpi.sh, under mpirun): seconds per sum of a float arena over the
 * ranks, the deterministic ring of src/mpi/dist_mpi.c against MPI_Allreduce, for each arena
 * size (floats) given as an argument. Rank 0 prints one line per size. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

#include "src/alloc.h"
#include "src/mpi/dist_mpi.h"

static double timed(FmDist *d, float *x, size_t n, int ring, int reps) {
    MPI_Barrier(MPI_COMM_WORLD);
    double t0 = MPI_Wtime();
    for (int i = 0; i < reps; i++) {
        if (ring) fm_dist_mpi_ring_sum(d, x, n);
        else fm_dist_mpi_library_sum(x, n);
    }
    double t = (MPI_Wtime() - t0) / reps, worst;
    MPI_Allreduce(&t, &worst, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
    return worst;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    FmDist d;
    if (fm_dist_mpi_init(&d) != 0) MPI_Abort(MPI_COMM_WORLD, 2);
    for (int a = 1; a < argc; a++) {
        size_t n = (size_t)strtoull(argv[a], NULL, 10);
        float *x = fm_calloc(n + 1, sizeof *x);
        if (!x) MPI_Abort(MPI_COMM_WORLD, 2);
        timed(&d, x, n, 1, 3); /* warm-up: connections, scratch */
        int reps = n > 10000000 ? 10 : 50;
        double ring = timed(&d, x, n, 1, reps), lib = timed(&d, x, n, 0, reps);
        if (d.rank == 0)
            printf("%d ranks, %zu floats (%.1f MB): ring %.3f ms, MPI_Allreduce %.3f ms per sum\n", d.size, n,
                   4e-6 * (double)n, 1e3 * ring, 1e3 * lib);
        fm_free(x);
    }
    fm_dist_mpi_free(&d);
    MPI_Finalize();
    return 0;
}
