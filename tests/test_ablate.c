/* Ablations (src/ablate_grid.h, src/ablate.h, src/ablate_results.h): grid errors at their
 * line, the expansion into configurations, results that do not depend on --jobs, and resuming
 * an ablation without redoing complete runs. The runs are `fusemoe train` / `fusemoe eval`
 * processes of the CLI beside the suite. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "src/ablate.h"
#include "src/ablate_grid.h"
#include "src/alloc.h"
#include "tests/support/study_support.h"
#include "tests/support/testutil.h"

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

/* A folder with study.ini (the tiny study, 1 epoch) and grid.ini holding `grid`. */
static void grid_folder(char *dir, size_t cap, char *grid_path, size_t gcap, const char *grid) {
    fm_test_tmpdir(dir, cap);
    char study[700];
    snprintf(study, sizeof study, "%s/study.ini", dir);
    fm_study_write(study, fm_study_cohort("cohort.h5"), "[train]\ncheckpoint_every = 2\n");
    snprintf(grid_path, gcap, "%s/grid.ini", dir);
    write_text(grid_path, grid);
}

typedef struct {
    const char *grid;
    int line;            /* line of the grid the error names (0: the grid file itself; -1: the
                            study's line "top_k = 2") */
    const char *message; /* expected in the message */
} GridCase;

static const GridCase GRID_CASES[] = {
    {"[grid]\nstudy = study.ini\n[grids]\n", 3, "[grids]: unknown section"},
    {"[grid]\nstudy = study.ini\nseed = 1\n", 3, "[grid] seed: unknown key"},
    {"[grid]\nstudy = study.ini\n[axes]\nmodel.gate = laplace | lapace\n", 4,
     "configuration lapace: [model] gate: \"lapace\" is not one of laplace, gaussian, softmax"},
    {"[grid]\nstudy = study.ini\n[axes]\nmodel.gatee = laplace\n", 4, "[axes] model.gatee: unknown configuration key"},
    {"[grid]\nstudy = study.ini\n[axes]\nmodel.gate = laplace | softmax | laplace\n", 4, "is listed twice"},
    {"[grid]\nstudy = study.ini\n\n\nbaseline = gaussian\n[axes]\nmodel.gate = laplace | softmax\n", 0,
     "[grid] baseline: \"gaussian\" is not a configuration"},
    {"[grid]\nstudy = study.ini\nmetrics = mortality.aucroc\n", 3, "\"mortality.aucroc\" is not <task>.<metric>"},
    {"[grid]\nseeds = 1\n", 2, "[grid] study: missing"},
    {"[grid]\nstudy = study.ini\n[axes]\ndata.split = 0 | 1\n", 4, "give splits and seeds in [grid]"},
    {"[grid]\nstudy = study.ini\nseeds = 1, x\n", 3, "[grid] seeds: item 2"},
    {"[grid]\nstudy = study.ini\n[set]\nmodel.top_k = 9\n", 4, "[model] top_k: 9 is more than model.experts (4)"},
    /* the rule names the key it refuses, set by the study */
    {"[grid]\nstudy = study.ini\n[set]\nmodel.layers = 2\n[axes]\nmodel.experts = 4 | 1\n", -1,
     "configuration 1: [model] top_k: 2 is more than model.experts (1)"},
};

START_TEST(test_grid_errors) {
    const GridCase *k = &GRID_CASES[_i];
    char dir[512], grid[600];
    grid_folder(dir, sizeof dir, grid, sizeof grid, k->grid);
    FmAblateGrid g;
    FmError err;
    ck_assert_msg(fm_ablate_grid_load(grid, &g, &err) == FM_ERR_CONFIG, "case %d loaded", _i);
    char where[700];
    if (k->line > 0) {
        snprintf(where, sizeof where, "%s:%d", grid, k->line);
    } else if (k->line == 0) {
        snprintf(where, sizeof where, "%s", grid);
    } else {
        char study[600];
        snprintf(study, sizeof study, "%s/study.ini", dir);
        char *text = fm_study_read(study, NULL);
        int line = 1;
        for (char *p = text; p < strstr(text, "top_k = 2"); p++) line += *p == '\n';
        fm_free(text);
        snprintf(where, sizeof where, "%s:%d", study, line);
    }
    ck_assert_msg(strcmp(err.where, where) == 0, "case %d: where \"%s\", expected \"%s\"", _i, err.where, where);
    ck_assert_msg(strstr(err.message, k->message) != NULL, "case %d: \"%s\" lacks \"%s\"", _i, err.message,
                  k->message);
    ck_assert_ptr_null(g.path); /* emptied */
    fm_test_rmtree(dir);
}
END_TEST

