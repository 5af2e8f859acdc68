/* The model on real data: a cohort prepared from 48 PhysioNet 2012 records (set A, the first by
 * name) through fm_prepare_run, batches from the cohort's gatherer, a model built from the
 * cohort's modalities and labels. Checks that a real batch runs forward and backward with
 * finite values, that a few Adam steps on one batch lower its loss (the gradients point
 * downhill on real inputs), and that the saved model with the split's statistics loads back and
 * predicts the same. */
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "models/model.h"
#include "models/model_file.h"
#include "preprocessing/prepare.h"
#include "src/alloc.h"
#include "tests/support/model_support.h"

enum { N_RECORDS = 48 };

static int cmp_name(const void *a, const void *b) { return strcmp((const char *)a, (const char *)b); }

/* Prepares the cohort from the first N_RECORDS records of set A (symlinked into dir). */
static void prepare_cohort(const char *dir, FmCohort *c) {
    char src[PATH_MAX], rel[1024], sub[1200], outcomes[1024];
    const char *sh = fm_test_shared_dir();
    snprintf(rel, sizeof rel, "%s/data/physionet2012/set-a", sh);
    ck_assert_msg(realpath(rel, src) != NULL, "%s: not found (is FUSEMOE_SHARED set?)", rel);
    snprintf(sub, sizeof sub, "%s/set-a", dir);
    ck_assert_int_eq(mkdir(sub, 0755), 0);
    static char names[4096][16];
    int n = 0;
    DIR *d = opendir(src);
    ck_assert_ptr_nonnull(d);
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < 4096)
        if (strstr(e->d_name, ".txt")) snprintf(names[n++], sizeof names[0], "%s", e->d_name);
    closedir(d);
    qsort(names, (size_t)n, sizeof names[0], cmp_name);
    ck_assert_int_ge(n, N_RECORDS);
    for (int i = 0; i < N_RECORDS; i++) {
        char target[PATH_MAX + 32], link[1300];
        snprintf(target, sizeof target, "%s/%s", src, names[i]);
        snprintf(link, sizeof link, "%s/%s", sub, names[i]);
        ck_assert_int_eq(symlink(target, link), 0);
    }
    snprintf(outcomes, sizeof outcomes, "%s/data/physionet2012/Outcomes-a.txt", sh);
    FmPrepareOptions o = fm_prepare_defaults();
    const char *dirs[] = {sub}, *files[] = {outcomes};
    o.p12_dirs = dirs;
    o.n_p12_dirs = 1;
    o.outcome_files = files;
    o.n_outcome_files = 1;
    FmVarMap map;
    FmPrepareReport rep;
    FmError err;
    ck_assert_msg(fm_prepare_run(&o, c, &map, &rep, &err) == FM_OK, "%s: %s", err.where, err.message);
    fm_var_map_free(&map);
    fm_report_free(&rep);
}

/* A small model over the cohort's modalities, with tasks mortality and log length of stay. */
static void cohort_config(const FmCohort *c, FmModelConfig *cfg) {
    *cfg = fm_model_config_default();
    for (int m = 0; m < c->M; m++)
        ck_assert_int_eq(fm_model_config_add_modality(cfg, c->mod[m].name, c->mod[m].kind, c->mod[m].C, NULL, NULL),
                         FM_OK);
    cfg->D = 32;
    cfg->Q = 12;
    cfg->H = 4;
    cfg->DT = 16;
    cfg->layers = 2;
    cfg->attn_heads = 4;
    cfg->E = 6;
    cfg->K = 2;
    cfg->hidden = 64;
    cfg->head_hidden = 32;
    cfg->n_labels = c->n_labels;
    int mort = fm_cohort_find_label(c, "mortality"), los = fm_cohort_find_label(c, "los_log_days");
    ck_assert_int_ge(mort, 0);
    ck_assert_int_ge(los, 0);
    ck_assert_int_eq(fm_model_config_add_task(cfg, "mortality", FM_TASK_BINARY, mort, 1, NULL, NULL), FM_OK);
    ck_assert_int_eq(fm_model_config_add_task(cfg, "los", FM_TASK_REGRESSION, los, 1, NULL, NULL), FM_OK);
}

