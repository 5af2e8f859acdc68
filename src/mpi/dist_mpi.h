/* The FmDist of src/dist.h over MPI_COMM_WORLD (MPI builds only: make MPI=1).
 *
 * Summation orders (fixed by the number of ranks P, never by timing):
 *   floats   a ring allreduce written with point-to-point messages: the arena is cut into P
 *            chunks; in P-1 steps each rank passes a partial sum to its right neighbour, which
 *            adds its own values (partial + own), so chunk c is summed as
 *            ((x_c + x_{c+1}) + x_{c+2}) + ... over ranks c, c+1, ... (mod P); then P-1 steps
 *            pass the finished chunks round, so every rank holds the same bits. Each rank sends
 *            and receives 2 (P-1)/P of the arena, the bandwidth-optimal volume.
 *            (MPI_Allreduce is not used: the standard leaves its order to the implementation,
 *            which may pick another algorithm by message size or process placement.)
 *   doubles  small vectors: every rank gathers all ranks' vectors and adds them in rank order.
 *
 * The ranks' processes must all run this same build (same float arithmetic). */
#ifndef FM_DIST_MPI_H
#define FM_DIST_MPI_H

#include "src/dist.h"

/* Fills *d for MPI_COMM_WORLD (MPI initialised by the caller). Returns 0, or -1 when out of
 * memory. */
int fm_dist_mpi_init(FmDist *d);

/* Frees the scratch of fm_dist_mpi_init; the caller finalises MPI. */
void fm_dist_mpi_free(FmDist *d);

/* The ring allreduce of floats alone (what fm_dist_sum_floats runs), and MPI_Allreduce with
 * MPI_SUM for comparison in benchmarks. */
void fm_dist_mpi_ring_sum(FmDist *d, float *x, size_t n);
void fm_dist_mpi_library_sum(float *x, size_t n);

#endif
