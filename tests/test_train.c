/* Training runs (src/train.h, src/train_spec.h, src/train_batch.h, src/train_model_file.h):
 * the run folder's files, determinism, resumption after SIGINT and SIGKILL, non-finite losses,
 * configuration errors located at their key, the training subset, class weights, LOS labels,
 * and allocation failures. Runs use a tiny model on a 160-stay synthetic cohort. */
#include <cJSON.h>
#include <check.h>
#include <hdf5.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "preprocessing/cohort.h"
#include "src/alloc.h"
#include "src/interrupt.h"
#include "src/train.h"
#include "src/train_batch.h"
#include "src/train_model_file.h"
#include "src/train_spec.h"
#include "tests/support/study_support.h"
#include "tests/support/testutil.h"

static void path_in(char *buf, size_t cap, const char *dir, const char *name) {
    snprintf(buf, cap, "%s/%s", dir, name);
}

static int exists(const char *dir, const char *name) {
    char p[1024];
    path_in(p, sizeof p, dir, name);
    struct stat st;
    return stat(p, &st) == 0;
}

/* Asserts that dir/name holds the same bytes in both folders. */
static void assert_same(const char *a, const char *b, const char *name) {
    char pa[1024], pb[1024];
    path_in(pa, sizeof pa, a, name);
    path_in(pb, sizeof pb, b, name);
    ck_assert_msg(fm_study_same_file(pa, pb), "%s differs between %s and %s", name, a, b);
}

static cJSON *load_json(const char *dir, const char *name) {
    char p[1024];
    path_in(p, sizeof p, dir, name);
    char *text = fm_study_read(p, NULL);
    ck_assert_ptr_nonnull(text);
    cJSON *j = cJSON_Parse(text);
    fm_free(text);
    ck_assert_ptr_nonnull(j);
    return j;
}

static const cJSON *get(const cJSON *o, const char *a, const char *b, const char *c) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, a);
    if (x && b) x = cJSON_GetObjectItemCaseSensitive(x, b);
    if (x && c) x = cJSON_GetObjectItemCaseSensitive(x, c);
    ck_assert_msg(x != NULL, "metrics.json lacks %s.%s.%s", a, b ? b : "", c ? c : "");
    return x;
}

/* A fresh folder with a study file on the main cohort. */
static void new_study(char *dir, size_t cap, char *study, size_t scap, const char *extra) {
    fm_test_tmpdir(dir, cap);
    snprintf(study, scap, "%s/study.ini", dir);
    fm_study_write(study, fm_study_cohort("cohort.h5"), extra);
}

