/* The cohort: file round trip, validation of damaged files, batches (contents, padding,
 * standardisation, reuse without allocation), statistics from a model, split listing,
 * allocation failures of the loader and the batch allocator, atomic saving. */
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "preprocessing/prepare.h"
#include "src/alloc.h"
#include "src/atomic_file.h"
#include "src/blas_kernel.h"
#include "src/h5io.h"
#include "tests/support/testutil.h"

#define SMALL "tests/fixtures/p12_small"

static void prepare_small(FmCohort *c) {
    FmPrepareOptions o = fm_prepare_defaults();
    const char *d[] = {SMALL "/set-x"}, *f[] = {SMALL "/Outcomes-x.txt"};
    o.p12_dirs = d;
    o.n_p12_dirs = 1;
    o.outcome_files = f;
    o.n_outcome_files = 1;
    o.splits.n = 2;
    FmVarMap map;
    FmPrepareReport rep;
    FmError err;
    ck_assert_int_eq(fm_prepare_run(&o, c, &map, &rep, &err), FM_OK);
    fm_var_map_free(&map);
    fm_report_free(&rep);
}

static void assert_same_cohort(const FmCohort *a, const FmCohort *b) {
    ck_assert_int_eq(a->N, b->N);
    ck_assert_mem_eq(a->stay_id, b->stay_id, (size_t)a->N * sizeof(int64_t));
    ck_assert_int_eq(a->M, b->M);
    for (int m = 0; m < a->M; m++) {
        const FmCohortModality *x = &a->mod[m], *y = &b->mod[m];
        ck_assert_str_eq(x->name, y->name);
        ck_assert_int_eq(x->kind, y->kind);
        ck_assert_int_eq(x->C, y->C);
        ck_assert_int_eq(x->T, y->T);
        ck_assert_int_eq(x->max_L, y->max_L);
        ck_assert_int_eq(x->standardise, y->standardise);
        ck_assert_mem_eq(x->offset, y->offset, (size_t)(a->N + 1) * sizeof(int64_t));
        ck_assert_mem_eq(x->count, y->count, (size_t)a->N * sizeof(int32_t));
        ck_assert_mem_eq(x->present, y->present, (size_t)a->N);
        ck_assert_mem_eq(x->time, y->time, (size_t)x->T * sizeof(float));
        ck_assert_mem_eq(x->value, y->value, (size_t)x->T * (size_t)x->C * sizeof(float));
        ck_assert_int_eq(x->mask == NULL, y->mask == NULL);
        if (x->mask) ck_assert_mem_eq(x->mask, y->mask, (size_t)x->T * (size_t)x->C);
        ck_assert_int_eq(x->channel == NULL, y->channel == NULL);
        for (int k = 0; x->channel && k < x->C; k++) {
            ck_assert_str_eq(x->channel[k], y->channel[k]);
            ck_assert_double_eq(x->range_min[k], y->range_min[k]);
            ck_assert_double_eq(x->range_max[k], y->range_max[k]);
        }
    }
    ck_assert_int_eq(a->n_labels, b->n_labels);
    for (int l = 0; l < a->n_labels; l++) {
        ck_assert_str_eq(a->label_info[l].name, b->label_info[l].name);
        ck_assert_str_eq(a->label_info[l].task, b->label_info[l].task);
        ck_assert_int_eq(a->label_info[l].kind, b->label_info[l].kind);
    }
    size_t nl = (size_t)a->N * (size_t)a->n_labels;
    ck_assert_mem_eq(a->label_mask, b->label_mask, nl);
    for (size_t k = 0; k < nl; k++)
        if (a->label_mask[k]) ck_assert_float_eq(a->label[k], b->label[k]);
    ck_assert_int_eq(a->saps_i == NULL, b->saps_i == NULL);
    ck_assert_int_eq(a->sofa == NULL, b->sofa == NULL);
    if (a->saps_i) { /* NaN marks unknown scores: compare bytes */
        ck_assert_mem_eq(a->saps_i, b->saps_i, (size_t)a->N * sizeof(float));
        ck_assert_mem_eq(a->sofa, b->sofa, (size_t)a->N * sizeof(float));
    }
    ck_assert_int_eq(a->n_splits, b->n_splits);
    for (int s = 0; s < a->n_splits; s++) {
        ck_assert_str_eq(a->split[s].name, b->split[s].name);
        ck_assert_mem_eq(a->split[s].part, b->split[s].part, (size_t)a->N);
        for (int m = 0; m < a->M; m++) {
            ck_assert_mem_eq(a->split[s].norm.mod[m].mean, b->split[s].norm.mod[m].mean,
                             (size_t)a->mod[m].C * sizeof(double));
            ck_assert_mem_eq(a->split[s].norm.mod[m].std, b->split[s].norm.mod[m].std,
                             (size_t)a->mod[m].C * sizeof(double));
        }
    }
    ck_assert_double_eq(a->settings.window_h, b->settings.window_h);
    ck_assert_double_eq(a->settings.los_threshold_days, b->settings.los_threshold_days);
    ck_assert_double_eq(a->settings.los_log_offset_days, b->settings.los_log_offset_days);
    ck_assert_uint_eq(a->settings.seed, b->settings.seed);
    ck_assert_str_eq(a->settings.split_spec, b->settings.split_spec);
    ck_assert_str_eq(a->settings.sources, b->settings.sources);
}

