/* MPI start-up for the fusemoe program (src/cli/cli_mpi.h). */
#include "src/cli/cli_mpi.h"

#include <stdio.h>
#include <stdlib.h>

#ifdef FM_WITH_MPI
#include <mpi.h>

#include "src/mpi/dist_mpi.h"
#include "src/mpi/job_pool_mpi.h"

static int g_started;
static FmDist g_dist;

/* Launchers announce the rank through the environment: OpenMPI's mpirun, PMIx (srun
 * --mpi=pmix, prterun) and PMI-1/2 (srun --mpi=pmi2, MPICH's hydra). */
static int launched_as_rank(void) {
    if (getenv("FUSEMOE_NO_MPI")) return 0;
    return getenv("OMPI_COMM_WORLD_SIZE") || getenv("PMIX_RANK") || getenv("PMI_RANK") || getenv("PMI_SIZE");
}

int fm_cli_mpi_begin(int *argc, char ***argv) {
    if (!launched_as_rank()) return 0;
    int provided = 0;
    /* Only the main thread calls MPI. */
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fprintf(stderr, "fusemoe: MPI could not be started\n");
        return -1;
    }
    g_started = 1;
    if (fm_dist_mpi_init(&g_dist) != 0) {
        fprintf(stderr, "fusemoe: out of memory starting MPI\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    return 0;
}

void fm_cli_mpi_end(void) {
    if (!g_started) return;
    fm_dist_mpi_free(&g_dist);
    MPI_Finalize();
    g_started = 0;
}

FmDist *fm_cli_dist(void) { return g_started && g_dist.size > 1 ? &g_dist : NULL; }

int fm_cli_is_rank0(void) { return !g_started || g_dist.rank == 0; }

_Noreturn void fm_cli_abort(int status) {
    if (g_started) MPI_Abort(MPI_COMM_WORLD, status);
    exit(status);
}

FmJobRunner fm_cli_job_runner(void) { return fm_cli_dist() ? fm_job_pool_mpi_run : NULL; }

void fm_cli_serve_jobs(void) {
    if (fm_cli_dist()) fm_job_pool_mpi_serve();
}

void fm_cli_stop_jobs(void) {
    if (fm_cli_dist()) fm_job_pool_mpi_stop();
}

#else

int fm_cli_mpi_begin(int *argc, char ***argv) {
    (void)argc;
    (void)argv;
    return 0;
}

void fm_cli_mpi_end(void) {}

FmDist *fm_cli_dist(void) { return NULL; }

int fm_cli_is_rank0(void) { return 1; }

_Noreturn void fm_cli_abort(int status) { exit(status); }

FmJobRunner fm_cli_job_runner(void) { return NULL; }

void fm_cli_serve_jobs(void) {}

void fm_cli_stop_jobs(void) {}

#endif