START_TEST(test_train_run_folder) {
    char dir[512], study[600], out[600];
    new_study(dir, sizeof dir, study, sizeof study, NULL);
    snprintf(out, sizeof out, "%s/run", dir);
    FmError err;
    ck_assert_msg(fm_study_train(study, NULL, 0, out, 0, NULL, NULL, &err) == FM_OK, "%s: %s", err.where, err.message);
    const char *files[] = {"config.ini", "epochs.csv", "model.h5", "predictions.csv", "metrics.json", "timing.json"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) ck_assert_msg(exists(out, files[i]), "%s missing", files[i]);
    ck_assert_msg(!exists(out, "checkpoint.h5"), "the checkpoint of a complete run is removed");

    /* predictions.csv: the header, then one row per test stay and known label */
    char p[1024];
    path_in(p, sizeof p, out, "predictions.csv");
    char *text = fm_study_read(p, NULL);
    ck_assert_ptr_nonnull(text);
    ck_assert_msg(strncmp(text, "stay_id,task,y_true,y_score\n", 28) == 0, "header: %.40s", text);
    FmCohort c;
    ck_assert_int_eq(fm_cohort_load(fm_study_cohort("cohort.h5"), &c, &err), FM_OK);
    int64_t *test, n_test;
    ck_assert_int_eq(fm_cohort_split_stays(&c, 0, FM_PART_TEST, &test, &n_test, &err), FM_OK);
    long known = 0;
    for (int64_t i = 0; i < n_test; i++)
        for (int j = 0; j < c.n_labels; j++) {
            const char *task = c.label_info[j].task, *name = c.label_info[j].name;
            int used = strcmp(name, "mortality") == 0 || strcmp(name, "los_log_days") == 0 || strcmp(task, "phenotype") == 0;
            known += used && c.label_mask[test[i] * c.n_labels + j];
        }
    ck_assert_int_eq(fm_study_lines(p), known + 1);
    /* a row: stay id of a test stay, a label name, 0/1 and a probability */
    long long id;
    char task[64];
    double y, s;
    ck_assert_int_eq(sscanf(text + 28, "%lld,%63[^,],%lf,%lf", &id, task, &y, &s), 4);
    ck_assert_int_eq(id, c.stay_id[test[0]]);
    ck_assert_str_eq(task, "mortality");
    ck_assert(y == 0.0 || y == 1.0);
    ck_assert(s > 0.0 && s < 1.0);
    fm_free(text);

    /* metrics.json: the run, each task's metrics with intervals, the configuration */
    cJSON *m = load_json(out, "metrics.json");
    ck_assert_int_eq(get(m, "run", "n_stays", NULL)->valueint, (int)n_test);
    ck_assert_str_eq(get(m, "run", "part", NULL)->valuestring, "test");
    const char *binary[] = {"auroc", "auprc", "f1", "f1_at_0.5", "brier", "ece"};
    for (size_t i = 0; i < 6; i++) {
        const cJSON *v = get(m, "tasks", "mortality", binary[i]);
        ck_assert_msg(cJSON_IsNumber(cJSON_GetObjectItem(v, "ci_low")), "mortality.%s has no interval", binary[i]);
        ck_assert_int_eq(cJSON_GetObjectItem(v, "replicates")->valueint > 0, 1);
    }
    ck_assert(cJSON_IsNumber(get(m, "tasks", "mortality", "threshold")));
    const char *multi[] = {"macro_auroc", "micro_auroc", "macro_f1", "macro_f1_at_0.5"};
    for (size_t i = 0; i < 4; i++)
        ck_assert_msg(cJSON_IsNumber(cJSON_GetObjectItem(get(m, "tasks", "phenotypes", multi[i]), "ci_high")),
                      "phenotypes.%s has no interval", multi[i]);
    ck_assert(cJSON_IsObject(get(m, "tasks", "phenotypes", "per_label")));
    const char *reg[] = {"mae", "rmse", "r2", "mae_days"};
    for (size_t i = 0; i < 4; i++) ck_assert(cJSON_IsObject(get(m, "tasks", "los_regression", reg[i])));
    ck_assert_int_eq(get(m, "config", "model", "experts")->valueint, 4);
    /* the expert diagnostics of the test stays: per layer and their means, in range */
    const cJSON *experts = cJSON_GetObjectItem(m, "experts");
    const cJSON *layers = cJSON_GetObjectItem(experts, "layers");
    ck_assert_int_eq(cJSON_GetArraySize(layers), get(m, "config", "model", "layers")->valueint);
    const double entropy = get(m, "experts", "entropy", NULL)->valuedouble;
    const double similarity = get(m, "experts", "similarity", NULL)->valuedouble;
    const double agreement = get(m, "experts", "agreement", NULL)->valuedouble;
    ck_assert(entropy > 0.0 && entropy <= 1.0);
    ck_assert(similarity >= -1.0 && similarity <= 1.0);
    ck_assert(agreement >= 0.0 && agreement <= 1.0);
    ck_assert(get(m, "experts", "dead", NULL)->valuedouble >= 0.0);
    cJSON_Delete(m);

    /* epochs.csv: header and one row per epoch */
    path_in(p, sizeof p, out, "epochs.csv");
    ck_assert_int_eq(fm_study_lines(p), 3);
    text = fm_study_read(p, NULL);
    ck_assert_msg(strncmp(text, "epoch,lr,train_loss,train_task_loss,train_mortality_loss,", 57) == 0, "%.80s", text);
    ck_assert_ptr_nonnull(strstr(text, ",val_mortality_auroc,"));
    ck_assert_ptr_nonnull(strstr(text, ",l0_entropy,l0_dead,l0_similarity,l0_agreement\n"));
    fm_free(text);
    fm_free(test);
    fm_cohort_free(&c);
    fm_test_rmtree(dir);
}
END_TEST

START_TEST(test_train_deterministic) {
    char dir[512], study[600], a[600], b[600];
    new_study(dir, sizeof dir, study, sizeof study, NULL);
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    FmError err;
    ck_assert_int_eq(fm_study_train(study, NULL, 0, a, 0, NULL, NULL, &err), FM_OK);
    sleep(1); /* a second apart, so that a modification time stored anywhere would show */
    ck_assert_int_eq(fm_study_train(study, NULL, 0, b, 0, NULL, NULL, &err), FM_OK);
    assert_same(a, b, "model.h5");
    assert_same(a, b, "metrics.json");
    assert_same(a, b, "predictions.csv");
    /* Another seed gives another model (the comparison can fail). */
    const char *seed[] = {"train.seed=2"};
    snprintf(b, sizeof b, "%s/c", dir);
    ck_assert_int_eq(fm_study_train(study, seed, 1, b, 0, NULL, NULL, &err), FM_OK);
    char pa[1024], pb[1024];
    path_in(pa, sizeof pa, a, "model.h5");
    path_in(pb, sizeof pb, b, "model.h5");
    ck_assert(!fm_study_same_file(pa, pb));
    fm_test_rmtree(dir);
}
END_TEST

/* An observer that sends the process a real signal after optimiser step `at`. */
typedef struct {
    long at;
    int sig;
} SignalAt;

static void signal_at(void *ctx, const FmTrainEvent *ev) {
    SignalAt *s = ctx;
    if (ev->kind == FM_TRAIN_EVENT_STEP && ev->step == s->at) raise(s->sig);
}

/* 3 epochs of 6 optimiser steps (96 training stays, batches of 16), a checkpoint every 4 steps. */
static const char *const LONGER[] = {"train.epochs=3", "train.checkpoint_every=4"};

