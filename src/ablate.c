/* Running an ablation grid (src/ablate.h). */
#include "src/ablate.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "preprocessing/cohort.h"
#include "src/ablate_grid.h"
#include "src/ablate_results.h"
#include "src/ablate_slurm.h"
#include "src/alloc.h"
#include "src/atomic_file.h"
#include "src/config.h"
#include "src/job_pool.h"
#include "src/train.h"
#include "src/train_folder.h"
#include "src/train_spec.h"

#define MAX_ARGS 24

/* One process to run. */
typedef struct {
    char dir[FM_PATH_MAX];
    char needs[FM_PATH_MAX]; /* a run folder that must be complete first ("" = none) */
    char log[FM_PATH_MAX];
    char label[256];
    char *arg[MAX_ARGS]; /* owned strings */
    int n_arg;
} Job;

/* One (configuration, split, seed) of the grid. */
typedef struct {
    char train_dir[FM_PATH_MAX];
    char result_dir[FM_PATH_MAX]; /* holds the metrics.json of the run's results */
} RunDirs;

typedef struct {
    const FmAblateOptions *opt;
    Job *jobs;
    int n_jobs;
    int *status;
    int done;
    const char *phase;
} Phase;

static void job_free(Job *j) {
    for (int i = 0; i < j->n_arg; i++) fm_free(j->arg[i]);
    j->n_arg = 0;
}

static int job_arg(Job *j, const char *s) {
    if (j->n_arg >= MAX_ARGS - 1) return -1;
    if (!(j->arg[j->n_arg] = fm_strdup(s))) return -1;
    j->n_arg++;
    j->arg[j->n_arg] = NULL;
    return 0;
}

/* A folder name for a configuration name. */
static void slug(const char *name, char *out, size_t cap) {
    size_t k = 0;
    for (const char *p = name; *p && k + 3 < cap; p++) {
        char c = *p;
        if (c == '/') {
            out[k++] = '_';
            out[k++] = '_';
        } else {
            int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || strchr("._+-=", c);
            out[k++] = ok ? c : '_';
        }
    }
    out[k] = '\0';
}

static void notify(const FmAblateOptions *o, const FmAblateEvent *ev) {
    if (o->observer) o->observer(o->observer_ctx, ev);
}

static void on_done(void *ctx, int index, int exit_status) {
    Phase *ph = ctx;
    ph->status[index] = exit_status;
    ph->done++;
    FmAblateEvent ev = {.kind = FM_ABLATE_EVENT_DONE,
                        .name = ph->jobs[index].label,
                        .dir = ph->jobs[index].dir,
                        .exit_status = exit_status,
                        .done = ph->done,
                        .total = ph->n_jobs};
    notify(ph->opt, &ev);
}

/* Runs jobs[0..n); returns the pool's status; *failed counts non-zero exits and *first_log
 * receives the log of the first failed job. */
static FmStatus run_phase(const FmAblateOptions *o, const char *phase, Job *jobs, int n, int *failed,
                          char *first_log, size_t cap, FmError *err) {
    if (n == 0) return FM_OK;
    FmJob *pool = fm_calloc((size_t)n, sizeof *pool);
    int *status = fm_calloc((size_t)n, sizeof *status);
    if (!pool || !status) {
        fm_free(pool);
        fm_free(status);
        return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
    }
    for (int i = 0; i < n; i++) {
        pool[i].argv = jobs[i].arg;
        pool[i].log_path = jobs[i].log;
        status[i] = -1;
    }
    FmAblateEvent ev = {.kind = FM_ABLATE_EVENT_STARTED, .name = phase, .total = n};
    notify(o, &ev);
    Phase ph = {.opt = o, .jobs = jobs, .n_jobs = n, .status = status, .phase = phase};
    FmStatus st = (o->runner ? o->runner : fm_job_pool_run)(pool, n, o->jobs, on_done, &ph, err);
    for (int i = 0; i < n; i++) {
        /* -1: never started; after an interruption the jobs we stopped are not failures. */
        if (status[i] <= 0 || st == FM_ERR_INTERRUPTED) continue;
        if (first_log[0] == '\0') snprintf(first_log, cap, "%s", jobs[i].log);
        (*failed)++;
    }
    fm_free(pool);
    fm_free(status);
    return st;
}

