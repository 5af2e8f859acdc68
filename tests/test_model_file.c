/* The model file: round trip (configuration, parameters, normalisation statistics, identical
 * outputs), atomic writing, and the errors for a wrong shape, name, version or format, and
 * allocation failures while loading. */
#include <dirent.h>
#include <hdf5.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "models/model_file.h"
#include "src/alloc.h"
#include "src/h5io.h"
#include "tests/support/model_support.h"

static FmModel *small_model(int E, uint64_t seed) {
    FmModelConfig cfg;
    fm_test_small_config(&cfg, 1);
    cfg.E = E;
    FmModel *m = NULL;
    FmError err;
    ck_assert_msg(fm_model_create(&m, &cfg, 0, &err) == FM_OK, "%s", err.message);
    fm_model_init(m, seed);
    return m;
}

static char *ch_vitals[3] = {"HR", "SysABP", "Temp"};
static double mean_vitals[3] = {86.5, 119.25, 37.0};
static double std_vitals[3] = {15.0, 22.5, 0.75};
static char *ch_static[2] = {"Age", "Weight, kg"};
static double mean_static[2] = {64.0, 82.0};
static double std_static[2] = {17.0, 24.0};

static void make_stats(FmNormStats s[2]) {
    memset(s, 0, 2 * sizeof *s);
    snprintf(s[0].name, sizeof s[0].name, "vitals");
    s[0].kind = FM_MODALITY_SERIES;
    s[0].C = 3;
    s[0].channel = ch_vitals;
    s[0].mean = mean_vitals;
    s[0].std = std_vitals;
    snprintf(s[1].name, sizeof s[1].name, "static");
    s[1].kind = FM_MODALITY_STATIC;
    s[1].C = 2;
    s[1].channel = ch_static;
    s[1].mean = mean_static;
    s[1].std = std_static;
}

static void path_in(char *out, size_t cap, const char *dir, const char *name) { snprintf(out, cap, "%s/%s", dir, name); }