START_TEST(test_train_resume_after_sigint) {
    char dir[512], study[600], ref[600], out[600];
    new_study(dir, sizeof dir, study, sizeof study, NULL);
    snprintf(ref, sizeof ref, "%s/ref", dir);
    snprintf(out, sizeof out, "%s/run", dir);
    FmError err;
    ck_assert_int_eq(fm_study_train(study, LONGER, 2, ref, 0, NULL, NULL, &err), FM_OK);
    fm_interrupt_install();
    SignalAt s = {8, SIGINT}; /* inside epoch 2 */
    FmStatus st = fm_study_train(study, LONGER, 2, out, 0, signal_at, &s, &err);
    ck_assert_int_eq(st, FM_ERR_INTERRUPTED);
    ck_assert_ptr_nonnull(strstr(err.message, "after optimiser step 8"));
    ck_assert(exists(out, "checkpoint.h5"));
    ck_assert(!exists(out, "metrics.json"));
    fm_interrupt_clear();
    ck_assert_int_eq(fm_study_train(study, LONGER, 2, out, 1, NULL, NULL, &err), FM_OK);
    assert_same(ref, out, "model.h5");
    assert_same(ref, out, "metrics.json");
    assert_same(ref, out, "predictions.csv");
    fm_test_rmtree(dir);
}
END_TEST

START_TEST(test_train_resume_after_sigkill) {
    char dir[512], study[600], ref[600], out[600];
    new_study(dir, sizeof dir, study, sizeof study, NULL);
    snprintf(ref, sizeof ref, "%s/ref", dir);
    snprintf(out, sizeof out, "%s/run", dir);
    FmError err;
    ck_assert_int_eq(fm_study_train(study, LONGER, 2, ref, 0, NULL, NULL, &err), FM_OK);
    /* A child process trains and is killed by SIGKILL after step 15 (epoch 3); its last
     * checkpoint is from the end of epoch 2 (step 12). */
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        SignalAt s = {15, SIGKILL};
        fm_study_train(study, LONGER, 2, out, 0, signal_at, &s, &err);
        _exit(0); /* not reached */
    }
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL, "the child was not killed (status %d)", status);
    ck_assert(exists(out, "checkpoint.h5"));
    ck_assert(!exists(out, "metrics.json"));
    ck_assert_int_eq(fm_study_train(study, LONGER, 2, out, 1, NULL, NULL, &err), FM_OK);
    assert_same(ref, out, "model.h5");
    assert_same(ref, out, "metrics.json");
    assert_same(ref, out, "predictions.csv");
    fm_test_rmtree(dir);
}
END_TEST

/* Competition (CompeteSMoE): the schedule draws per optimiser step, the epoch log carries the
 * competition columns, and an interrupted run resumes to the same model. */
START_TEST(test_train_competition) {
    char dir[512], study[600], ref[600], out[600], p[700];
    new_study(dir, sizeof dir, study, sizeof study,
              "[competition]\nenabled = true\nomega = 0.5\nwarmup_fraction = 0.1\n");
    snprintf(ref, sizeof ref, "%s/ref", dir);
    snprintf(out, sizeof out, "%s/run", dir);
    FmError err;
    ck_assert_msg(fm_study_train(study, LONGER, 2, ref, 0, NULL, NULL, &err) == FM_OK, "%s: %s", err.where,
                  err.message);
    path_in(p, sizeof p, ref, "epochs.csv");
    char *text = fm_study_read(p, NULL);
    ck_assert_ptr_nonnull(strstr(text, ",train_entropy,compete_layer_steps,train_compete_router,"));
    ck_assert_ptr_nonnull(strstr(text, ",l0_dead,l0_similarity,l0_agreement\n"));
    /* one layer, omega 0.5 over 18 steps after a 2-step warm-up: some steps competed */
    long competed = 0;
    int col = 0; /* the column of compete_layer_steps */
    for (char *q = text; strncmp(q, "compete_layer_steps", 19) != 0; q++) col += *q == ',';
    for (char *line = strchr(text, '\n') + 1; *line; line = strchr(line, '\n') + 1) {
        char *c = line;
        for (int k = 0; k < col; k++) c = strchr(c, ',') + 1;
        competed += strtol(c, NULL, 10);
    }
    ck_assert_msg(competed > 3 && competed < 18, "%ld layer-steps competed", competed);
    fm_free(text);
    fm_interrupt_install();
    SignalAt s = {9, SIGINT};
    ck_assert_int_eq(fm_study_train(study, LONGER, 2, out, 0, signal_at, &s, &err), FM_ERR_INTERRUPTED);
    fm_interrupt_clear();
    ck_assert_int_eq(fm_study_train(study, LONGER, 2, out, 1, NULL, NULL, &err), FM_OK);
    assert_same(ref, out, "model.h5");
    assert_same(ref, out, "metrics.json");
    /* and competition changes the model */
    char plain[600];
    snprintf(plain, sizeof plain, "%s/plain", dir);
    const char *off[] = {"train.epochs=3", "train.checkpoint_every=4", "competition.enabled=false"};
    ck_assert_int_eq(fm_study_train(study, off, 3, plain, 0, NULL, NULL, &err), FM_OK);
    char pa[700], pb[700];
    path_in(pa, sizeof pa, ref, "model.h5");
    path_in(pb, sizeof pb, plain, "model.h5");
    ck_assert(!fm_study_same_file(pa, pb));
    fm_test_rmtree(dir);
}
END_TEST

/* The CLI: SIGTERM from outside saves a checkpoint and exits with status 3; --resume ends the
 * run. */
