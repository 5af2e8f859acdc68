/* Clinical baselines as study runs (src/baseline.h): logistic/ridge regression on summaries and
 * the SAPS-I score, their run folders, determinism, and what they refuse. */
#include <cJSON.h>
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "preprocessing/cohort.h"
#include "src/alloc.h"
#include "src/baseline.h"
#include "src/train_folder.h"
#include "tests/support/study_support.h"
#include "tests/support/testutil.h"

static cJSON *read_json(const char *dir, const char *name) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    char *text = fm_study_read(path, NULL);
    ck_assert_msg(text != NULL, "cannot read %s", path);
    cJSON *j = cJSON_Parse(text);
    fm_free(text);
    ck_assert_ptr_nonnull(j);
    return j;
}

static double task_metric(cJSON *metrics, const char *task, const char *metric) {
    cJSON *m = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(metrics, "tasks"), task), metric);
    ck_assert_msg(m != NULL, "metrics.json lacks tasks.%s.%s", task, metric);
    if (cJSON_IsObject(m)) m = cJSON_GetObjectItem(m, "value");
    return cJSON_IsNumber(m) ? m->valuedouble : NAN;
}

static FmStatus run(const char *name, const char *cohort, const char *extra, const char *const *sets, int n,
                    char *out, size_t cap, FmError *err) {
    char study[900];
    snprintf(study, sizeof study, "%s/%s.ini", fm_study_dir(), name);
    fm_study_write(study, cohort, extra);
    snprintf(out, cap, "%s/%s", fm_study_dir(), name);
    return fm_study_train(study, sets, n, out, 0, NULL, NULL, err);
}

/* Logistic regression for the binary and phenotype columns, ridge for the LOS regression: the
 * run folder has every file, one coefficient set per label column over every summary feature,
 * and metrics that are real numbers. */
START_TEST(test_logreg_run_folder) {
    char out[1000];
    FmError err;
    const char *sets[] = {"model.kind=logreg"};
    ck_assert_int_eq(run("logreg", fm_study_cohort("cohort.h5"), NULL, sets, 1, out, sizeof out, &err), FM_OK);
    ck_assert(fm_train_folder_has(out, "config.ini") && fm_train_folder_has(out, "predictions.csv") &&
              fm_train_folder_has(out, "timing.json") && fm_train_folder_has(out, FM_BASELINE_FILE));
    ck_assert(!fm_train_folder_has(out, "model.h5"));
    cJSON *m = read_json(out, "metrics.json");
    double auroc = task_metric(m, "mortality", "auroc");
    ck_assert(auroc >= 0.0 && auroc <= 1.0);
    ck_assert(isfinite(task_metric(m, "los_regression", "r2")));
    ck_assert(isfinite(task_metric(m, "phenotypes", "macro_auroc")));
    cJSON *run_obj = cJSON_GetObjectItem(m, "run");
    ck_assert_str_eq(cJSON_GetObjectItem(run_obj, "model")->valuestring, "logreg");
    ck_assert(isfinite(cJSON_GetObjectItem(run_obj, "select_value")->valuedouble));
    cJSON_Delete(m);
    cJSON *b = read_json(out, FM_BASELINE_FILE);
    cJSON *labels = cJSON_GetObjectItem(b, "labels");
    /* mortality, 5 phenotypes, los_log_days */
    ck_assert_int_eq(cJSON_GetArraySize(labels), 7);
    cJSON *mort = cJSON_GetObjectItem(labels, "mortality");
    ck_assert_str_eq(cJSON_GetObjectItem(mort, "model")->valuestring, "logistic");
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(labels, "los_log_days"), "model")->valuestring, "ridge");
    cJSON *features = cJSON_GetObjectItem(mort, "features");
    /* Summaries of vitals, labs, static, notes and image features: at least one per channel. */
    ck_assert_int_gt(cJSON_GetArraySize(features), 20);
    ck_assert_str_eq(cJSON_GetObjectItem(cJSON_GetArrayItem(features, 0), "name")->valuestring, "vitals.HR.first");
    double l2 = cJSON_GetObjectItem(mort, "l2")->valuedouble;
    ck_assert(l2 == 1e-4 || l2 == 1e-3 || l2 == 1e-2 || l2 == 1e-1);
    cJSON_Delete(b);
}
END_TEST

/* The same configuration gives the same bytes. */
/* A tuning run (train.report_part = val) reports the validation part: the metric it was
 * selected by is the reported one, and no test stay is scored. */
START_TEST(test_logreg_reports_validation_part) {
    char out[1000];
    FmError err;
    const char *sets[] = {"model.kind=logreg", "data.tasks=mortality", "train.report_part=val"};
    ck_assert_int_eq(run("logreg_val", fm_study_cohort("cohort.h5"), NULL, sets, 3, out, sizeof out, &err), FM_OK);
    cJSON *m = read_json(out, "metrics.json");
    cJSON *run_obj = cJSON_GetObjectItem(m, "run");
    ck_assert_str_eq(cJSON_GetObjectItem(run_obj, "part")->valuestring, "val");
    ck_assert_double_eq_tol(task_metric(m, "mortality", "auprc"),
                            cJSON_GetObjectItem(run_obj, "select_value")->valuedouble, 1e-12);
    cJSON_Delete(m);
}
END_TEST