START_TEST(test_save_load_roundtrip) {
    char dir[512], path[1024];
    fm_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/c.h5", dir);
    FmCohort c, d;
    prepare_small(&c);
    ck_assert_ptr_nonnull(c.saps_i); /* the round trip covers the admission scores */
    FmError err;
    ck_assert_int_eq(fm_cohort_save(&c, path, &err), FM_OK);
    ck_assert_int_eq(fm_cohort_load(path, &d, &err), FM_OK);
    assert_same_cohort(&c, &d);
    /* Saving over an existing file replaces it. */
    ck_assert_int_eq(fm_cohort_save(&d, path, &err), FM_OK);
    fm_cohort_free(&d);
    ck_assert_int_eq(fm_cohort_load(path, &d, &err), FM_OK);
    assert_same_cohort(&c, &d);
    fm_cohort_free(&d);
    fm_cohort_free(&c);
    fm_cohort_free(&c); /* freeing twice is harmless */
    fm_test_rmtree(dir);
}
END_TEST

/* ---- damaged files ---- */

typedef void (*Damage)(hid_t file);

/* Saves the small cohort, damages a copy, and checks fm_cohort_load's status and message. */
static void expect_load_error(Damage damage, FmStatus want, const char *where_suffix, const char *message) {
    char dir[512], path[1024];
    fm_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/c.h5", dir);
    FmCohort c;
    prepare_small(&c);
    FmError err;
    ck_assert_int_eq(fm_cohort_save(&c, path, &err), FM_OK);
    fm_cohort_free(&c);
    fm_h5_quiet();
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    ck_assert_int_ge(f, 0);
    damage(f);
    H5Fclose(f);
    fm_error_clear(&err);
    ck_assert_int_eq(fm_cohort_load(path, &c, &err), want);
    ck_assert_int_eq(c.N, 0);
    ck_assert_ptr_null(c.mod);
    char full[1400];
    snprintf(full, sizeof full, "%s/c.h5%s", dir, where_suffix);
    ck_assert_str_eq(err.where, full);
    ck_assert_msg(strstr(err.message, message) != NULL, "message '%s', expected '%s'", err.message, message);
    fm_test_rmtree(dir);
}

static void replace_i64(hid_t f, const char *name, const int64_t *v, hsize_t n) {
    H5Ldelete(f, name, H5P_DEFAULT);
    ck_assert_int_eq(fm_h5_write(f, name, FM_H5_I64, 1, &n, v, 0, NULL), FM_OK);
}