/* The metrics.json of dir exists. */
static int complete(const char *dir) { return fm_train_folder_has(dir, FM_TRAIN_METRICS_FILE); }

/* Whether the evaluation keys of a and b agree. */
static int same_eval(const FmConfig *a, const FmConfig *b) {
    int n;
    const FmConfigKey *keys = fm_config_schema(&n);
    for (int i = 0; i < n; i++) {
        if (strcmp(keys[i].section, "eval") != 0) continue;
        char name[128];
        snprintf(name, sizeof name, "eval.%s", keys[i].key);
        if (strcmp(fm_config_text(a, name), fm_config_text(b, name)) != 0) return 0;
    }
    return 1;
}

/* Checks a training configuration against its cohort (kept loaded in *cached while the path
 * stays the same). */
static FmStatus check_on_cohort(const FmConfig *cfg, FmCohort *cached, char *cached_path, size_t cap,
                                FmError *err) {
    const char *path = fm_config_string(cfg, "data.cohort");
    if (!path[0]) {
        const char *where = fm_config_where(cfg, "data.cohort");
        return FM_FAIL(err, FM_ERR_CONFIG, strcmp(where, "default") ? where : "", "[data] cohort: no cohort file given");
    }
    if (strcmp(path, cached_path) != 0) {
        fm_cohort_free(cached);
        cached_path[0] = '\0';
        FmStatus st = fm_cohort_load(path, cached, err);
        if (st != FM_OK) return st;
        snprintf(cached_path, cap, "%s", path);
    }
    long split = fm_config_int(cfg, "data.split");
    if (split >= cached->n_splits) {
        const char *where = fm_config_where(cfg, "data.split");
        return FM_FAIL(err, FM_ERR_CONFIG, strcmp(where, "default") ? where : "",
                       "[data] split: %ld, but the cohort %s has %d split%s", split, path, cached->n_splits,
                       cached->n_splits == 1 ? "" : "s");
    }
    FmTrainSpec spec;
    return fm_train_spec_from_config(cfg, cached, path, &spec, err);
}

static FmStatus copy_file(const char *from, const char *to, FmError *err) {
    FILE *f = fopen(from, "rb");
    if (!f) return FM_FAIL(err, FM_ERR_IO, from, "cannot open");
    char *buf = fm_malloc(1 << 20);
    size_t n = buf ? fread(buf, 1, 1 << 20, f) : 0;
    fclose(f);
    if (!buf) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
    FmStatus st = fm_atomic_write_all(to, buf, n, err);
    fm_free(buf);
    return st;
}

