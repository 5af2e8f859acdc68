/* Logistic and ridge regression for the baselines: against scikit-learn, errors, allocation
 * failure. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "src/alloc.h"
#include "src/glm.h"
#include "tests/support/testutil.h"

#define FIXTURE "tests/fixtures/glm.txt"

static void check_against_sklearn(const char *tag, int weighted) {
    FmFixture fx;
    fm_fixture_load(&fx, FIXTURE);
    const FmFixtureTensor *X = fm_fixture_get(&fx, "X", 0), *y = fm_fixture_get(&fx, "y", 0);
    const FmFixtureTensor *wt = fm_fixture_get(&fx, "weight", 0);
    char name[64];
    snprintf(name, sizeof name, "%s_l2", tag);
    double l2 = fm_fixture_get(&fx, name, 1)->data[0];
    int n = X->shape[0], F = X->shape[1];
    FmGlm m;
    FmError err;
    ck_assert_int_eq(fm_glm_fit(&m, FM_GLM_LOGISTIC, X->data, y->data, weighted ? wt->data : NULL, n, F, l2, &err), FM_OK);
    snprintf(name, sizeof name, "%s_w", tag);
    float w[8];
    for (int f = 0; f < F; f++) w[f] = (float)m.w[f];
    /* scikit-learn's newton-cg: observed coefficient differences up to 3e-8. */
    fm_assert_close(w, fm_fixture_get(&fx, name, (size_t)F)->data, (size_t)F, 1e-6, 1e-5, name);
    snprintf(name, sizeof name, "%s_b", tag);
    float b = (float)m.b;
    fm_assert_close(&b, fm_fixture_get(&fx, name, 1)->data, 1, 2e-6, 1e-5, name);
    float *prob = malloc((size_t)n * sizeof *prob);
    fm_glm_predict(&m, X->data, n, prob);
    snprintf(name, sizeof name, "%s_prob", tag);
    fm_assert_close(prob, fm_fixture_get(&fx, name, (size_t)n)->data, (size_t)n, 1e-6, 1e-5, name);
    ck_assert_int_lt(m.iterations, 30);
    free(prob);
    fm_glm_free(&m);
    fm_fixture_free(&fx);
}

START_TEST(test_matches_sklearn) { check_against_sklearn("plain", 0); }
END_TEST

START_TEST(test_matches_sklearn_weighted) { check_against_sklearn("weighted", 1); }
END_TEST

/* Separable data: without a penalty the coefficients would grow forever; with one, the fit
 * converges and ranks the classes perfectly. A constant feature gets coefficient 0. */
START_TEST(test_separable_with_penalty_and_constant_feature) {
    const float X[] = {-2, 7, -1, 7, -0.5f, 7, 0.5f, 7, 1, 7, 2, 7};
    const float y[] = {0, 0, 0, 1, 1, 1};
    FmGlm m;
    FmError err;
    ck_assert_int_eq(fm_glm_fit(&m, FM_GLM_LOGISTIC, X, y, NULL, 6, 2, 1e-2, &err), FM_OK);
    ck_assert_double_gt(m.w[0], 0);
    ck_assert_double_eq_tol(m.w[1], 0, 1e-12);
    float p[6];
    fm_glm_predict(&m, X, 6, p);
    for (int i = 1; i < 6; i++) ck_assert(p[i] > p[i - 1]);
    ck_assert(p[2] < 0.5f && p[3] > 0.5f);
    fm_glm_free(&m);
}
END_TEST