static void d_missing_offset(hid_t f) {
    H5Ldelete(f, "modalities/vitals/offset", H5P_DEFAULT);
}
static void d_offset_length(hid_t f) {
    const int64_t v[5] = {0, 1, 2, 3, 3};
    replace_i64(f, "modalities/labs/offset", v, 5);
}
static void d_offset_decreasing(hid_t f) {
    const int64_t v[3] = {0, 4, 2};
    replace_i64(f, "modalities/vitals/offset", v, 3);
}
static void d_value_rank(hid_t f) {
    H5Ldelete(f, "modalities/vitals/value", H5P_DEFAULT);
    float v[5] = {0};
    hsize_t n = 5;
    ck_assert_int_eq(fm_h5_write(f, "modalities/vitals/value", FM_H5_F32, 1, &n, v, 0, NULL), FM_OK);
}
static void d_count(hid_t f) {
    H5Ldelete(f, "modalities/vitals/count", H5P_DEFAULT);
    int32_t v[2] = {3, 1};
    hsize_t n = 2;
    ck_assert_int_eq(fm_h5_write(f, "modalities/vitals/count", FM_H5_I32, 1, &n, v, 0, NULL), FM_OK);
}
static void d_mask(hid_t f) {
    hsize_t d[2] = {5, 15};
    uint8_t m[75] = {0};
    m[17] = 2;
    H5Ldelete(f, "modalities/vitals/mask", H5P_DEFAULT);
    ck_assert_int_eq(fm_h5_write(f, "modalities/vitals/mask", FM_H5_U8, 2, d, m, 0, NULL), FM_OK);
}
static void d_time(hid_t f) {
    hsize_t n = 5;
    float t[5] = {0, 0.5f, 1, 49, 0};
    H5Ldelete(f, "modalities/vitals/time", H5P_DEFAULT);
    ck_assert_int_eq(fm_h5_write(f, "modalities/vitals/time", FM_H5_F32, 1, &n, t, 0, NULL), FM_OK);
}
static void d_part(hid_t f) {
    hsize_t d[2] = {2, 2};
    uint8_t p[4] = {0, 7, 0, 0};
    H5Ldelete(f, "splits/part", H5P_DEFAULT);
    ck_assert_int_eq(fm_h5_write(f, "splits/part", FM_H5_U8, 2, d, p, 0, NULL), FM_OK);
}
static void d_version(hid_t f) {
    ck_assert_int_eq(fm_h5_attr_write_i64(f, "format_version", 2, NULL), FM_OK);
}
static void d_format(hid_t f) {
    ck_assert_int_eq(fm_h5_attr_write_str(f, "format", "fusemoe-model", NULL), FM_OK);
}
static void d_std(hid_t f) {
    double s[5] = {1, 1, 0, 1, 1};
    hsize_t n = 5;
    H5Ldelete(f, "splits/norm/1/static/std", H5P_DEFAULT);
    ck_assert_int_eq(fm_h5_write(f, "splits/norm/1/static/std", FM_H5_F64, 1, &n, s, 0, NULL), FM_OK);
}
static void d_norm_channel(hid_t f) {
    H5Ldelete(f, "splits/norm/0/labs/channel", H5P_DEFAULT);
}
static void d_label(hid_t f) {
    hsize_t d[2] = {2, 3};
    float v[6] = {0, NAN, 0, 1, 2, 1};
    H5Ldelete(f, "labels/value", H5P_DEFAULT);
    ck_assert_int_eq(fm_h5_write(f, "labels/value", FM_H5_F32, 2, d, v, 0, NULL), FM_OK);
}
static void d_label_names(hid_t f) {
    H5Ldelete(f, "labels/task", H5P_DEFAULT);
}
static void d_stay_ids(hid_t f) {
    const int64_t v[2] = {100001, 100001};
    replace_i64(f, "stay_id", v, 2);
}