START_TEST(test_logreg_deterministic) {
    char a[1000], b[1000], pa[1100], pb[1100];
    FmError err;
    const char *sets[] = {"model.kind=logreg"};
    ck_assert_int_eq(run("det_a", fm_study_cohort("cohort.h5"), NULL, sets, 1, a, sizeof a, &err), FM_OK);
    ck_assert_int_eq(run("det_b", fm_study_cohort("cohort.h5"), NULL, sets, 1, b, sizeof b, &err), FM_OK);
    static const char *const files[] = {"metrics.json", "predictions.csv", FM_BASELINE_FILE};
    for (int i = 0; i < 3; i++) {
        snprintf(pa, sizeof pa, "%s/%s", a, files[i]);
        snprintf(pb, sizeof pb, "%s/%s", b, files[i]);
        ck_assert_msg(fm_study_same_file(pa, pb), "%s differs", files[i]);
    }
}
END_TEST

/* SAPS-I needs admission scores: the synthetic cohort has none. With scores planted (the
 * score rises with death), the calibrated score ranks the test stays almost perfectly. */
START_TEST(test_saps_needs_scores_and_ranks_them) {
    char out[1000];
    FmError err;
    const char *sets[] = {"model.kind=saps_i", "data.tasks=mortality", "train.task_weights="};
    ck_assert_int_eq(run("saps_none", fm_study_cohort("cohort.h5"), NULL, sets, 3, out, sizeof out, &err),
                     FM_ERR_CONFIG);
    ck_assert_ptr_nonnull(strstr(err.message, "needs admission scores"));

    FmCohort c;
    ck_assert_int_eq(fm_cohort_load(fm_study_cohort("cohort.h5"), &c, &err), FM_OK);
    c.saps_i = fm_malloc_array((size_t)c.N, sizeof *c.saps_i);
    c.sofa = fm_malloc_array((size_t)c.N, sizeof *c.sofa);
    int mort = fm_cohort_find_label(&c, "mortality");
    FmRng rng;
    fm_rng_seed(&rng, 3);
    for (int64_t i = 0; i < c.N; i++) {
        float y = c.label[(size_t)i * c.n_labels + mort];
        c.saps_i[i] = i % 17 == 0 ? NAN : 10.0f + 8.0f * (y > 0.5f) + (float)fm_rng_uniform(&rng);
        c.sofa[i] = NAN;
    }
    char path[900];
    snprintf(path, sizeof path, "%s/cohort_scores.h5", fm_study_dir());
    ck_assert_int_eq(fm_cohort_save(&c, path, &err), FM_OK);
    fm_cohort_free(&c);
    ck_assert_int_eq(run("saps", path, NULL, sets, 3, out, sizeof out, &err), FM_OK);
    cJSON *m = read_json(out, "metrics.json");
    /* Every test stay with a score is ranked by its class; the 1 in 17 without one gets the
     * training mean. */
    ck_assert_double_gt(task_metric(m, "mortality", "auroc"), 0.9);
    cJSON_Delete(m);
    cJSON *b = read_json(out, FM_BASELINE_FILE);
    cJSON *lab = cJSON_GetObjectItem(cJSON_GetObjectItem(b, "labels"), "mortality");
    ck_assert_int_eq(cJSON_GetArraySize(cJSON_GetObjectItem(lab, "features")), 1);
    ck_assert_double_eq(cJSON_GetObjectItem(lab, "l2")->valuedouble, 0.0);
    ck_assert_double_gt(cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(lab, "features"), 0), "coefficient")
                            ->valuedouble, 0.0);
    cJSON_Delete(b);
}
END_TEST

/* What a baseline cannot do is a configuration error at its key; a folder holding a complete
 * run is not overwritten. */
START_TEST(test_refusals) {
    char out[1000];
    FmError err;
    const char *missing[] = {"model.kind=logreg", "eval.missing_rate=0.3"};
    ck_assert_int_eq(run("refuse", fm_study_cohort("cohort.h5"), NULL, missing, 2, out, sizeof out, &err),
                     FM_ERR_CONFIG);
    ck_assert_str_eq(err.where, "--set eval.missing_rate");
    const char *sets[] = {"model.kind=logreg"};
    ck_assert_int_eq(run("twice", fm_study_cohort("cohort.h5"), NULL, sets, 1, out, sizeof out, &err), FM_OK);
    ck_assert_int_eq(run("twice", fm_study_cohort("cohort.h5"), NULL, sets, 1, out, sizeof out, &err), FM_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(err.message, "holds a run already"));
}
END_TEST

static Suite *baseline_suite(void) {
    Suite *s = suite_create("baseline");
    TCase *tc = tcase_create("baseline");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_logreg_run_folder);
    tcase_add_test(tc, test_logreg_deterministic);
    tcase_add_test(tc, test_logreg_reports_validation_part);
    tcase_add_test(tc, test_saps_needs_scores_and_ranks_them);
    tcase_add_test(tc, test_refusals);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) {
    fm_study_setup();
    int rc = fm_test_run_suite(baseline_suite());
    fm_study_teardown();
    return rc;
}