START_TEST(test_grid_expansion) {
    char dir[512], grid[600];
    grid_folder(dir, sizeof dir, grid, sizeof grid,
                "[grid]\nstudy = study.ini\nseeds = 3, 1\nsplits = 1\nbaseline = softmax/vitals+labs/0.5\n"
                "[axes]\nmodel.gate = laplace | softmax\ndata.modalities = vitals+labs+static | vitals, labs\n"
                "eval.missing_rate = 0 | 0.5\n");
    FmAblateGrid g;
    FmError err;
    ck_assert_msg(fm_ablate_grid_load(grid, &g, &err) == FM_OK, "%s: %s", err.where, err.message);
    ck_assert_int_eq(g.n_configs, 8);
    ck_assert_str_eq(g.config_name[0], "laplace/vitals+labs+static/0");
    ck_assert_str_eq(g.config_name[3], "laplace/vitals+labs/0.5");
    ck_assert_str_eq(g.config_name[7], "softmax/vitals+labs/0.5");
    ck_assert_str_eq(g.train_name[7], "softmax/vitals+labs");
    ck_assert_int_eq(g.axes[2].eval_only, 1);
    ck_assert_int_eq(g.axes[0].eval_only, 0);
    ck_assert_int_eq(g.n_seeds, 2);
    ck_assert_int_eq(g.seeds[0], 3);
    ck_assert_int_eq(fm_ablate_grid_find(&g, "softmax/vitals+labs/0.5"), 7);
    /* default metrics: per task of the study */
    ck_assert_int_eq(g.n_metrics, 6);
    ck_assert_str_eq(g.metrics[0], "mortality.auroc");
    ck_assert_str_eq(g.metrics[2], "phenotypes.macro_auroc");
    ck_assert_str_eq(g.metrics[4], "los_regression.mae_days");
    FmConfig cfg;
    ck_assert_int_eq(fm_ablate_grid_config(&g, 3, 1, 3, 1, &cfg, &err), FM_OK);
    ck_assert_str_eq(fm_config_text(&cfg, "data.modalities"), "vitals, labs");
    ck_assert_str_eq(fm_config_text(&cfg, "eval.missing_rate"), "0.5");
    ck_assert_int_eq(fm_config_int(&cfg, "train.seed"), 3);
    ck_assert_int_eq(fm_config_int(&cfg, "data.split"), 1);
    ck_assert_int_eq(fm_config_int(&cfg, "train.threads"), 1);
    /* the value's place is the grid's line */
    char where[700];
    snprintf(where, sizeof where, "%s:8", grid);
    ck_assert_str_eq(fm_config_where(&cfg, "data.modalities"), where);
    fm_config_free(&cfg);
    ck_assert_int_eq(fm_ablate_grid_config(&g, 3, 1, 3, 0, &cfg, &err), FM_OK);
    ck_assert_str_eq(fm_config_text(&cfg, "eval.missing_rate"), "0"); /* training: the study's */
    fm_config_free(&cfg);
    fm_ablate_grid_free(&g);
    fm_test_rmtree(dir);
}
END_TEST

START_TEST(test_grid_alloc_failure) {
    char dir[512], grid[600];
    grid_folder(dir, sizeof dir, grid, sizeof grid,
                "[grid]\nstudy = study.ini\nseeds = 1, 2\nmetrics = mortality.auroc\n[set]\ntrain.epochs = 1\n"
                "[axes]\nmodel.gate = laplace | softmax\ndata.modalities = vitals+labs | labs\n");
    int ok = 0;
    for (long n = 1; !ok; n++) {
        FmAblateGrid g;
        FmError err;
        fm_alloc_fail_after(n);
        FmStatus st = fm_ablate_grid_load(grid, &g, &err);
        fm_alloc_fail_reset();
        if (st == FM_OK) {
            ok = 1;
            ck_assert_int_eq(g.n_configs, 4);
            fm_ablate_grid_free(&g);
        } else {
            ck_assert_msg(st == FM_ERR_NOMEM, "allocation %ld: status %d: %s", n, st, err.message);
            ck_assert_ptr_null(g.path);
        }
        ck_assert_int_lt(n, 20000);
    }
    fm_test_rmtree(dir);
}
END_TEST