START_TEST(test_train_cli_interrupt_status) {
    char dir[512], study[600], out[600], log[600];
    new_study(dir, sizeof dir, study, sizeof study, NULL);
    snprintf(out, sizeof out, "%s/run", dir);
    snprintf(log, sizeof log, "%s/log", dir);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        freopen(log, "w", stderr);
        freopen("/dev/null", "w", stdout);
        execl(fm_study_cli(), "fusemoe", "train", "--config", study, "--out", out, "--set", "train.epochs=400",
              "--set", "train.batch_size=4", "--set", "train.checkpoint_every=1", (char *)NULL);
        _exit(127);
    }
    /* Wait for the first checkpoint: the run is then under way (400 epochs take seconds). */
    for (int i = 0; i < 20000 && !exists(out, "checkpoint.h5"); i++) usleep(500);
    ck_assert(exists(out, "checkpoint.h5"));
    kill(pid, SIGTERM);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 3, "status %d", status);
    char *text = fm_study_read(log, NULL);
    ck_assert_ptr_nonnull(strstr(text, "fusemoe train: "));
    ck_assert_ptr_nonnull(strstr(text, "interrupted by signal 15"));
    fm_free(text);
    ck_assert(!exists(out, "metrics.json"));
    fm_test_rmtree(dir);
}
END_TEST

/* A NaN in the parameters (a corrupted checkpoint) makes the loss non-finite: the run stops
 * naming the epoch and step, and the checkpoint is left as it was. */