START_TEST(test_real_batch_trains_and_round_trips) {
    char dir[512];
    fm_test_tmpdir(dir, sizeof dir);
    FmCohort c;
    prepare_cohort(dir, &c);
    ck_assert_int_eq(c.N, N_RECORDS);
    FmModelConfig cfg;
    cohort_config(&c, &cfg);
    FmModel *m = NULL;
    FmError err;
    ck_assert_msg(fm_model_create(&m, &cfg, 1, &err) == FM_OK, "%s", err.message);
    fm_model_init(m, 2012);
    /* a batch of the split's training stays, gathered as training does */
    int64_t *idx = NULL, n = 0;
    ck_assert_int_eq(fm_cohort_split_stays(&c, 0, FM_PART_TRAIN, &idx, &n, &err), FM_OK);
    ck_assert_int_ge(n, 16);
    FmBatch batch;
    ck_assert_int_eq(fm_cohort_batch_alloc(&c, 16, &batch, &err), FM_OK);
    ck_assert_msg(fm_cohort_make_batch(&c, 0, idx, 16, &batch, &err) == FM_OK, "%s", err.message);
    FmModelShape shape = {.B = 16};
    for (int i = 0; i < c.M; i++) shape.max_L[i] = c.mod[i].kind == FM_MODALITY_STATIC ? 1 : c.mod[i].max_L;
    FmModelWorkspace *ws = NULL;
    ck_assert_msg(fm_model_workspace_create(&ws, m, &shape, &err) == FM_OK, "%s", err.message);
    /* Adam at lr 1e-3 on the one batch: its training loss must come down */
    FmAdamConfig adam = fm_adam_default();
    adam.lr = 1e-3f;
    FmRng root;
    fm_rng_seed(&root, 48);
    double first = 0.0, last = 0.0;
    for (int step = 0; step < 12; step++) {
        FmRng r = fm_rng_split(&root, (uint64_t)step);
        FmModelLoss loss;
        fm_params_zero_grad(&m->params);
        ck_assert_msg(fm_model_forward(m, ws, &batch, 1, &r, &loss, &err) == FM_OK, "%s", err.message);
        ck_assert(isfinite(loss.total) && loss.task_known[0] == 16 && loss.task_known[1] == 16);
        fm_model_backward(m, ws);
        ck_assert(isfinite(fm_params_grad_norm(&m->params)));
        fm_adam_step(&m->params, &adam, step + 1);
        if (step == 0) first = loss.task;
        last = loss.task;
        if (getenv("FM_TEST_VERBOSE")) printf("step %d: task loss %.4f (balance %.3f entropy %.3f)\n", step, loss.task, loss.balance, loss.entropy);
    }
    /* observed: task loss 7.32 at the first step (log LOS starts far from the initial outputs),
     * 0.60 at the twelfth */
    ck_assert_msg(last < 0.8 * first, "task loss went from %g to %g", first, last);
    /* evaluation predictions are probabilities and finite log-LOS values */
    ck_assert_int_eq(fm_model_forward(m, ws, &batch, 0, NULL, NULL, &err), FM_OK);
    float pred[16 * 64];
    ck_assert_int_le(16 * cfg.n_labels, 16 * 64);
    memcpy(pred, fm_model_predictions(ws), (size_t)16 * cfg.n_labels * sizeof(float));
    for (int b = 0; b < 16; b++) {
        float p = pred[b * cfg.n_labels + cfg.task[0].label0], v = pred[b * cfg.n_labels + cfg.task[1].label0];
        ck_assert(p > 0.0f && p < 1.0f && isfinite(v));
    }
    /* the model with the split's statistics round-trips */
    FmNorm norm;
    ck_assert_int_eq(fm_cohort_get_norm(&c, 0, &norm, &err), FM_OK);
    char path[1024];
    snprintf(path, sizeof path, "%s/model.h5", dir);
    ck_assert_msg(fm_model_file_save(path, m, &norm, &err) == FM_OK, "%s", err.message);
    FmModel *back = NULL;
    FmNorm got;
    int has = 0;
    ck_assert_msg(fm_model_file_load(path, &back, 0, &got, &has, &err) == FM_OK, "%s", err.message);
    ck_assert_int_eq(has, 1);
    ck_assert_int_eq(fm_norm_check_match(&got, &norm, "the cohort", &err), FM_OK);
    FmModelWorkspace *ws2 = NULL;
    ck_assert_int_eq(fm_model_workspace_create(&ws2, back, &shape, &err), FM_OK);
    ck_assert_int_eq(fm_model_forward(back, ws2, &batch, 0, NULL, NULL, &err), FM_OK);
    ck_assert_mem_eq(pred, fm_model_predictions(ws2), (size_t)16 * cfg.n_labels * sizeof(float));
    fm_model_workspace_free(ws2);
    fm_model_free(back);
    fm_norm_free(&got);
    fm_norm_free(&norm);
    fm_model_workspace_free(ws);
    fm_cohort_batch_free(&batch);
    fm_free(idx);
    fm_model_free(m);
    fm_cohort_free(&c);
    fm_test_rmtree(dir);
}
END_TEST

static Suite *model_p12_suite(void) {
    Suite *s = suite_create("model_p12");
    TCase *tc = tcase_create("model_p12");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_real_batch_trains_and_round_trips);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return fm_test_run_suite(model_p12_suite()); }