START_TEST(test_load_validation) {
    expect_load_error(d_missing_offset, FM_ERR_FORMAT, ":/modalities/vitals/offset", "missing dataset");
    expect_load_error(d_offset_length, FM_ERR_FORMAT, ":/modalities/labs/offset",
                      "dimension 0: expected 3, got 5");
    expect_load_error(d_offset_decreasing, FM_ERR_FORMAT, ":/modalities/vitals/offset",
                      "offsets decrease at stay 1");
    expect_load_error(d_value_rank, FM_ERR_FORMAT, ":/modalities/vitals/value", "expected rank 2, got 1");
    expect_load_error(d_count, FM_ERR_FORMAT, ":/modalities/vitals/count",
                      "count of stay 0 disagrees with the offsets (4)");
    expect_load_error(d_mask, FM_ERR_FORMAT, ":/modalities/vitals/mask", "entry 17: mask value 2");
    expect_load_error(d_time, FM_ERR_FORMAT, ":/modalities/vitals/time",
                      "row 3: time 49 h is outside [0, 48]");
    expect_load_error(d_part, FM_ERR_FORMAT, ":/splits/part", "split 0: part code 7");
    expect_load_error(d_version, FM_ERR_UNSUPPORTED, "",
                      "cohort format version 2, this build reads version 1");
    expect_load_error(d_format, FM_ERR_FORMAT, "", "not a cohort file (format 'fusemoe-model')");
    expect_load_error(d_std, FM_ERR_FORMAT, ":/splits/norm/1/static",
                      "channel 2: invalid statistics (mean 170.2, std 0)");
    expect_load_error(d_norm_channel, FM_ERR_FORMAT, ":/splits/norm/0",
                      "modality 'labs': channel names absent here");
    expect_load_error(d_label, FM_ERR_FORMAT, ":/labels/value", "entry 1 is marked known but not finite");
    expect_load_error(d_label_names, FM_ERR_FORMAT, ":/labels/task", "missing dataset");
    expect_load_error(d_stay_ids, FM_ERR_FORMAT, ":/stay_id", "stay 100001 appears twice (rows 0 and 1)");
    /* Not HDF5 at all, and no file. */
    char dir[512], path[1024];
    fm_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/x.h5", dir);
    FmError err;
    ck_assert_int_eq(fm_atomic_write_all(path, "stay_id,x\n", 10, &err), FM_OK);
    FmCohort c;
    ck_assert_int_eq(fm_cohort_load(path, &c, &err), FM_ERR_FORMAT);
    ck_assert_str_eq(err.message, "not an HDF5 file");
    snprintf(path, sizeof path, "%s/none.h5", dir);
    ck_assert_int_ne(fm_cohort_load(path, &c, &err), FM_OK);
    ck_assert_str_eq(err.where, path);
    fm_test_rmtree(dir);
}
END_TEST

/* ---- batches ---- */

