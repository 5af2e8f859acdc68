/* Ablation jobs handed out over the ranks of an MPI job (MPI builds only).
 *
 * Rank 0 plans the ablation and runs fm_job_pool_mpi_run (an FmJobRunner, src/job_pool.h);
 * every other rank runs fm_job_pool_mpi_serve until rank 0 calls fm_job_pool_mpi_stop. Each
 * rank, rank 0 included, runs one job at a time as a child process; a rank whose job ends
 * reports its exit status and receives the next job in index order, so long runs do not hold
 * up the others. Waiting is by polling every few milliseconds (never a spinning MPI receive),
 * so idle ranks leave the cores to the jobs.
 *
 * Children get FUSEMOE_NO_MPI=1 (they are plain processes, not ranks) and rank 0's value of
 * OPENBLAS_NUM_THREADS when it has one. Interruption: SIGINT/SIGTERM on any rank stops
 * handing out jobs; running children get SIGTERM (they save their checkpoints) and the run
 * returns FM_ERR_INTERRUPTED on rank 0 after every child has ended. */
#ifndef FM_JOB_POOL_MPI_H
#define FM_JOB_POOL_MPI_H

#include "src/job_pool.h"

/* Rank 0: runs jobs[0..n) over all ranks (max_parallel must be 1: one job per rank). The
 * contract is fm_job_pool_run's. */
FmStatus fm_job_pool_mpi_run(const FmJob *jobs, int n, int max_parallel, FmJobDone on_done, void *ctx,
                             FmError *err);

/* Ranks above 0: run the jobs rank 0 sends until it stops them. */
void fm_job_pool_mpi_serve(void);

/* Rank 0: ends every rank's fm_job_pool_mpi_serve (after its last job has ended). */
void fm_job_pool_mpi_stop(void);

#endif
