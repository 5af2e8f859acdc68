/* fusemoe ablate: a grid of configurations x splits x seeds, each run as its own process. */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "src/ablate.h"
#include "src/alloc.h"
#include "src/cli/cli_mpi.h"
#include "src/cli/cmd_common.h"
#include "src/cli/commands.h"
#include "src/cli/progress.h"
#include "src/interrupt.h"

static void ablate_usage(FILE *out) {
    fprintf(out,
            "usage: fusemoe ablate --grid GRID.ini --out DIR [--jobs N] [--quiet]\n"
            "       fusemoe ablate --grid GRID.ini --out DIR --slurm-script FILE\n"
            "       fusemoe ablate --grid GRID.ini --out DIR (--array-task T | --collect)\n"
            "\n"
            "Runs every (configuration, split, seed) of the grid as an independent `fusemoe train`\n"
            "(at most N at once, each with 1 OpenBLAS thread unless the grid sets train.threads),\n"
            "evaluates evaluation-only settings (eval.missing_rate) on the trained models, and writes\n"
            "DIR/results.csv (one row per run) and DIR/results.md (per task: mean +- std [95%% CI] per\n"
            "configuration and the paired difference against the baseline), printed at the end.\n"
            "Runs already complete are skipped, so an interrupted ablation continues where it stopped.\n"
            "\n"
            "grid file:\n"
            "  [grid]\n"
            "  study = synth_study.ini        ; base study (relative to the grid file)\n"
            "  seeds = 1, 2                   ; train.seed values\n"
            "  splits = 0                     ; data.split values\n"
            "  baseline = laplace             ; compared against (default: the first configuration)\n"
            "  metrics = mortality.auroc, mortality.auprc\n"
            "  [set]                          ; overrides for every configuration\n"
            "  train.epochs = 4\n"
            "  [axes]                         ; key = value | value | ...  (lists: a+b+c)\n"
            "  model.gate = laplace | softmax\n"
            "\n"
            "options:\n"
            "  --grid F     the grid file\n"
            "  --out DIR    output folder (created when missing)\n"
            "  --jobs N     runs at once (default 1); results do not depend on it\n"
            "  --quiet      no progress output\n"
            "  --slurm-script FILE  run nothing; write a Slurm job-array script with one task per\n"
            "               training run (its comments give the sbatch and collect commands)\n"
            "  --array-task T       run training run T (0-based, grid order) and its evaluations only\n"
            "  --collect    run nothing; write results.csv and results.md from the complete runs\n"
            "Under mpirun (MPI builds) every rank runs one run at a time and asks rank 0 for the next\n"
            "when it is done; the tables are the same as with --jobs.\n"
            "SIGINT/SIGTERM stop the running jobs (they save checkpoints) and exit with status %d.\n",
            FM_EXIT_INTERRUPTED);
}

typedef struct {
    int quiet;
} View;

static void observe(void *ctx, const FmAblateEvent *ev) {
    View *v = ctx;
    if (v->quiet) return;
    switch (ev->kind) {
    case FM_ABLATE_EVENT_PLAN:
        fprintf(stderr, "ablate: %d runs, %d complete already, %d to do\n", ev->total, ev->skipped, ev->done);
        break;
    case FM_ABLATE_EVENT_STARTED: fprintf(stderr, "ablate: %s: %d job%s\n", ev->name, ev->total, ev->total == 1 ? "" : "s"); break;
    case FM_ABLATE_EVENT_DONE:
        fprintf(stderr, "[%d/%d] %s: %s\n", ev->done, ev->total, ev->name,
                ev->exit_status == 0                     ? "done"
                : ev->exit_status == FM_EXIT_INTERRUPTED ? "interrupted (checkpoint saved)"
                                                         : "FAILED (see its log)");
        break;
    }
}