START_TEST(test_batch_contents) {
    FmCohort c;
    prepare_small(&c);
    FmBatch b;
    FmError err;
    ck_assert_int_eq(fm_cohort_batch_alloc(&c, 2, &b, &err), FM_OK);
    ck_assert_int_eq(b.cap_B, 2);
    const int64_t idx[2] = {1, 0};
    fm_alloc_fail_reset();
    ck_assert_int_eq(fm_cohort_make_batch(&c, 1, idx, 2, &b, &err), FM_OK);
    ck_assert_int_eq(fm_alloc_calls(), 0); /* no allocation per batch */
    ck_assert_int_eq(b.B, 2);
    ck_assert_int_eq(b.M, 3);
    const FmNorm *nm = &c.split[1].norm;
    /* vitals: stay 100002 has one row (Weight 90 at 0 h), stay 100001 four (HR). */
    const FmBatchModality *v = &b.mod[0];
    ck_assert_int_eq(v->kind, FM_MODALITY_SERIES);
    ck_assert_int_eq(v->max_L, 4);
    ck_assert_int_eq(v->count[0], 1);
    ck_assert_int_eq(v->count[1], 4);
    int C = v->C, hr = 0, wt = 14;
    ck_assert_str_eq(c.mod[0].channel[wt], "Weight");
    ck_assert_float_eq(v->time[0], 0.0f);
    ck_assert_float_eq_tol(v->value[wt], (float)((90 - nm->mod[0].mean[wt]) / nm->mod[0].std[wt]), 1e-6);
    ck_assert_int_eq(v->mask[wt], 1);
    ck_assert_int_eq(v->mask[hr], 0);
    ck_assert_float_eq(v->value[hr], 0.0f);
    for (int l = 1; l < 4; l++) { /* padding rows of the first stay */
        ck_assert_float_eq(v->time[l], 0.0f);
        for (int k = 0; k < C; k++) {
            ck_assert_float_eq(v->value[l * C + k], 0.0f);
            ck_assert_int_eq(v->mask[l * C + k], 0);
        }
    }
    const float hrs[4] = {73, 75, 85, 60}, ts[4] = {7.0f / 60, 0.5f, 1, 48};
    for (int l = 0; l < 4; l++) {
        ck_assert_float_eq_tol(v->time[4 + l], ts[l] / 48.0f, 1e-7);
        ck_assert_float_eq_tol(v->value[(4 + l) * C + hr],
                               (float)((hrs[l] - nm->mod[0].mean[hr]) / nm->mod[0].std[hr]), 1e-5);
        ck_assert_int_eq(v->mask[(4 + l) * C + hr], 1);
    }
    ck_assert_float_eq(v->time[4 + 3], 1.0f); /* 48:00 is the end of the window */
    /* static: one row, no times. */
    const FmBatchModality *s = &b.mod[2];
    ck_assert_int_eq(s->max_L, 1);
    ck_assert_ptr_null(s->time);
    ck_assert_int_eq(s->mask[2], 0); /* Height of 100002 was -1 */
    ck_assert_float_eq(s->value[2], 0.0f);
    ck_assert_float_eq_tol(s->value[0], (float)((70 - nm->mod[2].mean[0]) / nm->mod[2].std[0]), 1e-6);
    ck_assert(s->present[0] && s->present[1]);
    /* labels and ids */
    ck_assert_int_eq(b.stay_id[0], 100002);
    ck_assert_int_eq(b.stay_id[1], 100001);
    ck_assert_int_eq(b.n_labels, 3);
    ck_assert_float_eq(b.label[0], 1);
    ck_assert_float_eq(b.label[3], 0);
    ck_assert_float_eq_tol(b.label[1], logf(13), 1e-6);
    ck_assert(b.label_mask[0] && b.label_mask[1] && b.label_mask[2]);
    /* A second, smaller batch reuses the buffers, packed for its own padding. */
    const int64_t one = 1;
    ck_assert_int_eq(fm_cohort_make_batch(&c, 0, &one, 1, &b, &err), FM_OK);
    ck_assert_int_eq(b.B, 1);
    ck_assert_int_eq(b.mod[0].max_L, 1);
    ck_assert_int_eq(b.mod[1].max_L, 2);
    ck_assert_float_eq_tol(b.mod[1].time[1], 5.25f / 48, 1e-7);
    /* Errors. */
    const int64_t three[3] = {0, 1, 0}, bad = 2;
    ck_assert_int_eq(fm_cohort_make_batch(&c, 0, three, 3, &b, &err), FM_ERR_ARG);
    ck_assert_str_eq(err.message, "batch of 3 stays, but the buffers hold 2");
    ck_assert_int_eq(fm_cohort_make_batch(&c, 0, &bad, 1, &b, &err), FM_ERR_ARG);
    ck_assert_int_eq(fm_cohort_make_batch(&c, 5, &one, 1, &b, &err), FM_ERR_ARG);
    ck_assert_int_eq(fm_cohort_make_batch(&c, FM_COHORT_NORM_EXTERNAL, &one, 1, &b, &err), FM_ERR_ARG);
    fm_cohort_batch_free(&b);
    fm_cohort_batch_free(&b);
    ck_assert_int_eq(fm_cohort_batch_alloc(&c, 0, &b, &err), FM_ERR_ARG);
    fm_cohort_free(&c);
}
END_TEST

