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

/* The statistics of the small model's modalities (vitals, notes, static, images). */
static const char *ch_vitals[3] = {"HR", "SysABP", "Temp"};
static const char *ch_static[2] = {"Age", "Weight, kg"};

static void make_norm(FmNorm *norm) {
    const char *names[4] = {"vitals", "notes", "static", "images"};
    const FmModalityKind kinds[4] = {FM_MODALITY_SERIES, FM_MODALITY_EVENTS, FM_MODALITY_STATIC, FM_MODALITY_IMAGES};
    const int C[4] = {3, 5, 2, 16}, standardise[4] = {1, 1, 1, 0};
    const char *const *channel[4] = {ch_vitals, NULL, ch_static, NULL};
    ck_assert_int_eq(fm_norm_alloc(norm, 4, names, kinds, C, channel, standardise, NULL), FM_OK);
    for (int m = 0; m < 3; m++)
        for (int c = 0; c < C[m]; c++) {
            norm->mod[m].mean[c] = 10.0 * m + c + 0.25;
            norm->mod[m].std[c] = 1.5 + c;
        }
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
    FmNorm norm;
    make_norm(&norm);
    FmError err;
    ck_assert_msg(fm_model_file_save(path, m, &norm, &err) == FM_OK, "%s", err.message);
    ck_assert_int_eq(dir_entries(dir), 1); /* no temporary file left */
    FmModel *back = NULL;
    FmNorm got;
    int has_norm = 0;
    ck_assert_msg(fm_model_file_load(path, &back, 1, &got, &has_norm, &err) == FM_OK, "%s", err.message);
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
    /* the statistics */
    ck_assert_int_eq(has_norm, 1);
    ck_assert_int_eq(got.M, 4);
    for (int mi = 0; mi < 4; mi++) {
        ck_assert_str_eq(got.mod[mi].name, norm.mod[mi].name);
        ck_assert_int_eq(got.mod[mi].kind, norm.mod[mi].kind);
        ck_assert_int_eq(got.mod[mi].C, norm.mod[mi].C);
        for (int c = 0; c < got.mod[mi].C; c++)
            ck_assert(got.mod[mi].mean[c] == norm.mod[mi].mean[c] && got.mod[mi].std[c] == norm.mod[mi].std[c]);
    }
    for (int c = 0; c < 3; c++) ck_assert_str_eq(got.mod[0].channel[c], ch_vitals[c]);
    ck_assert_str_eq(got.mod[2].channel[1], "Weight, kg");
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
    ck_assert_int_eq(fm_model_file_save(path, m, NULL, &err), FM_OK);
    ck_assert_int_eq(fm_model_file_load_params(path, other, &err), FM_OK);
    ck_assert(other->params.data[0] == m->params.data[0]);
    ck_assert_int_eq(dir_entries(dir), 1);
    /* a file without statistics */
    fm_norm_free(&got);
    fm_model_free(back);
    ck_assert_int_eq(fm_model_file_load(path, &back, 0, &got, &has_norm, &err), FM_OK);
    ck_assert_int_eq(has_norm, 0);
    ck_assert_int_eq(got.M, 0);
    fm_model_free(other);
    fm_test_batch_free(&tb);
    fm_norm_free(&norm);
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
    ck_assert_int_eq(fm_model_file_save(path, m, NULL, &err), FM_OK);
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
    ck_assert_int_eq(fm_model_file_save(path, m, NULL, &err), FM_OK);
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
    ck_assert_int_eq(fm_model_file_save(path, m, NULL, &err), FM_OK);
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
    ck_assert_int_ne(fm_model_file_save(path, m, NULL, &err), FM_OK);
    ck_assert_int_eq(dir_entries(dir), 0);
    /* statistics of other modalities than the model's: nothing is written */
    path_in(path, sizeof path, dir, "model.h5");
    FmNorm norm;
    make_norm(&norm);
    norm.mod[2].C = 3;
    ck_assert_int_eq(fm_model_file_save(path, m, &norm, &err), FM_ERR_ARG);
    ck_assert_str_eq(err.message,
                     "normalisation statistics: modality 2 is static (static, 3 channels), the model's is static (static, 2)");
    norm.mod[2].C = 2;
    norm.M = 3;
    ck_assert_int_eq(fm_model_file_save(path, m, &norm, &err), FM_ERR_ARG);
    ck_assert_str_eq(err.message, "normalisation statistics for 3 modalities, the model has 4");
    norm.M = 4;
    ck_assert_int_eq(dir_entries(dir), 0);
    fm_norm_free(&norm);
    fm_model_free(m);
    fm_test_rmtree(dir);
}
END_TEST

START_TEST(test_load_allocation_failures) {
    char dir[512], path[1024];
    fm_test_tmpdir(dir, sizeof dir);
    path_in(path, sizeof path, dir, "model.h5");
    FmModel *m = small_model(6, 11);
    FmNorm norm;
    make_norm(&norm);
    ck_assert_int_eq(fm_model_file_save(path, m, &norm, NULL), FM_OK);
    fm_norm_free(&norm);
    FmModel *back = NULL;
    FmNorm got;
    int has = 0;
    fm_alloc_fail_reset();
    ck_assert_int_eq(fm_model_file_load(path, &back, 1, &got, &has, NULL), FM_OK);
    long calls = fm_alloc_calls();
    fm_norm_free(&got);
    fm_model_free(back);
    ck_assert_int_gt(calls, 5);
    for (long k = 1; k <= calls; k++) {
        fm_alloc_fail_after(k);
        FmError err;
        FmStatus st = fm_model_file_load(path, &back, 1, &got, &has, &err);
        fm_alloc_fail_reset();
        ck_assert_msg(st == FM_ERR_NOMEM, "allocation %ld: status %d (%s)", k, st, err.message);
        ck_assert_ptr_null(back);
        ck_assert_int_eq(got.M, 0);
        ck_assert_int_eq(has, 0);
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