/* A modality the cohort lacks is found before any run starts. */
START_TEST(test_ablate_checks_cohort_first) {
    char dir[512], grid[600], out[600];
    grid_folder(dir, sizeof dir, grid, sizeof grid, "[grid]\nstudy = study.ini\n[axes]\ndata.modalities = vitals | ecg\n");
    snprintf(out, sizeof out, "%s/out", dir);
    FmAblateOptions o = {.grid_path = grid, .out_dir = out, .jobs = 1, .exe = fm_study_cli()};
    FmAblateResult res;
    FmError err;
    ck_assert_int_eq(fm_ablate_run(&o, &res, &err), FM_ERR_CONFIG);
    char where[700];
    snprintf(where, sizeof where, "%s:4", grid);
    ck_assert_str_eq(err.where, where);
    ck_assert_ptr_nonnull(strstr(err.message, "configuration ecg: [data] modalities: the cohort"));
    ck_assert_ptr_nonnull(strstr(err.message, "no modality \"ecg\""));
    struct stat sb;
    ck_assert_msg(stat(out, &sb) != 0, "the output folder was created");
    fm_test_rmtree(dir);
}
END_TEST

typedef struct {
    int skipped, planned;
} Seen;

static void seen_plan(void *ctx, const FmAblateEvent *ev) {
    Seen *s = ctx;
    if (ev->kind == FM_ABLATE_EVENT_PLAN) s->skipped = ev->skipped, s->planned = ev->total;
}

static const char *GRID =
    "[grid]\nstudy = study.ini\nseeds = 1, 2\nbaseline = laplace/0\nmetrics = mortality.auroc, mortality.auprc, "
    "phenotypes.macro_auroc, experts.entropy\n[set]\ntrain.epochs = 1\n[axes]\nmodel.gate = laplace | softmax\n"
    "eval.missing_rate = 0 | 0.5\n";

/* results.csv without its last column (the training seconds, which vary). */
static char *csv_without_time(const char *path) {
    char *text = fm_study_read(path, NULL);
    ck_assert_ptr_nonnull(text);
    char *out = fm_malloc(strlen(text) + 1), *w = out;
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        char *comma = line + len;
        while (comma > line && *comma != ',') comma--;
        memcpy(w, line, (size_t)(comma - line));
        w += comma - line;
        *w++ = '\n';
        line += len + (nl != NULL);
    }
    *w = '\0';
    fm_free(text);
    return out;
}

