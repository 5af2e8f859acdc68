/* Running an ablation grid (src/ablate_grid.h): every (configuration, split, seed) as an
 * independent `fusemoe train` process, at most `jobs` at once (src/job_pool.h), then the
 * results (src/ablate_results.h).
 *
 * Before anything runs, the grid and every configuration are checked (src/ablate_grid.h), and
 * each configuration is mapped onto its cohort (src/train_spec.h: a modality or task the
 * cohort lacks, a split it does not have, is reported at the grid or study line that sets it).
 *
 * Folders under out_dir:
 *   grid.ini                          a copy of the grid file
 *   runs/<train name>/split<K>-seed<S>/   one training run (src/train.h) with its study.ini (the
 *                                     resolved configuration) and train.log (its output)
 *   evals/<name>/split<K>-seed<S>/    the evaluations of configurations with evaluation-only
 *                                     values (e.g. eval.missing_rate) that differ from the
 *                                     training run's own: `fusemoe eval` of that run's model,
 *                                     with eval.log
 *   results.csv, results.md
 * Names are the configuration names with "/" written as "__" and characters other than
 * letters, digits and . _ + - = as "_".
 *
 * Resuming: a run is complete when its metrics.json exists, and is then skipped; an
 * incomplete training run is started again with --resume, so it continues from its
 * checkpoint. Interrupting the ablation (SIGINT/SIGTERM) stops the running jobs, which save
 * their checkpoints, and returns FM_ERR_INTERRUPTED; running it again continues.
 *
 * Results do not depend on `jobs`: each run is its own process with its own seed and
 * streams, and results are gathered in grid order. Nor on who runs the jobs (`runner`: this
 * machine's pool, or the ranks of an MPI job handing runs out one at a time).
 *
 * Job arrays (Slurm). The distinct training runs are numbered 0, 1, ... in grid order (runs
 * that differ only in evaluation settings share one). `slurm_script` plans the grid and
 * writes a job-array script with one array task per training run, which runs `fusemoe
 * ablate ... --array-task $SLURM_ARRAY_TASK_ID`: `one_task` with `task` = t runs only
 * training run t (unless complete) and then the evaluations of its model, and writes no
 * results (FM_ERR_ARG for t beyond the last training run). `collect`
 * runs nothing and writes results.csv and results.md from the runs that are complete; after
 * every array task it gives the same tables as an ablation run in one go. */
#ifndef FM_ABLATE_H
#define FM_ABLATE_H

#include "src/error.h"
#include "src/job_pool.h"

typedef enum {
    FM_ABLATE_EVENT_PLAN,    /* the runs are known: total, to_run */
    FM_ABLATE_EVENT_STARTED, /* phase begins: name ("training" / "evaluation"), total */
    FM_ABLATE_EVENT_DONE     /* a job ended: name, dir, exit_status, done, total */
} FmAblateEventKind;

typedef struct {
    FmAblateEventKind kind;
    const char *name;  /* PLAN/STARTED: a phase; DONE: the run ("softmax split0-seed2") */
    const char *dir;   /* DONE: the run's folder */
    int exit_status;   /* DONE: 0 = success */
    int done, total;   /* DONE: jobs ended in the phase / jobs in it; PLAN: runs, runs to do */
    int skipped;       /* PLAN: runs complete already */
} FmAblateEvent;

typedef struct {
    const char *grid_path;
    const char *out_dir;
    int jobs;        /* at most this many runs at once (>= 1) */
    const char *exe; /* the fusemoe program the runs execute */
    void (*observer)(void *ctx, const FmAblateEvent *ev); /* may be NULL */
    void *observer_ctx;
    FmJobRunner runner;       /* NULL: fm_job_pool_run */
    int one_task;             /* 0: every run; 1: training run `task` and its evaluations only */
    int task;
    int collect;              /* 1: run nothing, write the results of the complete runs */
    const char *slurm_script; /* not NULL: run nothing, write the job-array script here */
} FmAblateOptions;

typedef struct {
    int n_runs;     /* (configuration, split, seed) triples */
    int n_complete; /* with results */
    int n_failed;   /* jobs that ended with an error this time */
    int n_skipped;  /* complete before this invocation */
    int n_training_runs; /* distinct training runs (the job array's size) */
    char *markdown; /* results.md (fm_free) */
} FmAblateResult;

/* Runs the grid. FM_OK when every run is complete; FM_ERR_INTERRUPTED when stopped by a
 * signal; FM_ERR_IO naming a failed run's log when some runs failed (results.csv and
 * results.md are written in every case with the runs that are complete). */
FmStatus fm_ablate_run(const FmAblateOptions *opt, FmAblateResult *res, FmError *err);

#endif