START_TEST(test_train_nonfinite_loss) {
    char dir[512], study[600], out[600], ckpt[700];
    new_study(dir, sizeof dir, study, sizeof study, NULL);
    snprintf(out, sizeof out, "%s/run", dir);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.h5", out);
    FmError err;
    fm_interrupt_install();
    SignalAt s = {3, SIGINT};
    ck_assert_int_eq(fm_study_train(study, LONGER, 2, out, 0, signal_at, &s, &err), FM_ERR_INTERRUPTED);
    fm_interrupt_clear();
    hid_t f = H5Fopen(ckpt, H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    hid_t d = H5Dopen2(f, "params/embedding.type", H5P_DEFAULT);
    ck_assert_int_ge(d, 0);
    float nan[2 * 5 * 8];
    for (size_t i = 0; i < sizeof nan / sizeof *nan; i++) nan[i] = NAN;
    hid_t space = H5Dget_space(d);
    ck_assert_int_eq((int)H5Sget_simple_extent_npoints(space), 5 * 8);
    ck_assert_int_ge(H5Dwrite(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, nan), 0);
    H5Sclose(space);
    H5Dclose(d);
    H5Fclose(f);
    size_t before_len;
    char *before = fm_study_read(ckpt, &before_len);
    FmStatus st = fm_study_train(study, LONGER, 2, out, 1, NULL, NULL, &err);
    ck_assert_int_eq(st, FM_ERR_NUMERIC);
    ck_assert_msg(strstr(err.message, "epoch 1, optimiser step 4") && strstr(err.message, "not finite") &&
                      strstr(err.message, "checkpoint"),
                  "%s", err.message);
    size_t after_len;
    char *after = fm_study_read(ckpt, &after_len);
    ck_assert(after && before_len == after_len && memcmp(before, after, after_len) == 0);
    ck_assert(!exists(out, "metrics.json"));
    fm_free(before);
    fm_free(after);
    fm_test_rmtree(dir);
}
END_TEST

/* The line of `needle` in the file (1-based). */
static int line_of(const char *path, const char *needle) {
    char *text = fm_study_read(path, NULL);
    char *at = strstr(text, needle);
    ck_assert_ptr_nonnull(at);
    int line = 1;
    for (char *p = text; p < at; p++) line += *p == '\n';
    fm_free(text);
    return line;
}

typedef struct {
    const char *cohort;   /* cohort file name in the study folder */
    const char *extra;    /* study lines */
    const char *set;      /* an override, or NULL */
    const char *at_line;  /* the text of the line the error names (NULL: the override) */
    const char *message;  /* expected in the message */
    FmStatus code;
} ConfigCase;

static const ConfigCase CONFIG_CASES[] = {
    {"cohort.h5", "[data]\nmodalities = vitals, ecg\n", NULL, "modalities = vitals, ecg",
     "[data] modalities: the cohort", FM_ERR_CONFIG},
    {"cohort_nophe.h5", NULL, NULL, "tasks = mortality", "[data] tasks: task phenotypes: the cohort", FM_ERR_CONFIG},
    {"cohort.h5", NULL, "model.top_k=5", NULL, "5 is more than model.experts (4)", FM_ERR_CONFIG},
    {"cohort.h5", "[model]\ndropout = high\n", NULL, "dropout = high", "[model] dropout: expected a number", FM_ERR_CONFIG},
    {"cohort.h5", "[train]\nlr = 5\n", NULL, "lr = 5", "[train] lr: 5 is out of range", FM_ERR_CONFIG},
    {"cohort.h5", "[model]\nexpertz = 4\n", NULL, "expertz = 4", "did you mean \"experts\"", FM_ERR_CONFIG},
    {"cohort.h5", "[data]\nsplit = 7\n", NULL, "split = 7", "[data] split: 7, but the cohort", FM_ERR_CONFIG},
    {"cohort.h5", "[competition]\nomega = 2\n", NULL, "omega = 2", "[competition] omega: 2 is out of range",
     FM_ERR_CONFIG},
    {"cohort.h5", "[model]\nrouter = disjoint\n", NULL, "experts = 4", "[model] experts: 4 experts do not divide",
     FM_ERR_CONFIG},
    {"cohort.h5", NULL, "train.task_weights=1, 2", NULL, "2 weights for 3 tasks", FM_ERR_CONFIG},
};

START_TEST(test_train_config_errors) {
    const ConfigCase *k = &CONFIG_CASES[_i];
    char dir[512], study[600], out[600];
    fm_test_tmpdir(dir, sizeof dir);
    snprintf(study, sizeof study, "%s/study.ini", dir);
    fm_study_write(study, fm_study_cohort(k->cohort), k->extra);
    snprintf(out, sizeof out, "%s/run", dir);
    FmError err;
    const char *sets[1] = {k->set};
    FmStatus st = fm_study_train(study, sets, k->set ? 1 : 0, out, 0, NULL, NULL, &err);
    ck_assert_msg(st == k->code, "case %d: status %d (%s: %s)", _i, st, err.where, err.message);
    char where[700];
    if (k->at_line)
        snprintf(where, sizeof where, "%s:%d", study, line_of(study, k->at_line));
    else
        snprintf(where, sizeof where, "--set %.*s", (int)strcspn(k->set, "="), k->set);
    ck_assert_msg(strcmp(err.where, where) == 0, "case %d: where \"%s\", expected \"%s\"", _i, err.where, where);
    ck_assert_msg(strstr(err.message, k->message) != NULL, "case %d: message \"%s\" lacks \"%s\"", _i, err.message,
                  k->message);
    /* Nothing was started: the run folder was not even created. */
    struct stat sb;
    ck_assert_msg(stat(out, &sb) != 0, "case %d: the run folder exists", _i);
    fm_test_rmtree(dir);
}
END_TEST

START_TEST(test_train_refuses_occupied_folder) {
    char dir[512], study[600], out[600];
    new_study(dir, sizeof dir, study, sizeof study, NULL);
    snprintf(out, sizeof out, "%s/run", dir);
    FmError err;
    ck_assert_int_eq(fm_study_train(study, NULL, 0, out, 0, NULL, NULL, &err), FM_OK);
    ck_assert_int_eq(fm_study_train(study, NULL, 0, out, 0, NULL, NULL, &err), FM_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(err.message, "--resume"));
    /* --resume on a complete run does nothing */
    char model[700];
    path_in(model, sizeof model, out, "model.h5");
    struct stat a, b;
    ck_assert_int_eq(stat(model, &a), 0);
    ck_assert_int_eq(fm_study_train(study, NULL, 0, out, 1, NULL, NULL, &err), FM_OK);
    ck_assert_int_eq(stat(model, &b), 0);
    ck_assert(a.st_ino == b.st_ino && a.st_mtime == b.st_mtime);
    /* ... unless it was made with another configuration */
    const char *other[] = {"train.lr=1e-3"};
    ck_assert_int_eq(fm_study_train(study, other, 1, out, 1, NULL, NULL, &err), FM_ERR_MISMATCH);
    ck_assert_ptr_nonnull(strstr(err.message, "train.lr = 0.0004, now train.lr = 0.001"));
    fm_test_rmtree(dir);
}
END_TEST

START_TEST(test_train_resume_refuses_other_config) {
    char dir[512], study[600], out[600];
    new_study(dir, sizeof dir, study, sizeof study, NULL);
    snprintf(out, sizeof out, "%s/run", dir);
    FmError err;
    fm_interrupt_install();
    SignalAt s = {2, SIGINT};
    ck_assert_int_eq(fm_study_train(study, LONGER, 2, out, 0, signal_at, &s, &err), FM_ERR_INTERRUPTED);
    fm_interrupt_clear();
    const char *other[] = {"train.epochs=3", "train.checkpoint_every=4", "model.gate=softmax"};
    ck_assert_int_eq(fm_study_train(study, other, 3, out, 1, NULL, NULL, &err), FM_ERR_MISMATCH);
    ck_assert_ptr_nonnull(strstr(err.message, "cannot resume: the run was made with model.gate = laplace, now model.gate = softmax"));
    /* threads and the checkpoint interval may change */
    const char *threads[] = {"train.epochs=3", "train.checkpoint_every=5", "train.threads=1"};
    ck_assert_int_eq(fm_study_train(study, threads, 3, out, 1, NULL, NULL, &err), FM_OK);
    fm_test_rmtree(dir);
}
END_TEST

/* train_fraction keeps round(f n) stays of each mortality stratum (at least one). */
START_TEST(test_train_fraction) {
    char dir[512], study[600], out[600];
    new_study(dir, sizeof dir, study, sizeof study, NULL);
    snprintf(out, sizeof out, "%s/run", dir);
    FmError err;
    const char *sets[] = {"train.train_fraction=0.3", "train.epochs=1"};
    ck_assert_int_eq(fm_study_train(study, sets, 2, out, 0, NULL, NULL, &err), FM_OK);
    FmCohort c;
    ck_assert_int_eq(fm_cohort_load(fm_study_cohort("cohort.h5"), &c, &err), FM_OK);
    int64_t *train, n;
    ck_assert_int_eq(fm_cohort_split_stays(&c, 0, FM_PART_TRAIN, &train, &n, &err), FM_OK);
    int col = fm_cohort_find_label(&c, "mortality");
    long count[3] = {0, 0, 0};
    for (int64_t i = 0; i < n; i++) {
        size_t at = (size_t)train[i] * c.n_labels + col;
        count[c.label_mask[at] ? (c.label[at] > 0.5f) : 2]++;
    }
    long expected = 0;
    for (int s = 0; s < 3; s++)
        if (count[s]) expected += llround(0.3 * count[s]) > 0 ? llround(0.3 * count[s]) : 1;
    cJSON *m = load_json(out, "metrics.json");
    ck_assert_int_eq(get(m, "run", "n_train_stays", NULL)->valueint, expected);
    ck_assert_int_lt(expected, n);
    cJSON_Delete(m);
    fm_free(train);
    fm_cohort_free(&c);
    fm_test_rmtree(dir);
}
END_TEST

/* balanced: the positive weight of mortality is negatives / positives of the training stays. */
START_TEST(test_train_class_weights) {
    char dir[512], study[600], out[600], model_path[700];
    new_study(dir, sizeof dir, study, sizeof study, NULL);
    snprintf(out, sizeof out, "%s/run", dir);
    FmError err;
    const char *sets[] = {"train.class_weighting=balanced", "train.epochs=1"};
    ck_assert_int_eq(fm_study_train(study, sets, 2, out, 0, NULL, NULL, &err), FM_OK);
    FmCohort c;
    ck_assert_int_eq(fm_cohort_load(fm_study_cohort("cohort.h5"), &c, &err), FM_OK);
    int64_t *train, n;
    ck_assert_int_eq(fm_cohort_split_stays(&c, 0, FM_PART_TRAIN, &train, &n, &err), FM_OK);
    int col = fm_cohort_find_label(&c, "mortality");
    long pos = 0, neg = 0;
    for (int64_t i = 0; i < n; i++) {
        size_t at = (size_t)train[i] * c.n_labels + col;
        if (c.label_mask[at]) c.label[at] > 0.5f ? pos++ : neg++;
    }
    FmModel *model;
    FmNorm norm;
    FmTrainInfo info;
    path_in(model_path, sizeof model_path, out, "model.h5");
    ck_assert_int_eq(fm_train_model_load(model_path, &model, &norm, &info, &err), FM_OK);
    ck_assert_str_eq(model->cfg.task[0].name, "mortality");
    ck_assert(pos > 0 && neg > pos);
    ck_assert_float_eq(model->cfg.task[0].pos_weight, (float)((double)neg / (double)pos));
    fm_model_free(model);
    fm_norm_free(&norm);
    fm_train_info_free(&info);
    fm_free(train);
    fm_cohort_free(&c);
    fm_test_rmtree(dir);
}
END_TEST

/* los_binary at the cohort's threshold reads its column; at another one it is derived from
 * los_log_days, and predictions.csv carries the derived labels. */
START_TEST(test_train_los_threshold) {
    FmCohort c;
    FmError err;
    ck_assert_int_eq(fm_cohort_load(fm_study_cohort("cohort.h5"), &c, &err), FM_OK);
    FmConfig cfg;
    ck_assert_int_eq(fm_config_init(&cfg, &err), FM_OK);
    ck_assert_int_eq(fm_config_apply_set(&cfg, "data.tasks=los_binary", &err), FM_OK);
    FmTrainSpec spec;
    ck_assert_int_eq(fm_train_spec_from_config(&cfg, &c, "c.h5", &spec, &err), FM_OK);
    ck_assert_str_eq(spec.label[0].name, "los_gt_7d");
    ck_assert_int_eq(spec.label[0].derived, 0);
    ck_assert_int_eq(spec.label[0].column, fm_cohort_find_label(&c, "los_gt_7d"));
    ck_assert_int_eq(fm_config_apply_set(&cfg, "data.los_threshold_days=3", &err), FM_OK);
    ck_assert_int_eq(fm_train_spec_from_config(&cfg, &c, "c.h5", &spec, &err), FM_OK);
    ck_assert_str_eq(spec.label[0].name, "los_gt_3d");
    ck_assert_int_eq(spec.label[0].derived, 1);
    int log_col = fm_cohort_find_label(&c, "los_log_days");
    ck_assert_int_eq(spec.label[0].column, log_col);
    /* The derived label agrees with LOS > 3 days for every stay, and the stored column at 7. */
    int col7 = fm_cohort_find_label(&c, "los_gt_7d");
    long positives = 0, known = 0;
    for (int64_t i = 0; i < c.N; i++) {
        float y;
        int k = fm_train_spec_label(&spec, &c, i, 0, &y);
        ck_assert_int_eq(k, c.label_mask[i * c.n_labels + log_col]);
        if (!k) continue;
        double days = exp((double)c.label[i * c.n_labels + log_col]) - c.settings.los_log_offset_days;
        ck_assert_msg((y == 1.0f) == (days > 3.0 + 1e-4) || fabs(days - 3.0) < 1e-4, "stay %lld: %g days, label %g",
                      (long long)i, days, (double)y);
        if (c.label[i * c.n_labels + col7] == 1.0f) ck_assert_float_eq(y, 1.0f);
        positives += y == 1.0f;
        known++;
    }
    ck_assert(positives > 0 && positives < known);
    fm_config_free(&cfg);

    char dir[512], study[600], out[600], p[700];
    new_study(dir, sizeof dir, study, sizeof study, NULL);
    snprintf(out, sizeof out, "%s/run", dir);
    const char *sets[] = {"data.tasks=los_binary", "data.los_threshold_days=3", "train.epochs=1"};
    ck_assert_int_eq(fm_study_train(study, sets, 3, out, 0, NULL, NULL, &err), FM_OK);
    path_in(p, sizeof p, out, "predictions.csv");
    char *text = fm_study_read(p, NULL);
    ck_assert_ptr_nonnull(strstr(text, ",los_gt_3d,"));
    fm_free(text);
    fm_cohort_free(&c);
    fm_test_rmtree(dir);
}
END_TEST

typedef struct {
    long steps;
} CountSteps;

static void count_steps(void *ctx, const FmTrainEvent *ev) {
    if (ev->kind == FM_TRAIN_EVENT_STEP) ((CountSteps *)ctx)->steps++;
}

/* Gradient accumulation: 2 batches of 8 averaged per step train as batches of 16 when nothing
 * couples the stays of a batch (no dropout, no routing noise, no balance loss, every label
 * known), up to the rounding of differently shaped products. */
START_TEST(test_train_accumulation) {
    char dir[512], study[600], a[600], b[600], pa[700], pb[700];
    new_study(dir, sizeof dir, study, sizeof study,
              "[model]\ndropout = 0\nnoisy_gating = false\nbalance_coef = 0\n");
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    const char *big[] = {"data.tasks=mortality", "train.batch_size=16"};
    const char *acc[] = {"data.tasks=mortality", "train.batch_size=8", "train.accumulation=2"};
    FmError err;
    CountSteps na = {0}, nb = {0};
    ck_assert_int_eq(fm_study_train(study, big, 2, a, 0, count_steps, &na, &err), FM_OK);
    ck_assert_int_eq(fm_study_train(study, acc, 3, b, 0, count_steps, &nb, &err), FM_OK);
    ck_assert_int_eq(na.steps, 2 * 6); /* 96 training stays: 6 steps per epoch either way */
    ck_assert_int_eq(nb.steps, 2 * 6);
    /* The test predictions of the two models. */
    snprintf(pa, sizeof pa, "%s/predictions.csv", a);
    snprintf(pb, sizeof pb, "%s/predictions.csv", b);
    FILE *fa = fopen(pa, "r"), *fb = fopen(pb, "r");
    ck_assert(fa && fb);
    char la[256], lb[256];
    double worst = 0.0;
    long rows = 0;
    while (fgets(la, sizeof la, fa) && fgets(lb, sizeof lb, fb)) {
        double sa, sb;
        if (sscanf(la, "%*d,%*[^,],%*f,%lf", &sa) != 1 || sscanf(lb, "%*d,%*[^,],%*f,%lf", &sb) != 1)
            continue; /* the header */
        rows++;
        if (fabs(sa - sb) > worst) worst = fabs(sa - sb);
    }
    fclose(fa);
    fclose(fb);
    ck_assert_int_gt(rows, 10);
    /* observed 1e-07 (the rounding of the printed probabilities); batches of 8 without
     * accumulation differ from batches of 16 by up to 0.079 */
    ck_assert_msg(worst < 1e-3, "largest probability difference %g", worst);
    fm_test_rmtree(dir);
}
END_TEST

/* Every allocation of the batch buffers and of the model file's save and load, failed in turn. */
START_TEST(test_train_alloc_failure) {
    FmCohort c;
    FmError err;
    ck_assert_int_eq(fm_cohort_load(fm_study_cohort("cohort.h5"), &c, &err), FM_OK);
    FmConfig cfg;
    ck_assert_int_eq(fm_config_init(&cfg, &err), FM_OK);
    ck_assert_int_eq(fm_config_apply_set(&cfg, "model.d_model=8", &err), FM_OK);
    ck_assert_int_eq(fm_config_apply_set(&cfg, "model.time_dim=8", &err), FM_OK);
    ck_assert_int_eq(fm_config_apply_set(&cfg, "model.experts=4", &err), FM_OK);
    ck_assert_int_eq(fm_config_apply_set(&cfg, "model.top_k=2", &err), FM_OK);
    ck_assert_int_eq(fm_config_apply_set(&cfg, "data.tasks=mortality, phenotypes", &err), FM_OK);
    FmTrainSpec spec;
    ck_assert_int_eq(fm_train_spec_from_config(&cfg, &c, "c.h5", &spec, &err), FM_OK);
    int ok = 0;
    for (long n = 1; !ok; n++) {
        FmTrainBatch tb;
        fm_alloc_fail_after(n);
        FmStatus st = fm_train_batch_alloc(&tb, &c, &spec, 8, &err);
        fm_alloc_fail_reset();
        if (st == FM_OK) {
            ok = 1;
            fm_train_batch_free(&tb);
        } else {
            ck_assert_int_eq(st, FM_ERR_NOMEM);
            ck_assert_ptr_null(tb.label); /* zeroed: nothing left allocated */
        }
        ck_assert_int_lt(n, 1000);
    }
    FmModel *model;
    ck_assert_int_eq(fm_model_create(&model, &spec.model, 0, &err), FM_OK);
    fm_model_init(model, 1);
    FmTrainInfo info;
    memset(&info, 0, sizeof info);
    info.n_labels = spec.n_labels;
    for (int j = 0; j < spec.n_labels; j++) {
        snprintf(info.label_name[j], sizeof info.label_name[j], "%s", spec.label[j].name);
        info.threshold[j] = 0.25;
    }
    info.config_text = fm_strdup("[train]\nbatch_size = 8\n");
    char dir[512], path[600];
    fm_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/model.h5", dir);
    ok = 0;
    for (long n = 1; !ok; n++) {
        fm_alloc_fail_after(n);
        FmStatus st = fm_train_model_save(path, model, &c, 0, &spec, &info, &err);
        fm_alloc_fail_reset();
        struct stat sb;
        if (st == FM_OK) ok = 1;
        else ck_assert_msg(stat(path, &sb) != 0, "a failed save left %s", path);
        ck_assert_int_lt(n, 1000);
    }
    ok = 0;
    for (long n = 1; !ok; n++) {
        FmModel *back = NULL;
        FmNorm norm;
        FmTrainInfo got;
        fm_alloc_fail_after(n);
        FmStatus st = fm_train_model_load(path, &back, &norm, &got, &err);
        fm_alloc_fail_reset();
        if (st == FM_OK) {
            ok = 1;
            ck_assert_int_eq(got.n_labels, spec.n_labels);
            ck_assert_str_eq(got.label_ptr[1], spec.label[1].name);
            ck_assert(got.threshold[0] == 0.25);
            ck_assert_int_eq(norm.M, spec.model.M);
            fm_model_free(back);
            fm_norm_free(&norm);
            fm_train_info_free(&got);
        } else {
            ck_assert_ptr_null(back);
            ck_assert_ptr_null(norm.mod);
        }
        ck_assert_int_lt(n, 5000);
    }
    fm_train_info_free(&info);
    fm_model_free(model);
    fm_config_free(&cfg);
    fm_cohort_free(&c);
    fm_test_rmtree(dir);
}
END_TEST

/* A tuning run (train.report_part = val): metrics.json and predictions.csv are those of the
 * validation part, the reported AUPRC is the value the best epoch was selected by, and no
 * test stay is scored. */
START_TEST(test_train_reports_validation_part) {
    char dir[512], study[600], out[600], p[1024];
    new_study(dir, sizeof dir, study, sizeof study, NULL);
    snprintf(out, sizeof out, "%s/run", dir);
    FmError err;
    const char *sets[] = {"data.tasks=mortality", "train.report_part=val", "train.epochs=2"};
    ck_assert_msg(fm_study_train(study, sets, 3, out, 0, NULL, NULL, &err) == FM_OK, "%s: %s", err.where, err.message);
    FmCohort c;
    ck_assert_int_eq(fm_cohort_load(fm_study_cohort("cohort.h5"), &c, &err), FM_OK);
    int64_t *val, n_val;
    ck_assert_int_eq(fm_cohort_split_stays(&c, 0, FM_PART_VAL, &val, &n_val, &err), FM_OK);
    cJSON *m = load_json(out, "metrics.json");
    ck_assert_str_eq(get(m, "run", "part", NULL)->valuestring, "val");
    ck_assert_int_eq(get(m, "run", "n_stays", NULL)->valueint, (int)n_val);
    ck_assert_double_eq_tol(cJSON_GetObjectItem(get(m, "tasks", "mortality", "auprc"), "value")->valuedouble,
                            get(m, "run", "select_value", NULL)->valuedouble, 1e-9);
    cJSON_Delete(m);
    /* every predicted stay is a validation stay */
    path_in(p, sizeof p, out, "predictions.csv");
    char *text = fm_study_read(p, NULL);
    ck_assert_ptr_nonnull(text);
    long rows = 0;
    for (char *line = strchr(text, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
        long long id = strtoll(line + 1, NULL, 10);
        int found = 0;
        for (int64_t i = 0; i < n_val && !found; i++) found = c.stay_id[val[i]] == id;
        ck_assert_msg(found, "stay %lld is not a validation stay", id);
        rows++;
    }
    ck_assert_int_eq(rows, n_val); /* mortality is known for every synthetic stay */
    fm_free(text);
    fm_free(val);
    fm_cohort_free(&c);
    fm_test_rmtree(dir);
}
END_TEST

static Suite *train_suite(void) {
    Suite *s = suite_create("train");
    TCase *tc = tcase_create("train");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_train_run_folder);
    tcase_add_test(tc, test_train_reports_validation_part);
    tcase_add_test(tc, test_train_deterministic);
    tcase_add_test(tc, test_train_resume_after_sigint);
    tcase_add_test(tc, test_train_resume_after_sigkill);
    tcase_add_test(tc, test_train_competition);
    tcase_add_test(tc, test_train_cli_interrupt_status);
    tcase_add_test(tc, test_train_nonfinite_loss);
    tcase_add_loop_test(tc, test_train_config_errors, 0, (int)(sizeof CONFIG_CASES / sizeof *CONFIG_CASES));
    tcase_add_test(tc, test_train_refuses_occupied_folder);
    tcase_add_test(tc, test_train_resume_refuses_other_config);
    tcase_add_test(tc, test_train_fraction);
    tcase_add_test(tc, test_train_class_weights);
    tcase_add_test(tc, test_train_los_threshold);
    tcase_add_test(tc, test_train_accumulation);
    tcase_add_test(tc, test_train_alloc_failure);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    fm_study_setup();
    int rc = fm_test_run_suite(train_suite());
    fm_study_teardown();
    return rc;
}
