/* Data-parallel runs under mpirun (MPI builds: make test-mpi): the ring allreduce, training on
 * 2 ranks against 1 process (same micro-batches, parameters equal up to the rounding of the
 * gradient sum) and against itself (bit for bit), interruption of one rank and resumption,
 * the refusal of too small an accumulation, distributed ablations against --jobs, and commands
 * that run alone. Each test starts `mpirun -np 2 --oversubscribe` (this machine has 2 cores;
 * as root with OMPI_ALLOW_RUN_AS_ROOT*) on the 160-stay synthetic cohort of study_support. */
#include <check.h>
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "models/model_file.h"
#include "src/ablate.h"
#include "src/alloc.h"
#include "tests/support/study_support.h"
#include "tests/support/testutil.h"

#define MAX_ARGS 32

/* Starts `mpirun -np <np> --oversubscribe <args...>` (np 0: the arguments alone), output to
 * `log`; returns the pid. */
static pid_t start(int np, const char *log, const char *const *args) {
    const char *argv[MAX_ARGS];
    int n = 0;
    char nps[16];
    if (np > 0) {
        snprintf(nps, sizeof nps, "%d", np);
        argv[n++] = "mpirun";
        argv[n++] = "-np";
        argv[n++] = nps;
        argv[n++] = "--oversubscribe";
    }
    for (int i = 0; args[i]; i++) argv[n++] = args[i];
    argv[n] = NULL;
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        FILE *f = freopen(log, "w", stdout);
        if (!f || dup2(fileno(stdout), STDERR_FILENO) < 0) _exit(126);
        setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 1);
        setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 1);
        setenv("OMPI_MCA_rmaps_base_oversubscribe", "1", 1);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static int finish(pid_t pid) {
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* Runs the command to its end; returns its exit status; the log must exist afterwards. */
static int run(int np, const char *log, const char *const *args) { return finish(start(np, log, args)); }

static char *slurp(const char *path) {
    char *t = fm_study_read(path, NULL);
    ck_assert_msg(t != NULL, "%s unreadable", path);
    return t;
}

static void in(char *buf, size_t cap, const char *dir, const char *name) { snprintf(buf, cap, "%s/%s", dir, name); }

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

/* The largest |a - b| over two model files' parameters. */
static double max_param_diff(const char *a, const char *b) {
    FmModel *ma = NULL, *mb = NULL;
    FmError err;
    ck_assert_msg(fm_model_file_load(a, &ma, 0, NULL, NULL, &err) == FM_OK, "%s", err.message);
    ck_assert_msg(fm_model_file_load(b, &mb, 0, NULL, NULL, &err) == FM_OK, "%s", err.message);
    ck_assert_uint_eq(ma->params.total, mb->params.total);
    double worst = 0.0;
    for (size_t i = 0; i < ma->params.total; i++) {
        double d = fabs((double)ma->params.data[i] - (double)mb->params.data[i]);
        if (!(d <= worst)) worst = d; /* NaN wins */
    }
    fm_model_free(ma);
    fm_model_free(mb);
    return worst;
}

/* A study in a fresh folder (batches of 16 of the 96 training stays): 2 ranks need
 * accumulation >= 2; 2 shards so each rank loads half of the training stays. */
static void study(char *dir, size_t cap, char *path, size_t pcap, const char *extra) {
    fm_test_tmpdir(dir, cap);
    in(path, pcap, dir, "study.ini");
    char text[1024];
    snprintf(text, sizeof text, "[train]\naccumulation = 2\nshards = 2\n%s", extra ? extra : "");
    fm_study_write(path, fm_study_cohort("cohort.h5"), text);
}

START_TEST(test_mpi_ring) {
    char dir[512], log[600], prog[1100];
    fm_test_tmpdir(dir, sizeof dir);
    in(log, sizeof log, dir, "ring.log");
    snprintf(prog, sizeof prog, "%s", fm_study_cli());
    *strrchr(prog, '/') = '\0';
    strcat(prog, "/tests/prog_ring");
    for (int np = 2; np <= 3; np++) {
        const char *args[] = {prog, NULL};
        int rc = run(np, log, args);
        char *t = slurp(log);
        ck_assert_msg(rc == 0, "prog_ring on %d ranks: exit %d\n%s", np, rc, t);
        ck_assert_ptr_nonnull(strstr(t, ": ok"));
        fm_free(t);
    }
    fm_test_rmtree(dir);
}
END_TEST

START_TEST(test_mpi_train_matches_one_process) {
    char dir[512], path[600], one[600], two[600], again[600], log[600], a[700], b[700];
    study(dir, sizeof dir, path, sizeof path, "[data]\n"); /* 2 epochs */
    in(one, sizeof one, dir, "one");
    in(two, sizeof two, dir, "two");
    in(again, sizeof again, dir, "again");
    in(log, sizeof log, dir, "train.log");
    const char *a1[] = {fm_study_cli(), "train", "--config", path, "--out", one, "--quiet", NULL};
    ck_assert_int_eq(run(0, log, a1), 0);
    const char *a2[] = {fm_study_cli(), "train", "--config", path, "--out", two, "--quiet", NULL};
    int rc = run(2, log, a2);
    char *t = slurp(log);
    ck_assert_msg(rc == 0, "exit %d\n%s", rc, t);
    fm_free(t);
    const char *a3[] = {fm_study_cli(), "train", "--config", path, "--out", again, "--quiet", NULL};
    ck_assert_int_eq(run(2, log, a3), 0);
    /* 2 ranks repeat themselves bit for bit: the sums' order is fixed. */
    const char *same[] = {"model.h5", "metrics.json", "predictions.csv"};
    for (int i = 0; i < 3; i++) {
        in(a, sizeof a, two, same[i]);
        in(b, sizeof b, again, same[i]);
        ck_assert_msg(fm_study_same_file(a, b), "%s differs between two 2-rank runs", same[i]);
    }
    /* Against one process: the same micro-batches, only the gradient sum rounds otherwise
     * (observed 4.5e-6 after 2 epochs of 3 steps; Adam moves a parameter by about
     * train.lr = 4e-4 per step, the scale at which a wrong gradient would show). Both runs are deterministic, so this is one number. */
    in(a, sizeof a, one, "model.h5");
    in(b, sizeof b, two, "model.h5");
    double d = max_param_diff(a, b);
    ck_assert_msg(d < 5e-5, "largest parameter difference 1 vs 2 ranks: %g", d);
    ck_assert_msg(d > 0.0, "bit-identical to one process: the tolerance comment above is stale");
    /* timing.json tells the ranks and the communication */
    in(a, sizeof a, two, "timing.json");
    t = slurp(a);
    ck_assert_ptr_nonnull(strstr(t, "\"ranks\":\t2"));
    ck_assert_ptr_nonnull(strstr(t, "\"gradient_sums\":\t6")); /* 2 epochs of 3 steps */
    fm_free(t);
    fm_test_rmtree(dir);
}
END_TEST

/* The pids of the processes whose parent is `parent`. */
static int children(pid_t parent, pid_t *out, int cap) {
    DIR *d = opendir("/proc");
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < cap) {
        char p[300], buf[512];
        snprintf(p, sizeof p, "/proc/%s/stat", e->d_name);
        FILE *f = fopen(p, "r");
        if (!f) continue;
        size_t k = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[k] = '\0';
        char *close = strrchr(buf, ')');
        int ppid;
        char state;
        if (close && sscanf(close + 1, " %c %d", &state, &ppid) == 2 && ppid == parent) out[n++] = atoi(e->d_name);
    }
    closedir(d);
    return n;
}