int fm_cmd_ablate(int argc, char **argv) {
    const char *grid = NULL, *out = NULL;
    long jobs = 1, task = -1;
    int quiet = 0, collect = 0, jobs_set = 0;
    const char *slurm = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            ablate_usage(stdout);
            return 0;
        }
        if (strcmp(a, "--quiet") == 0) {
            quiet = 1;
            continue;
        }
        if (strcmp(a, "--collect") == 0) {
            collect = 1;
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "fusemoe ablate: %s: %s\n", a, a[0] == '-' ? "missing value" : "unexpected argument");
            ablate_usage(stderr);
            return 2;
        }
        const char *v = argv[++i];
        if (strcmp(a, "--grid") == 0) {
            grid = v;
        } else if (strcmp(a, "--out") == 0) {
            out = v;
        } else if (strcmp(a, "--jobs") == 0) {
            if (!fm_cli_parse_long("ablate", a, v, 1, 256, &jobs)) return 2;
            jobs_set = 1;
        } else if (strcmp(a, "--slurm-script") == 0) {
            slurm = v;
        } else if (strcmp(a, "--array-task") == 0) {
            if (!fm_cli_parse_long("ablate", a, v, 0, 1000000000, &task)) return 2;
        } else {
            fprintf(stderr, "fusemoe ablate: %s: unknown option\n", a);
            ablate_usage(stderr);
            return 2;
        }
    }
    if (!grid || !out) {
        fprintf(stderr, "fusemoe ablate: --grid and --out are required\n");
        ablate_usage(stderr);
        return 2;
    }
    if ((slurm != NULL) + (task >= 0) + collect > 1) {
        fprintf(stderr, "fusemoe ablate: --slurm-script, --array-task and --collect exclude each other\n");
        return 2;
    }
    const int distributed = fm_cli_dist() != NULL;
    if (distributed && (slurm || task >= 0 || collect || jobs_set)) {
        if (fm_cli_is_rank0())
            fprintf(stderr, "fusemoe ablate: under mpirun every rank runs one run at a time; --jobs, --slurm-script, "
                            "--array-task and --collect run without mpirun\n");
        return 2;
    }
    /* The runs execute this very program. */
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        fprintf(stderr, "fusemoe ablate: /proc/self/exe: cannot find the fusemoe program\n");
        return 1;
    }
    exe[n] = '\0';
    fm_interrupt_install();
    if (!fm_cli_is_rank0()) { /* runs what rank 0 hands out */
        fm_cli_serve_jobs();
        return 0;
    }
    View view = {.quiet = quiet};
    FmAblateOptions opt = {.grid_path = grid, .out_dir = out, .jobs = (int)jobs, .exe = exe, .observer = observe,
                           .observer_ctx = &view, .runner = fm_cli_job_runner(), .one_task = task >= 0,
                           .task = (int)task, .collect = collect, .slurm_script = slurm};
    FmAblateResult res;
    FmError err;
    double t0 = fm_progress_now();
    FmStatus st = fm_ablate_run(&opt, &res, &err);
    fm_cli_stop_jobs();
    if (st == FM_OK && slurm) {
        printf("wrote %s: a job array of %d task%s (one per training run of the %d runs); submit and collect with\n"
               "  jid=$(sbatch --parsable %s)\n"
               "  sbatch --dependency=afterany:$jid --wrap \"fusemoe ablate --grid %s --out %s --collect\"\n",
               slurm, res.n_training_runs, res.n_training_runs == 1 ? "" : "s", res.n_runs, slurm, grid, out);
    }
    if (res.markdown) {
        fputs(res.markdown, stdout);
        printf("\nwrote %s/results.csv and %s/results.md (%d of %d runs complete, %.0f s)\n", out, out, res.n_complete,
               res.n_runs, fm_progress_now() - t0);
    }
    fm_free(res.markdown);
    if (st != FM_OK) {
        fm_cli_report("ablate", &err);
        return fm_cli_exit_status(st);
    }
    return 0;
}
