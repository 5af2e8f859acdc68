/* MPI in the fusemoe program (MPI builds, make MPI=1): started when a launcher started the
 * process (mpirun, or srun with PMI/PMIx) and FUSEMOE_NO_MPI is unset; ended at exit. The
 * data-parallel commands (train, ablate) take the world's FmDist; every other command refuses
 * to run on more than one rank. Without MPI (plain builds, or a process started directly)
 * everything here is a no-op and fm_cli_dist() is NULL. */
#ifndef FM_CLI_MPI_H
#define FM_CLI_MPI_H

#include "src/dist.h"
#include "src/job_pool.h"

/* Starts MPI if the process was launched as a rank (see above). Returns 0, or -1 after
 * printing why it could not. */
int fm_cli_mpi_begin(int *argc, char ***argv);

/* Ends MPI if fm_cli_mpi_begin started it. */
void fm_cli_mpi_end(void);

/* The world's FmDist when more than one rank runs, else NULL. */
FmDist *fm_cli_dist(void);

/* 1 on rank 0 (or without MPI): the rank that prints progress, results and errors. */
int fm_cli_is_rank0(void);

/* Ablations over the ranks (src/mpi/job_pool_mpi.h): the runner rank 0 hands to
 * fm_ablate_run (NULL without MPI), the loop of the other ranks, and its end. */
FmJobRunner fm_cli_job_runner(void);
void fm_cli_serve_jobs(void);
void fm_cli_stop_jobs(void);

/* Ends the job on every rank with `status` (MPI_Abort when MPI runs; else exit). For a rank
 * that cannot go on while the others wait in a collective. */
_Noreturn void fm_cli_abort(int status);

#endif