START_TEST(test_mpi_train_interrupt_one_rank_and_resume) {
    char dir[512], path[600], cut[600], whole[600], log[600], a[700], b[700];
    study(dir, sizeof dir, path, sizeof path, "patience = 0\ncheckpoint_every = 1\n");
    in(cut, sizeof cut, dir, "cut");
    in(whole, sizeof whole, dir, "whole");
    in(log, sizeof log, dir, "train.log");
    /* batches of 4: 12 steps per epoch, long enough to be interrupted */
    const char *args[] = {fm_study_cli(), "train", "--config", path, "--set", "train.batch_size=4", "--set", "train.epochs=8", "--out", cut,
                          "--quiet", NULL};
    pid_t mpirun = start(2, log, args);
    /* After the first epoch, SIGTERM to one rank only: every rank must stop at the same step. */
    in(a, sizeof a, cut, "epochs.csv");
    for (int i = 0; i < 3000 && !exists(a); i++) usleep(10000);
    ck_assert_msg(exists(a), "no epoch finished");
    pid_t ranks[8];
    int n = children(mpirun, ranks, 8);
    ck_assert_int_eq(n, 2);
    kill(ranks[1], SIGTERM);
    int rc = finish(mpirun);
    char *t = slurp(log);
    ck_assert_msg(rc == 3, "exit %d (expected 3, interrupted)\n%s", rc, t);
    ck_assert_ptr_nonnull(strstr(t, "checkpoint saved"));
    fm_free(t);
    in(a, sizeof a, cut, "checkpoint.h5");
    ck_assert(exists(a));
    in(a, sizeof a, cut, "metrics.json");
    ck_assert(!exists(a));
    const char *resume[] = {fm_study_cli(), "train", "--config", path, "--set", "train.batch_size=4", "--set", "train.epochs=8", "--out", cut,
                            "--resume", "--quiet", NULL};
    rc = run(2, log, resume);
    t = slurp(log);
    ck_assert_msg(rc == 0, "resume: exit %d\n%s", rc, t);
    fm_free(t);
    const char *once[] = {fm_study_cli(), "train", "--config", path, "--set", "train.batch_size=4", "--set", "train.epochs=8", "--out", whole,
                          "--quiet", NULL};
    ck_assert_int_eq(run(2, log, once), 0);
    const char *same[] = {"model.h5", "metrics.json", "predictions.csv"};
    for (int i = 0; i < 3; i++) {
        in(a, sizeof a, cut, same[i]);
        in(b, sizeof b, whole, same[i]);
        ck_assert_msg(fm_study_same_file(a, b), "%s: interrupted and resumed differs from uninterrupted", same[i]);
    }
    fm_test_rmtree(dir);
}
END_TEST