/* Number of entries in dir besides . and .. */
static int dir_entries(const char *dir) {
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

static void predict(FmModel *m, const FmTestBatch *tb, float *out) {
    FmModelShape shape = {.B = tb->batch.B};
    for (int i = 0; i < tb->batch.M; i++) shape.max_L[i] = tb->mod[i].max_L;
    FmModelWorkspace *ws = NULL;
    ck_assert_int_eq(fm_model_workspace_create(&ws, m, &shape, NULL), FM_OK);
    FmModelLoss loss;
    ck_assert_int_eq(fm_model_forward(m, ws, &tb->batch, 0, NULL, &loss, NULL), FM_OK);
    memcpy(out, fm_model_predictions(ws), (size_t)tb->batch.B * m->cfg.n_labels * sizeof(float));
    fm_model_workspace_free(ws);
}

START_TEST(test_round_trip) {
    char dir[512], path[1024];
    fm_test_tmpdir(dir, sizeof dir);
    path_in(path, sizeof path, dir, "model.h5");
    FmModel *m = small_model(6, 3);
    m->cfg.task[1].huber_delta = 0.25f; /* an option away from its default */
    m->heads.task[1].huber_delta = 0.25f;
    FmNormStats stats[2];
    make_stats(stats);
    FmError err;
    ck_assert_msg(fm_model_file_save(path, m, stats, 2, &err) == FM_OK, "%s", err.message);
    ck_assert_int_eq(dir_entries(dir), 1); /* no temporary file left */
    FmModel *back = NULL;
    FmNormStats *got = NULL;
    int n = 0;
    ck_assert_msg(fm_model_file_load(path, &back, 1, &got, &n, &err) == FM_OK, "%s", err.message);
    /* the configuration, field by field (the struct has padding) */
    const FmModelConfig *a = &m->cfg, *b = &back->cfg;
    ck_assert_int_eq(a->M, b->M);
    ck_assert_int_eq(a->D, b->D);
    ck_assert_int_eq(a->Q, b->Q);
    ck_assert_int_eq(a->E, b->E);
    ck_assert_int_eq(a->K, b->K);
    ck_assert_int_eq(a->gate, b->gate);
    ck_assert_int_eq(a->router, b->router);
    ck_assert(a->dropout == b->dropout && a->balance_coef == b->balance_coef && a->entropy_coef == b->entropy_coef);
    ck_assert_int_eq(a->static_tokens, b->static_tokens);
    ck_assert_int_eq(a->pooling, b->pooling);
    for (int i = 0; i < a->M; i++) {
        ck_assert_str_eq(a->mod[i].name, b->mod[i].name);
        ck_assert_int_eq(a->mod[i].kind, b->mod[i].kind);
        ck_assert_int_eq(a->mod[i].C, b->mod[i].C);
        ck_assert_int_eq(a->mod[i].patch, b->mod[i].patch);
        ck_assert_int_eq(a->mod[i].patch_dim, b->mod[i].patch_dim);
    }
    for (int t = 0; t < a->n_tasks; t++) {
        ck_assert_str_eq(a->task[t].name, b->task[t].name);
        ck_assert_int_eq(a->task[t].kind, b->task[t].kind);
        ck_assert(a->task[t].weight == b->task[t].weight && a->task[t].pos_weight == b->task[t].pos_weight &&
                  a->task[t].huber_delta == b->task[t].huber_delta);
    }
    /* the parameters, bit for bit, and the optimiser arenas asked for */
    ck_assert_int_eq(m->params.total, back->params.total);
    ck_assert_mem_eq(m->params.data, back->params.data, m->params.total * sizeof(float));
    ck_assert_ptr_nonnull(back->params.adam_m);
    /* the statistics, in name order: static, vitals */
    ck_assert_int_eq(n, 2);
    ck_assert_str_eq(got[0].name, "static");
    ck_assert_str_eq(got[1].name, "vitals");
    ck_assert_int_eq(got[1].kind, FM_MODALITY_SERIES);
    ck_assert_int_eq(got[1].C, 3);
    for (int c = 0; c < 3; c++) {
        ck_assert_str_eq(got[1].channel[c], ch_vitals[c]);
        ck_assert(got[1].mean[c] == mean_vitals[c] && got[1].std[c] == std_vitals[c]);
    }
    ck_assert_str_eq(got[0].channel[1], "Weight, kg");
    /* identical outputs */
    FmTestBatch tb;
    fm_test_small_batch(&tb, &m->cfg, 4);
    float p1[12], p2[12];
    predict(m, &tb, p1);
    predict(back, &tb, p2);
    ck_assert_mem_eq(p1, p2, sizeof p1);
    /* loading the parameters into a model of the same configuration */
    FmModel *other = small_model(6, 99);
    ck_assert_msg(fm_model_file_load_params(path, other, &err) == FM_OK, "%s", err.message);
    ck_assert_mem_eq(m->params.data, other->params.data, m->params.total * sizeof(float));
    /* saving again replaces the file */
    m->params.data[0] += 1.0f;
    ck_assert_int_eq(fm_model_file_save(path, m, NULL, 0, &err), FM_OK);
    ck_assert_int_eq(fm_model_file_load_params(path, other, &err), FM_OK);
    ck_assert(other->params.data[0] == m->params.data[0]);
    ck_assert_int_eq(dir_entries(dir), 1);
    fm_model_free(other);
    fm_test_batch_free(&tb);
    fm_model_file_stats_free(got, n);
    fm_model_free(back);
    fm_model_free(m);
    fm_test_rmtree(dir);
}
END_TEST

START_TEST(test_wrong_shape_and_name) {
    char dir[512], path[1024];
    fm_test_tmpdir(dir, sizeof dir);
    path_in(path, sizeof path, dir, "model.h5");
    FmModel *m = small_model(6, 5);
    FmError err;
    ck_assert_int_eq(fm_model_file_save(path, m, NULL, 0, &err), FM_OK);
    /* a model with 8 experts per layer: the first router that differs is named with both shapes */
    FmModel *wide = small_model(8, 5);
    ck_assert_int_eq(fm_model_file_load_params(path, wide, &err), FM_ERR_MISMATCH);
    char want[2048];
    snprintf(want, sizeof want, "%s", path);
    ck_assert_str_eq(err.where, want);
    ck_assert_str_eq(err.message, "parameter fusion.0.moe.router.0.weight: expected shape (8, 8), got (6, 8)");
    /* a model whose modality has another name */
    FmModelConfig cfg = m->cfg;
    snprintf(cfg.mod[0].name, sizeof cfg.mod[0].name, "labs");
    FmModel *renamed = NULL;
    ck_assert_int_eq(fm_model_create(&renamed, &cfg, 0, NULL), FM_OK);
    ck_assert_int_eq(fm_model_file_load_params(path, renamed, &err), FM_ERR_MISMATCH);
    ck_assert_str_eq(err.message, "parameter encoder.labs.mtand.w_q: missing");
    /* a model with fewer tensors than the file: the file's extra one is named */
    cfg = m->cfg;
    cfg.mod[0].imputation = 0;
    FmModel *fewer = NULL;
    ck_assert_int_eq(fm_model_create(&fewer, &cfg, 0, NULL), FM_OK);
    ck_assert_int_eq(fm_model_file_load_params(path, fewer, &err), FM_ERR_MISMATCH);
    ck_assert_str_eq(err.message, "parameter encoder.vitals.utde.gate.fc1.bias: not part of this model's configuration");
    /* a file whose configuration says 8 experts while its tensors have 6 */
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert(f >= 0);
    hid_t g = H5Gopen2(f, "config", H5P_DEFAULT);
    H5Adelete(g, "E");
    ck_assert_int_eq(fm_h5_attr_write_i64(g, "E", 8, NULL), FM_OK);
    H5Gclose(g);
    H5Fclose(f);
    FmModel *loaded = NULL;
    ck_assert_int_eq(fm_model_file_load(path, &loaded, 0, NULL, NULL, &err), FM_ERR_MISMATCH);
    ck_assert_ptr_null(loaded);
    ck_assert_str_eq(err.message, "parameter fusion.0.moe.router.0.weight: expected shape (8, 8), got (6, 8)");
    fm_model_free(fewer);
    fm_model_free(renamed);
    fm_model_free(wide);
    fm_model_free(m);
    fm_test_rmtree(dir);
}
END_TEST

START_TEST(test_wrong_version_and_format) {
    char dir[512], path[1024];
    fm_test_tmpdir(dir, sizeof dir);
    path_in(path, sizeof path, dir, "model.h5");
    FmModel *m = small_model(6, 7);
    FmError err;
    ck_assert_int_eq(fm_model_file_save(path, m, NULL, 0, &err), FM_OK);
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Adelete(f, "format_version");
    ck_assert_int_eq(fm_h5_attr_write_i64(f, "format_version", 2, NULL), FM_OK);
    H5Fclose(f);
    FmModel *loaded = NULL;
    ck_assert_int_eq(fm_model_file_load(path, &loaded, 0, NULL, NULL, &err), FM_ERR_UNSUPPORTED);
    ck_assert_str_eq(err.message, "model file format version 2, this build reads version 1");
    ck_assert_int_eq(fm_model_file_load_params(path, m, &err), FM_ERR_UNSUPPORTED);
    f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    H5Adelete(f, "format");
    ck_assert_int_eq(fm_h5_attr_write_str(f, "format", "fusemoe-checkpoint", NULL), FM_OK);
    H5Fclose(f);
    ck_assert_int_eq(fm_model_file_load(path, &loaded, 0, NULL, NULL, &err), FM_ERR_FORMAT);
    ck_assert_str_eq(err.message, "not a model file (format \"fusemoe-checkpoint\", expected \"fusemoe-model\")");
    /* an unknown option value in the configuration */
    ck_assert_int_eq(fm_model_file_save(path, m, NULL, 0, &err), FM_OK);
    f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    hid_t g = H5Gopen2(f, "config", H5P_DEFAULT);
    H5Adelete(g, "gate");
    ck_assert_int_eq(fm_h5_attr_write_str(g, "gate", "cosine", NULL), FM_OK);
    H5Gclose(g);
    H5Fclose(f);
    ck_assert_int_eq(fm_model_file_load(path, &loaded, 0, NULL, NULL, &err), FM_ERR_FORMAT);
    ck_assert_str_eq(err.message, "attribute 'gate': unknown value \"cosine\"");
    /* not there at all */
    path_in(path, sizeof path, dir, "absent.h5");
    ck_assert_int_ne(fm_model_file_load(path, &loaded, 0, NULL, NULL, &err), FM_OK);
    ck_assert_ptr_null(loaded);
    fm_model_free(m);
    fm_test_rmtree(dir);
}
END_TEST

START_TEST(test_save_failures_leave_nothing) {
    char dir[512], path[1024];
    fm_test_tmpdir(dir, sizeof dir);
    FmModel *m = small_model(6, 9);
    FmError err;
    /* a directory that does not exist */
    path_in(path, sizeof path, dir, "missing/model.h5");
    ck_assert_int_ne(fm_model_file_save(path, m, NULL, 0, &err), FM_OK);
    ck_assert_int_eq(dir_entries(dir), 0);
    /* statistics that the file could not hold faithfully: nothing is written */
    path_in(path, sizeof path, dir, "model.h5");
    FmNormStats stats[2];
    make_stats(stats);
    char *bad[2] = {"Age", "Weight\nkg"};
    stats[1].channel = bad;
    ck_assert_int_eq(fm_model_file_save(path, m, stats, 2, &err), FM_ERR_ARG);
    ck_assert_str_eq(err.message, "normalisation statistics of static: channel 1: name missing or with a newline");
    snprintf(stats[1].name, sizeof stats[1].name, "labs");
    ck_assert_int_eq(fm_model_file_save(path, m, stats, 2, &err), FM_ERR_ARG);
    ck_assert_int_eq(dir_entries(dir), 0);
    fm_model_free(m);
    fm_test_rmtree(dir);
}
END_TEST

START_TEST(test_load_allocation_failures) {
    char dir[512], path[1024];
    fm_test_tmpdir(dir, sizeof dir);
    path_in(path, sizeof path, dir, "model.h5");
    FmModel *m = small_model(6, 11);
    FmNormStats stats[2];
    make_stats(stats);
    ck_assert_int_eq(fm_model_file_save(path, m, stats, 2, NULL), FM_OK);
    FmModel *back = NULL;
    FmNormStats *got = NULL;
    int n = 0;
    fm_alloc_fail_reset();
    ck_assert_int_eq(fm_model_file_load(path, &back, 1, &got, &n, NULL), FM_OK);
    long calls = fm_alloc_calls();
    fm_model_file_stats_free(got, n);
    fm_model_free(back);
    ck_assert_int_gt(calls, 5);
    for (long k = 1; k <= calls; k++) {
        fm_alloc_fail_after(k);
        FmError err;
        FmStatus st = fm_model_file_load(path, &back, 1, &got, &n, &err);
        fm_alloc_fail_reset();
        ck_assert_msg(st == FM_ERR_NOMEM, "allocation %ld: status %d (%s)", k, st, err.message);
        ck_assert_ptr_null(back);
        ck_assert_ptr_null(got);
        ck_assert_int_eq(n, 0);
    }
    fm_model_free(m);
    fm_test_rmtree(dir);
}
END_TEST

static Suite *model_file_suite(void) {
    Suite *s = suite_create("model_file");
    TCase *tc = tcase_create("model_file");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_wrong_shape_and_name);
    tcase_add_test(tc, test_wrong_version_and_format);
    tcase_add_test(tc, test_save_failures_leave_nothing);
    tcase_add_test(tc, test_load_allocation_failures);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return fm_test_run_suite(model_file_suite()); }