START_TEST(test_external_norm) {
    FmCohort c;
    prepare_small(&c);
    FmNorm model;
    FmError err;
    ck_assert_int_eq(fm_cohort_get_norm(&c, 0, &model, &err), FM_OK);
    for (int m = 0; m < model.M; m++)
        for (int k = 0; k < model.mod[m].C; k++)
            model.mod[m].mean[k] = 1.0, model.mod[m].std[k] = 2.0;
    ck_assert_int_eq(fm_cohort_use_norm(&c, &model, "the model", &err), FM_OK);
    FmBatch b;
    ck_assert_int_eq(fm_cohort_batch_alloc(&c, 1, &b, &err), FM_OK);
    const int64_t zero = 0;
    ck_assert_int_eq(fm_cohort_make_batch(&c, FM_COHORT_NORM_EXTERNAL, &zero, 1, &b, &err), FM_OK);
    ck_assert_float_eq(b.mod[0].value[0], (73.0f - 1.0f) / 2.0f);
    fm_cohort_batch_free(&b);
    /* Mismatches by name are refused and leave the cohort's statistics alone. */
    fm_free(model.mod[0].channel[0]);
    model.mod[0].channel[0] = fm_strdup("HeartRate");
    ck_assert_int_eq(fm_cohort_use_norm(&c, &model, "the model", &err), FM_ERR_MISMATCH);
    ck_assert_str_eq(err.message, "modality 'vitals': channel 0 is 'HR' here but 'HeartRate' in the model");
    ck_assert_str_eq(c.external_norm.mod[0].channel[0], "HR");
    fm_free(model.mod[0].channel[0]);
    model.mod[0].channel[0] = fm_strdup("HR");
    fm_free(model.mod[1].name);
    model.mod[1].name = fm_strdup("lab");
    ck_assert_int_eq(fm_cohort_use_norm(&c, &model, "the model", &err), FM_ERR_MISMATCH);
    ck_assert_str_eq(err.message, "modality 1 is 'labs' here but 'lab' in the model");
    model.M = 2;
    ck_assert_int_eq(fm_cohort_use_norm(&c, &model, "the model", &err), FM_ERR_MISMATCH);
    ck_assert_str_eq(err.message, "3 modalities here but 2 in the model (vitals,lab)");
    model.M = 3;
    fm_norm_free(&model);
    /* A norm survives its HDF5 round trip. */
    char dir[512], path[1024];
    fm_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/n.h5", dir);
    hid_t f;
    ck_assert_int_eq(fm_h5_create(path, &f, &err), FM_OK);
    ck_assert_int_eq(fm_norm_write_h5(f, "norm", &c.split[1].norm, &err), FM_OK);
    H5Fclose(f);
    ck_assert_int_eq(fm_h5_open_read(path, &f, &err), FM_OK);
    FmNorm back;
    ck_assert_int_eq(fm_norm_read_h5(f, path, "norm", &back, &err), FM_OK);
    ck_assert_int_eq(fm_norm_check_match(&back, &c.split[1].norm, "x", &err), FM_OK);
    for (int m = 0; m < back.M; m++)
        ck_assert_mem_eq(back.mod[m].std, c.split[1].norm.mod[m].std, (size_t)back.mod[m].C * sizeof(double));
    fm_norm_free(&back);
    ck_assert_int_eq(fm_norm_read_h5(f, path, "nothing", &back, &err), FM_ERR_FORMAT);
    H5Fclose(f);
    fm_test_rmtree(dir);
    fm_cohort_free(&c);
}
END_TEST

START_TEST(test_split_stays) {
    FmCohort c;
    prepare_small(&c);
    FmError err;
    c.split[0].part[0] = FM_PART_TEST;
    c.split[0].part[1] = FM_PART_TRAIN;
    int64_t *idx, n;
    ck_assert_int_eq(fm_cohort_split_stays(&c, 0, FM_PART_TRAIN, &idx, &n, &err), FM_OK);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(idx[0], 1);
    fm_free(idx);
    ck_assert_int_eq(fm_cohort_split_stays(&c, 0, FM_PART_VAL, &idx, &n, &err), FM_OK);
    ck_assert_int_eq(n, 0);
    fm_free(idx);
    ck_assert_int_eq(fm_cohort_split_stays(&c, 2, FM_PART_VAL, &idx, &n, &err), FM_ERR_ARG);
    ck_assert_int_eq(fm_cohort_split_stays(&c, 0, FM_PART_NONE, &idx, &n, &err), FM_ERR_ARG);
    ck_assert_int_eq(fm_cohort_find_split(&c, "repeat1"), 1);
    ck_assert_int_eq(fm_cohort_find_split(&c, "repeat2"), -1);
    ck_assert_int_eq(fm_cohort_find_label(&c, "los_gt_7d"), 2);
    fm_cohort_free(&c);
}
END_TEST