START_TEST(test_mpi_train_needs_accumulation) {
    char dir[512], path[600], out[600], log[600];
    fm_test_tmpdir(dir, sizeof dir);
    in(path, sizeof path, dir, "study.ini");
    fm_study_write(path, fm_study_cohort("cohort.h5"), NULL); /* accumulation 1 */
    in(out, sizeof out, dir, "run");
    in(log, sizeof log, dir, "train.log");
    const char *args[] = {fm_study_cli(), "train", "--config", path, "--out", out, "--quiet", NULL};
    int rc = run(2, log, args);
    char *t = slurp(log);
    ck_assert_msg(rc == 1, "exit %d\n%s", rc, t);
    ck_assert_msg(strstr(t, "[train] accumulation: 1, but 2 ranks") != NULL, "%s", t);
    fm_free(t);
    char model[700];
    in(model, sizeof model, out, "model.h5");
    ck_assert(!exists(model)); /* refused before any training */
    fm_test_rmtree(dir);
}
END_TEST

START_TEST(test_mpi_ablate_same_as_jobs) {
    char dir[512], path[600], grid[600], a[600], b[600], log[600], pa[700], pb[700];
    study(dir, sizeof dir, path, sizeof path, NULL);
    in(grid, sizeof grid, dir, "grid.ini");
    FILE *f = fopen(grid, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "[grid]\nstudy = study.ini\nseeds = 1, 2\nsplits = 0, 1\nmetrics = mortality.auroc, mortality.auprc\n"
               "[set]\ntrain.epochs = 1\n[axes]\nmodel.gate = laplace | softmax\neval.missing_rate = 0 | 0.5\n");
    fclose(f);
    in(a, sizeof a, dir, "jobs");
    in(b, sizeof b, dir, "ranks");
    in(log, sizeof log, dir, "ablate.log");
    FmError err;
    FmAblateResult res;
    FmAblateOptions o = {.grid_path = grid, .out_dir = a, .jobs = 2, .exe = fm_study_cli()};
    ck_assert_msg(fm_ablate_run(&o, &res, &err) == FM_OK, "%s: %s", err.where, err.message);
    fm_free(res.markdown);
    const char *args[] = {fm_study_cli(), "ablate", "--grid", grid, "--out", b, NULL};
    int rc = run(2, log, args);
    char *t = slurp(log);
    ck_assert_msg(rc == 0, "exit %d\n%s", rc, t);
    ck_assert_ptr_nonnull(strstr(t, "[8/8]")); /* 8 training runs, then 8 evaluations */
    fm_free(t);
    in(pa, sizeof pa, a, "results.md");
    in(pb, sizeof pb, b, "results.md");
    ck_assert_msg(fm_study_same_file(pa, pb), "results.md differs between --jobs 2 and 2 ranks");
    /* results.csv: the same but for the training seconds (last column) */
    in(pa, sizeof pa, a, "results.csv");
    in(pb, sizeof pb, b, "results.csv");
    char *ta = slurp(pa), *tb = slurp(pb);
    for (char *x = ta, *y = tb; x && y;) {
        char *ex = strchr(x, '\n'), *ey = strchr(y, '\n');
        char *cx = ex ? ex : x + strlen(x), *cy = ey ? ey : y + strlen(y);
        while (cx > x && *cx != ',') cx--;
        while (cy > y && *cy != ',') cy--;
        ck_assert_msg(cx - x == cy - y && memcmp(x, y, (size_t)(cx - x)) == 0, "results.csv rows differ");
        x = ex ? ex + 1 : NULL;
        y = ey ? ey + 1 : NULL;
        ck_assert((x == NULL) == (y == NULL));
    }
    fm_free(ta);
    fm_free(tb);
    fm_test_rmtree(dir);
}
END_TEST