START_TEST(test_ridge_matches_sklearn) {
    FmFixture fx;
    fm_fixture_load(&fx, FIXTURE);
    const FmFixtureTensor *X = fm_fixture_get(&fx, "X", 0), *y = fm_fixture_get(&fx, "ridge_y", 0);
    int n = X->shape[0], F = X->shape[1];
    FmGlm m;
    FmError err;
    ck_assert_int_eq(fm_glm_fit(&m, FM_GLM_GAUSSIAN, X->data, y->data, NULL, n, F,
                                fm_fixture_get(&fx, "ridge_l2", 1)->data[0], &err), FM_OK);
    ck_assert_int_le(m.iterations, 2); /* a quadratic objective: one Newton step, one to confirm */
    float w[8], b = (float)m.b;
    for (int f = 0; f < F; f++) w[f] = (float)m.w[f];
    /* Closed form on both sides: observed differences below 1e-6 (float fixtures). */
    fm_assert_close(w, fm_fixture_get(&fx, "ridge_w", (size_t)F)->data, (size_t)F, 2e-6, 1e-5, "ridge_w");
    fm_assert_close(&b, fm_fixture_get(&fx, "ridge_b", 1)->data, 1, 2e-6, 1e-5, "ridge_b");
    float *pred = malloc((size_t)n * sizeof *pred);
    fm_glm_predict(&m, X->data, n, pred);
    fm_assert_close(pred, fm_fixture_get(&fx, "ridge_pred", (size_t)n)->data, (size_t)n, 1e-5, 1e-5, "ridge_pred");
    free(pred);
    fm_glm_free(&m);
    fm_fixture_free(&fx);
}
END_TEST

START_TEST(test_errors) {
    const float X[] = {1, 2, 3, NAN}, finite[] = {1, 2, 3, 4};
    const float one_class[] = {1, 1, 1, 1}, y[] = {0, 1, 0, 1}, bad_y[] = {0, 2, 0, 1};
    FmGlm m;
    FmError err;
    ck_assert_int_eq(fm_glm_fit(&m, FM_GLM_LOGISTIC, finite, one_class, NULL, 4, 1, 1, &err), FM_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(err.message, "both classes"));
    ck_assert_int_eq(fm_glm_fit(&m, FM_GLM_LOGISTIC, X, bad_y, NULL, 4, 1, 1, &err), FM_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(err.message, "target 1 is 2"));
    ck_assert_int_eq(fm_glm_fit(&m, FM_GLM_LOGISTIC, X, y, NULL, 4, 1, 1, &err), FM_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(err.message, "feature 0 of row 3"));
    ck_assert_ptr_null(m.w);
    const float inf_y[] = {0, INFINITY, 1, 2};
    ck_assert_int_eq(fm_glm_fit(&m, FM_GLM_GAUSSIAN, finite, inf_y, NULL, 4, 1, 1, &err), FM_ERR_ARG);
    ck_assert_ptr_nonnull(strstr(err.message, "ridge regression: target 1 is not finite"));
    ck_assert_int_eq(fm_glm_fit(&m, FM_GLM_GAUSSIAN, finite, y, NULL, 0, 1, 1, &err), FM_ERR_ARG);
}
END_TEST

START_TEST(test_alloc_failure) {
    const float X[] = {0, 1, 2, 3, 4, 5}, y[] = {0, 0, 1, 0, 1, 1};
    FmGlm m;
    FmError err;
    fm_alloc_fail_reset();
    ck_assert_int_eq(fm_glm_fit(&m, FM_GLM_LOGISTIC, X, y, NULL, 6, 1, 0.1, &err), FM_OK);
    long calls = fm_alloc_calls();
    fm_glm_free(&m);
    for (long k = 1; k <= calls; k++) {
        fm_alloc_fail_after(k);
        FmStatus st = fm_glm_fit(&m, FM_GLM_LOGISTIC, X, y, NULL, 6, 1, 0.1, &err);
        fm_alloc_fail_reset();
        ck_assert_int_eq(st, FM_ERR_NOMEM);
        ck_assert_ptr_null(m.w);
    }
}
END_TEST

static Suite *glm_suite(void) {
    Suite *s = suite_create("glm");
    TCase *tc = tcase_create("glm");
    tcase_add_test(tc, test_matches_sklearn);
    tcase_add_test(tc, test_matches_sklearn_weighted);
    tcase_add_test(tc, test_separable_with_penalty_and_constant_feature);
    tcase_add_test(tc, test_ridge_matches_sklearn);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_alloc_failure);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return fm_test_run_suite(glm_suite()); }