/* ---- allocation failures and atomic saving ---- */

START_TEST(test_load_alloc_failure) {
    char dir[512], path[1024];
    fm_test_tmpdir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/c.h5", dir);
    FmCohort c;
    prepare_small(&c);
    FmError err;
    ck_assert_int_eq(fm_cohort_save(&c, path, &err), FM_OK);
    fm_cohort_free(&c);
    fm_alloc_fail_reset();
    ck_assert_int_eq(fm_cohort_load(path, &c, &err), FM_OK);
    long calls = fm_alloc_calls();
    fm_cohort_free(&c);
    ck_assert_int_gt(calls, 40);
    for (long k = 1; k <= calls; k++) {
        fm_alloc_fail_after(k);
        FmStatus st = fm_cohort_load(path, &c, &err);
        fm_alloc_fail_reset();
        ck_assert_msg(st == FM_ERR_NOMEM, "allocation %ld: status %d (%s: %s)", k, st, err.where,
                      err.message);
        ck_assert_int_eq(c.N, 0);
        ck_assert_ptr_null(c.mod);
        ck_assert_ptr_null(c.stay_id);
    }
    fm_test_rmtree(dir);
}
END_TEST

START_TEST(test_batch_alloc_failure) {
    FmCohort c;
    prepare_small(&c);
    FmBatch b;
    FmError err;
    fm_alloc_fail_reset();
    ck_assert_int_eq(fm_cohort_batch_alloc(&c, 4, &b, &err), FM_OK);
    long calls = fm_alloc_calls();
    fm_cohort_batch_free(&b);
    ck_assert_int_ge(calls, 10);
    for (long k = 1; k <= calls; k++) {
        fm_alloc_fail_after(k);
        FmStatus st = fm_cohort_batch_alloc(&c, 4, &b, &err);
        fm_alloc_fail_reset();
        ck_assert_int_eq(st, FM_ERR_NOMEM);
        ck_assert_ptr_null(b.mod);
        ck_assert_ptr_null(b.label);
    }
    fm_cohort_free(&c);
}
END_TEST

static int count_entries(const char *dir) {
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) n++;
    closedir(d);
    return n;
}

START_TEST(test_save_failures_leave_nothing) {
    char dir[512], path[1024];
    fm_test_tmpdir(dir, sizeof dir);
    FmCohort c;
    prepare_small(&c);
    FmError err;
    snprintf(path, sizeof path, "%s/no/such/dir/c.h5", dir);
    ck_assert_int_eq(fm_cohort_save(&c, path, &err), FM_ERR_IO);
    ck_assert_str_eq(err.where, path);
    /* Every allocation failure during saving leaves neither the file nor a temporary. */
    snprintf(path, sizeof path, "%s/c.h5", dir);
    fm_alloc_fail_reset();
    ck_assert_int_eq(fm_cohort_save(&c, path, &err), FM_OK);
    long calls = fm_alloc_calls();
    unlink(path);
    ck_assert_int_gt(calls, 3);
    for (long k = 1; k <= calls; k++) {
        fm_alloc_fail_after(k);
        FmStatus st = fm_cohort_save(&c, path, &err);
        fm_alloc_fail_reset();
        ck_assert_int_eq(st, FM_ERR_NOMEM);
        ck_assert_int_eq(count_entries(dir), 0);
    }
    fm_cohort_free(&c);
    fm_test_rmtree(dir);
}
END_TEST

static Suite *cohort_suite(void) {
    Suite *s = suite_create("cohort");
    TCase *tc = tcase_create("cohort");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_save_load_roundtrip);
    tcase_add_test(tc, test_load_validation);
    tcase_add_test(tc, test_batch_contents);
    tcase_add_test(tc, test_external_norm);
    tcase_add_test(tc, test_split_stays);
    tcase_add_test(tc, test_load_alloc_failure);
    tcase_add_test(tc, test_batch_alloc_failure);
    tcase_add_test(tc, test_save_failures_leave_nothing);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) {
    fm_blas_select_kernel(argv);
    return fm_test_run_suite(cohort_suite());
}
