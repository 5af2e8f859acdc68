/* Running independent jobs as child processes, at most N at a time.
 *
 * Used by ablations: every run of a grid is its own process (its own memory, its own failure),
 * so runs cannot influence each other and the results do not depend on how many run at once.
 * Each job's stdout and stderr go to its own log file, and each job runs in a process group of
 * its own, so that signals from the terminal reach only the pool's process. */
#ifndef FM_JOB_POOL_H
#define FM_JOB_POOL_H

#include <sys/types.h>

#include "src/error.h"

typedef struct {
    char *const *argv;    /* argv[0] is the program path; NULL-terminated */
    const char *log_path; /* receives the job's stdout and stderr (truncated first) */
} FmJob;

/* Called in the parent as each job ends, in completion order: exit_status is the job's exit
 * code, or 128 + signal number if a signal killed it. */
typedef void (*FmJobDone)(void *ctx, int index, int exit_status);

/* Runs jobs[0..n) with at most max_parallel (>= 1) running at once, starting them in index
 * order. Returns FM_OK when every job has ended (whatever their exit codes, which on_done
 * reports), FM_ERR_IO if a process cannot be started, FM_ERR_INTERRUPTED if SIGINT/SIGTERM
 * arrived (src/interrupt.h; install it first): then running jobs are sent SIGTERM and waited
 * for, and jobs not yet started are not started. */
FmStatus fm_job_pool_run(const FmJob *jobs, int n, int max_parallel, FmJobDone on_done, void *ctx,
                         FmError *err);

/* Starts one job as a child process in a process group of its own, its stdout and stderr to
 * its log (truncated first), with SIGINT and SIGTERM at their default actions until the
 * program installs its own. Returns the
 * child's pid, or -1 with errno set. For runners that wait for their children themselves. */
pid_t fm_job_start(const FmJob *job);

/* A waitpid status as FmJobDone reports it: the exit code, or 128 + the signal number. */
int fm_job_exit_code(int wait_status);

/* Anything that runs jobs as fm_job_pool_run does (same contract), e.g. over the ranks of an
 * MPI job (src/mpi/job_pool_mpi.h). */
typedef FmStatus (*FmJobRunner)(const FmJob *jobs, int n, int max_parallel, FmJobDone on_done, void *ctx,
                                FmError *err);

#endif