FmStatus fm_ablate_run(const FmAblateOptions *o, FmAblateResult *res, FmError *err) {
    memset(res, 0, sizeof *res);
    FmAblateGrid g;
    FmStatus st = fm_ablate_grid_load(o->grid_path, &g, err);
    if (st != FM_OK) return st;
    const int n_runs = g.n_configs * g.n_splits * g.n_seeds;
    RunDirs *dirs = fm_calloc((size_t)n_runs, sizeof *dirs);
    Job *train_jobs = fm_calloc((size_t)n_runs, sizeof *train_jobs), *eval_jobs = fm_calloc((size_t)n_runs, sizeof *eval_jobs);
    FmAblateRow *rows = fm_calloc((size_t)n_runs, sizeof *rows);
    int *train_of = fm_calloc((size_t)n_runs + 1, sizeof *train_of); /* training run number of each run */
    const int run_nothing = o->collect || o->slurm_script != NULL;
    int n_distinct = 0, threads = 1;
    double *values = fm_malloc_array((size_t)n_runs * (size_t)(g.n_metrics ? g.n_metrics : 1), sizeof *values);
    int n_train = 0, n_eval = 0, skipped = 0, failed = 0;
    char first_log[FM_PATH_MAX] = "";
    FmCohort cohort;
    char cohort_path[FM_PATH_MAX] = "";
    memset(&cohort, 0, sizeof cohort);
    if (!dirs || !train_jobs || !eval_jobs || !rows || !values || !train_of) {
        st = FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory planning %d runs", n_runs);
        goto done;
    }
    /* Names must give distinct folders. */
    for (int c = 0; c < g.n_configs; c++)
        for (int u = 0; u < c; u++) {
            char a[512], b[512];
            slug(g.config_name[c], a, sizeof a);
            slug(g.config_name[u], b, sizeof b);
            if (strcmp(a, b) == 0 && strcmp(g.config_name[c], g.config_name[u]) != 0) {
                st = FM_FAIL(err, FM_ERR_CONFIG, g.path, "configurations \"%s\" and \"%s\" would share the folder %s",
                             g.config_name[u], g.config_name[c], a);
                goto done;
            }
        }

    /* Every training configuration on its cohort, before anything starts. */
    for (int c = 0; c < g.n_configs; c++)
        for (int k = 0; k < g.n_splits; k++) {
            FmConfig train;
            if ((st = fm_ablate_grid_config(&g, c, g.splits[k], g.seeds[0], 0, &train, err)) == FM_OK) {
                st = check_on_cohort(&train, &cohort, cohort_path, sizeof cohort_path, err);
                fm_config_free(&train);
            }
            if (st != FM_OK) {
                if (st != FM_ERR_NOMEM) fm_error_prefix(err, "configuration %s", g.config_name[c]);
                goto done;
            }
        }
    fm_cohort_free(&cohort);

    /* Plan every run. */
    int i = 0;
    for (int c = 0; c < g.n_configs; c++)
        for (int k = 0; k < g.n_splits; k++)
            for (int s = 0; s < g.n_seeds; s++, i++) {
                FmConfig full, train;
                long split = g.splits[k], seed = g.seeds[s];
                if ((st = fm_ablate_grid_config(&g, c, split, seed, 1, &full, err)) != FM_OK) goto located;
                if ((st = fm_ablate_grid_config(&g, c, split, seed, 0, &train, err)) != FM_OK) {
                    fm_config_free(&full);
                    goto located;
                }
                char name[512];
                slug(g.train_name[c], name, sizeof name);
                RunDirs *d = &dirs[i];
                snprintf(d->train_dir, sizeof d->train_dir, "%s/runs/%s/split%ld-seed%ld", o->out_dir, name, split, seed);
                int own_eval = !same_eval(&full, &train);
                if (own_eval) {
                    slug(g.config_name[c], name, sizeof name);
                    snprintf(d->result_dir, sizeof d->result_dir, "%s/evals/%s/split%ld-seed%ld", o->out_dir, name, split,
                             seed);
                } else {
                    snprintf(d->result_dir, sizeof d->result_dir, "%s", d->train_dir);
                }
                rows[i] = (FmAblateRow){.config = c, .split = split, .seed = seed, .values = values + (size_t)i * g.n_metrics};
                /* A training job per distinct run folder; a complete run must be of this grid. */
                int seen = 0;
                for (int u = 0; u < i && !seen; u++)
                    if ((seen = strcmp(dirs[u].train_dir, d->train_dir) == 0)) train_of[i] = train_of[u];
                if (!seen) train_of[i] = n_distinct++;
                if (st == FM_OK && fm_config_int(&train, "train.threads") > threads)
                    threads = (int)fm_config_int(&train, "train.threads");
                const int mine = !run_nothing && (!o->one_task || train_of[i] == o->task);
                if (st == FM_OK && !seen && complete(d->train_dir)) {
                    char path[FM_PATH_MAX + 16], *text = NULL;
                    snprintf(path, sizeof path, "%s/%s", d->train_dir, FM_TRAIN_CONFIG_FILE);
                    if ((st = fm_train_folder_read(path, &text, err)) == FM_OK)
                        st = fm_train_check_same_config(text, &train, path, err);
                    fm_free(text);
                    if (st == FM_ERR_MISMATCH && err) {
                        size_t len = strlen(err->message);
                        snprintf(err->message + len, sizeof err->message - len,
                                 " in the grid: the grid changed since this run; remove the run or use another --out");
                    }
                }
                if (st == FM_OK && !seen && !complete(d->train_dir) && mine) {
                    Job *j = &train_jobs[n_train++];
                    char study[FM_PATH_MAX];
                    snprintf(j->dir, sizeof j->dir, "%s", d->train_dir);
                    snprintf(j->log, sizeof j->log, "%s/train.log", d->train_dir);
                    snprintf(j->label, sizeof j->label, "%s split%ld-seed%ld", g.train_name[c], split, seed);
                    snprintf(study, sizeof study, "%s/study.ini", d->train_dir);
                    if ((st = fm_train_folder_create(d->train_dir, err)) == FM_OK &&
                        (st = fm_config_write(&train, study, err)) == FM_OK &&
                        (job_arg(j, o->exe) || job_arg(j, "train") || job_arg(j, "--config") || job_arg(j, study) ||
                         job_arg(j, "--out") || job_arg(j, d->train_dir) || job_arg(j, "--resume") || job_arg(j, "--quiet")))
                        st = FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
                }
                if (st == FM_OK && own_eval && !complete(d->result_dir) && mine) {
                    Job *j = &eval_jobs[n_eval++];
                    char model[FM_PATH_MAX], num[4][32];
                    snprintf(j->dir, sizeof j->dir, "%s", d->result_dir);
                    snprintf(j->needs, sizeof j->needs, "%s", d->train_dir);
                    snprintf(j->log, sizeof j->log, "%s/eval.log", d->result_dir);
                    snprintf(j->label, sizeof j->label, "%s split%ld-seed%ld", g.config_name[c], split, seed);
                    snprintf(model, sizeof model, "%s/%s", d->train_dir, FM_TRAIN_MODEL_FILE);
                    snprintf(num[0], sizeof num[0], "%ld", split);
                    snprintf(num[1], sizeof num[1], "%ld", seed);
                    snprintf(num[2], sizeof num[2], "%ld", fm_config_int(&full, "eval.bootstrap"));
                    snprintf(num[3], sizeof num[3], "%ld", fm_config_int(&full, "train.threads"));
                    if ((st = fm_train_folder_create(d->result_dir, err)) == FM_OK &&
                        (job_arg(j, o->exe) || job_arg(j, "eval") || job_arg(j, "--model") || job_arg(j, model) ||
                         job_arg(j, "--cohort") || job_arg(j, fm_config_string(&full, "data.cohort")) ||
                         job_arg(j, "--split") || job_arg(j, num[0]) || job_arg(j, "--part") || job_arg(j, "test") ||
                         job_arg(j, "--missing-rate") || job_arg(j, fm_config_text(&full, "eval.missing_rate")) ||
                         job_arg(j, "--seed") || job_arg(j, num[1]) || job_arg(j, "--bootstrap") || job_arg(j, num[2]) ||
                         job_arg(j, "--threads") || job_arg(j, num[3]) || job_arg(j, "--out") || job_arg(j, d->result_dir)))
                        st = FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
                }
                skipped += complete(d->result_dir);
                fm_config_free(&full);
                fm_config_free(&train);
            located:
                if (st != FM_OK) goto done;
            }
    {
        char copy[FM_PATH_MAX];
        snprintf(copy, sizeof copy, "%s/grid.ini", o->out_dir);
        if ((st = fm_train_folder_create(o->out_dir, err)) != FM_OK || (st = copy_file(o->grid_path, copy, err)) != FM_OK)
            goto done;
    }
    res->n_training_runs = n_distinct;
    if (o->one_task && (o->task < 0 || o->task >= n_distinct)) {
        st = FM_FAIL(err, FM_ERR_ARG, o->grid_path, "array task %d: the grid has %d training runs (0 to %d)", o->task,
                     n_distinct, n_distinct - 1);
        goto done;
    }
    if (o->slurm_script) {
        res->n_runs = n_runs;
        res->n_skipped = skipped;
        st = fm_ablate_slurm_write(o, n_distinct, threads, err);
        goto done;
    }
    FmAblateEvent plan = {.kind = FM_ABLATE_EVENT_PLAN,
                          .total = n_runs,
                          .done = o->one_task ? n_train + n_eval : run_nothing ? 0 : n_runs - skipped,
                          .skipped = skipped};
    notify(o, &plan);
    if (!g.threads_set) setenv("OPENBLAS_NUM_THREADS", "1", 1);

    /* Train, then evaluate the evaluation-only settings of trained models. */
    FmStatus run_st = run_phase(o, "training", train_jobs, n_train, &failed, first_log, sizeof first_log, err);
    if (run_st == FM_OK) {
        int m = 0;
        for (int k = 0; k < n_eval; k++) {
            /* Evaluations of a run whose training failed cannot run. */
            if (!complete(eval_jobs[k].needs)) continue;
            if (m != k) {
                Job tmp = eval_jobs[m];
                eval_jobs[m] = eval_jobs[k];
                eval_jobs[k] = tmp;
            }
            m++;
        }
        run_st = run_phase(o, "evaluation", eval_jobs, m, &failed, first_log, sizeof first_log, err);
    }

    if (o->one_task) { /* the results are collected once every task is done */
        res->n_runs = n_runs;
        res->n_failed = failed;
        res->n_skipped = skipped;
        if (run_st != FM_OK) st = run_st;
        else if (failed) st = FM_FAIL(err, FM_ERR_IO, first_log, "training run %d failed (this is its log)", o->task);
        goto done;
    }
    /* Results of every run that has them, in grid order. */
    for (int r = 0; r < n_runs; r++) {
        char path[FM_PATH_MAX + 32];
        rows[r].train_seconds = NAN;
        snprintf(path, sizeof path, "%s/%s", dirs[r].result_dir, FM_TRAIN_METRICS_FILE);
        if (complete(dirs[r].result_dir)) {
            FmError e;
            if (fm_ablate_results_read_metrics(&g, path, rows[r].values, &e) == FM_OK) rows[r].complete = 1;
        }
        snprintf(path, sizeof path, "%s/%s", dirs[r].train_dir, FM_TRAIN_TIMING_FILE);
        rows[r].train_seconds = fm_ablate_results_read_seconds(path);
        res->n_complete += rows[r].complete;
    }
    res->n_runs = n_runs;
    res->n_failed = failed;
    res->n_skipped = skipped;
    if ((st = fm_ablate_results_write(&g, rows, n_runs, o->out_dir, &res->markdown, err)) != FM_OK) goto done;
    if (run_st != FM_OK) {
        st = run_st;
    } else if (failed) {
        st = FM_FAIL(err, FM_ERR_IO, first_log, "%d run%s failed (this is the first one's log); %d of %d runs are complete",
                     failed, failed == 1 ? "" : "s", res->n_complete, n_runs);
    } else if (res->n_complete < n_runs) {
        st = FM_FAIL(err, FM_ERR_IO, o->out_dir, "%d of %d runs are complete", res->n_complete, n_runs);
    }
done:
    fm_cohort_free(&cohort);
    for (int k = 0; k < n_runs && train_jobs; k++) job_free(&train_jobs[k]);
    for (int k = 0; k < n_runs && eval_jobs; k++) job_free(&eval_jobs[k]);
    fm_free(train_jobs);
    fm_free(eval_jobs);
    fm_free(dirs);
    fm_free(rows);
    fm_free(values);
    fm_free(train_of);
    fm_ablate_grid_free(&g);
    return st;
}
