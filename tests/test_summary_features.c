/* Per-stay summary features (the logistic-regression baseline's inputs) on the small P12
 * fixture, whose values are worked out by hand in tests/test_preprocess.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "preprocessing/prepare.h"
#include "preprocessing/summary_features.h"
#include "src/alloc.h"
#include "tests/support/testutil.h"

#define SMALL "tests/fixtures/p12_small"

static void prepare_small(FmCohort *c) {
    FmPrepareOptions o = fm_prepare_defaults();
    const char *d[] = {SMALL "/set-x"}, *f[] = {SMALL "/Outcomes-x.txt"};
    o.p12_dirs = d;
    o.n_p12_dirs = 1;
    o.outcome_files = f;
    o.n_outcome_files = 1;
    FmVarMap map;
    FmPrepareReport rep;
    FmError err;
    ck_assert_int_eq(fm_prepare_run(&o, c, &map, &rep, &err), FM_OK);
    fm_var_map_free(&map);
    fm_report_free(&rep);
}

static int feature(const FmSummaryFeatures *s, const char *name) {
    for (int f = 0; f < s->F; f++)
        if (strcmp(s->name[f], name) == 0) return f;
    ck_abort_msg("no feature %s", name);
    return -1;
}

START_TEST(test_series_and_static_summaries) {
    FmCohort c;
    prepare_small(&c);
    const int64_t idx[] = {0, 1};
    FmSummaryFeatures s;
    FmError err;
    ck_assert_int_eq(fm_summary_features(&c, NULL, 0, idx, 2, &s, &err), FM_OK);
    int expected_F = 0;
    for (int m = 0; m < c.M; m++)
        expected_F += c.mod[m].kind == FM_MODALITY_SERIES ? 6 * c.mod[m].C : c.mod[m].C;
    ck_assert_int_eq(s.F, expected_F);
    /* Stay 100001's HR, in time order: 73, 75, 85 (80 and 90 merged), 60. */
    const float *x0 = s.X;
    ck_assert_float_eq(x0[feature(&s, "vitals.HR.first")], 73);
    ck_assert_float_eq(x0[feature(&s, "vitals.HR.last")], 60);
    ck_assert_float_eq(x0[feature(&s, "vitals.HR.min")], 60);
    ck_assert_float_eq(x0[feature(&s, "vitals.HR.max")], 85);
    ck_assert_float_eq_tol(x0[feature(&s, "vitals.HR.mean")], 73.25f, 1e-5);
    ck_assert_float_eq_tol(x0[feature(&s, "vitals.HR.log_count")], logf(5.0f), 1e-6);
    ck_assert_float_eq(x0[feature(&s, "static.Age")], 54);
    /* Stay 100002 has no HR: its summaries are NaN and its count feature log(1) = 0. */
    const float *x1 = s.X + s.F;
    ck_assert(isnan(x1[feature(&s, "vitals.HR.first")]));
    ck_assert(isnan(x1[feature(&s, "vitals.HR.mean")]));
    ck_assert_float_eq(x1[feature(&s, "vitals.HR.log_count")], 0);
    ck_assert(isnan(x1[feature(&s, "static.Height")])); /* Height -1: not recorded */
    /* Imputation from row 0 only: the NaN take row 0's values. */
    double *means = malloc((size_t)s.F * sizeof *means);
    const int64_t train[] = {0};
    fm_summary_impute_means(&s, train, 1, means);
    ck_assert_float_eq(x1[feature(&s, "vitals.HR.first")], 73);
    ck_assert_float_eq(x1[feature(&s, "static.Height")], 170.2f);
    for (int64_t k = 0; k < 2 * (int64_t)s.F; k++) ck_assert(isfinite(s.X[k]));
    free(means);
    fm_summary_features_free(&s);
    fm_cohort_free(&c);
}
END_TEST

START_TEST(test_subset_and_alloc_failure) {
    FmCohort c;
    prepare_small(&c);
    const int64_t idx[] = {1};
    int only_static[] = {fm_cohort_find_modality(&c, "static")};
    FmSummaryFeatures s;
    FmError err;
    ck_assert_int_eq(fm_summary_features(&c, only_static, 1, idx, 1, &s, &err), FM_OK);
    ck_assert_int_eq(s.F, c.mod[only_static[0]].C);
    ck_assert_str_eq(s.name[0], "static.Age");
    ck_assert_float_eq(s.X[0], 70);
    fm_summary_features_free(&s);
    fm_alloc_fail_reset();
    ck_assert_int_eq(fm_summary_features(&c, NULL, 0, idx, 1, &s, &err), FM_OK);
    long calls = fm_alloc_calls();
    fm_summary_features_free(&s);
    for (long k = 1; k <= calls; k++) {
        fm_alloc_fail_after(k);
        FmStatus st = fm_summary_features(&c, NULL, 0, idx, 1, &s, &err);
        fm_alloc_fail_reset();
        ck_assert_int_eq(st, FM_ERR_NOMEM);
        ck_assert_ptr_null(s.X);
    }
    fm_cohort_free(&c);
}
END_TEST

static Suite *summary_suite(void) {
    Suite *s = suite_create("summary_features");
    TCase *tc = tcase_create("summary_features");
    tcase_add_test(tc, test_series_and_static_summaries);
    tcase_add_test(tc, test_subset_and_alloc_failure);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return fm_test_run_suite(summary_suite()); }