START_TEST(test_ablate_jobs_and_resume) {
    char dir[512], grid[600], a[600], b[600], pa[800], pb[800];
    grid_folder(dir, sizeof dir, grid, sizeof grid, GRID);
    snprintf(a, sizeof a, "%s/two_jobs", dir);
    snprintf(b, sizeof b, "%s/one_job", dir);
    FmError err;
    FmAblateResult res;
    FmAblateOptions o = {.grid_path = grid, .out_dir = a, .jobs = 2, .exe = fm_study_cli()};
    ck_assert_msg(fm_ablate_run(&o, &res, &err) == FM_OK, "%s: %s", err.where, err.message);
    ck_assert_int_eq(res.n_runs, 8);
    ck_assert_int_eq(res.n_complete, 8);
    ck_assert_ptr_nonnull(strstr(res.markdown, "| softmax/0.5 | 2 |"));
    ck_assert_ptr_nonnull(strstr(res.markdown, "vs laplace/0"));
    fm_free(res.markdown);
    o.out_dir = b;
    o.jobs = 1;
    ck_assert_int_eq(fm_ablate_run(&o, &res, &err), FM_OK);
    fm_free(res.markdown);
    /* identical tables, runs and metrics whatever the number of jobs */
    snprintf(pa, sizeof pa, "%s/results.md", a);
    snprintf(pb, sizeof pb, "%s/results.md", b);
    ck_assert(fm_study_same_file(pa, pb));
    snprintf(pa, sizeof pa, "%s/results.csv", a);
    snprintf(pb, sizeof pb, "%s/results.csv", b);
    char *ca = csv_without_time(pa), *cb = csv_without_time(pb);
    ck_assert_str_eq(ca, cb);
    ck_assert_int_eq(fm_study_lines(pa), 9);
    /* the expert entropy (the last metric) is read from each run's metrics.json */
    ck_assert_ptr_nonnull(strstr(ca, ",experts.entropy\n"));
    const char *row = strchr(ca, '\n');
    const char *row_end = strchr(row + 1, '\n');
    ck_assert_ptr_nonnull(row_end);
    const char *field = row_end;
    while (field > row && *field != ',') field--;
    const double entropy = strtod(field + 1, NULL);
    ck_assert_msg(entropy > 0.0 && entropy <= 1.0, "row %.*s", (int)(row_end - row), row);
    fm_free(ca);
    fm_free(cb);
    const char *files[] = {"runs/laplace/split0-seed1/model.h5",   "runs/softmax/split0-seed2/model.h5",
                           "runs/softmax/split0-seed2/metrics.json", "evals/laplace__0.5/split0-seed1/metrics.json",
                           "evals/softmax__0.5/split0-seed2/predictions.csv"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(pa, sizeof pa, "%s/%s", a, files[i]);
        snprintf(pb, sizeof pb, "%s/%s", b, files[i]);
        ck_assert_msg(fm_study_same_file(pa, pb), "%s differs between --jobs 2 and 1", files[i]);
    }
    /* Resume: one run made incomplete; the rest are skipped and stay untouched. */
    char keep[800], redo[800], saved[800];
    snprintf(keep, sizeof keep, "%s/runs/laplace/split0-seed1/model.h5", a);
    snprintf(redo, sizeof redo, "%s/runs/softmax/split0-seed2/metrics.json", a);
    snprintf(saved, sizeof saved, "%s/runs/softmax/split0-seed2/metrics.json", b);
    struct stat before, after;
    ck_assert_int_eq(stat(keep, &before), 0);
    ck_assert_int_eq(unlink(redo), 0);
    Seen seen = {0, 0};
    o.out_dir = a;
    o.observer = seen_plan;
    o.observer_ctx = &seen;
    ck_assert_int_eq(fm_ablate_run(&o, &res, &err), FM_OK);
    fm_free(res.markdown);
    ck_assert_int_eq(seen.planned, 8);
    ck_assert_int_eq(seen.skipped, 7);
    ck_assert_int_eq(res.n_skipped, 7);
    ck_assert_int_eq(stat(keep, &after), 0);
    ck_assert(before.st_ino == after.st_ino && before.st_mtime == after.st_mtime);
    ck_assert(fm_study_same_file(redo, saved));
    snprintf(pa, sizeof pa, "%s/results.md", a);
    snprintf(pb, sizeof pb, "%s/results.md", b);
    ck_assert(fm_study_same_file(pa, pb));
    /* A changed grid does not silently reuse runs made with the old one. */
    char *changed = fm_malloc(strlen(GRID) + 8);
    strcpy(changed, GRID);
    memcpy(strstr(changed, "train.epochs = 1"), "train.epochs = 2", 16);
    write_text(grid, changed);
    fm_free(changed);
    o.observer = NULL;
    ck_assert_int_eq(fm_ablate_run(&o, &res, &err), FM_ERR_MISMATCH);
    ck_assert_ptr_nonnull(strstr(err.message, "the run was made with train.epochs = 1, now train.epochs = 2"));
    ck_assert_ptr_nonnull(strstr(err.where, "config.ini"));
    fm_test_rmtree(dir);
}
END_TEST

static Suite *ablate_suite(void) {
    Suite *s = suite_create("ablate");
    TCase *tc = tcase_create("ablate");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_grid_errors, 0, (int)(sizeof GRID_CASES / sizeof *GRID_CASES));
    tcase_add_test(tc, test_grid_expansion);
    tcase_add_test(tc, test_grid_alloc_failure);
    tcase_add_test(tc, test_ablate_checks_cohort_first);
    tcase_add_test(tc, test_ablate_jobs_and_resume);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    fm_study_setup();
    int rc = fm_test_run_suite(ablate_suite());
    fm_study_teardown();
    return rc;
}