START_TEST(test_mpi_single_process_commands) {
    char dir[512], log[600];
    fm_test_tmpdir(dir, sizeof dir);
    in(log, sizeof log, dir, "eval.log");
    const char *args[] = {fm_study_cli(), "eval", "--model", "m.h5", "--cohort", fm_study_cohort("cohort.h5"), "--out",
                          dir, NULL};
    int rc = run(2, log, args);
    char *t = slurp(log);
    ck_assert_msg(rc == 2, "exit %d\n%s", rc, t);
    ck_assert_ptr_nonnull(strstr(t, "fusemoe eval: runs as one process"));
    fm_free(t);
    fm_test_rmtree(dir);
}
END_TEST

static Suite *mpi_suite(void) {
    Suite *s = suite_create("mpi");
    TCase *tc = tcase_create("mpirun");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_mpi_ring);
    tcase_add_test(tc, test_mpi_train_matches_one_process);
    tcase_add_test(tc, test_mpi_train_interrupt_one_rank_and_resume);
    tcase_add_test(tc, test_mpi_train_needs_accumulation);
    tcase_add_test(tc, test_mpi_ablate_same_as_jobs);
    tcase_add_test(tc, test_mpi_single_process_commands);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    fm_study_setup();
    int rc = fm_test_run_suite(mpi_suite());
    fm_study_teardown();
    return rc;
}
