/* Vectorisable float math: accuracy of exp and the normal CDF against double precision, their
 * special values, and the array loops (exact lane order, tails, aliasing, NaN handling).
 * FM_TEST_VERBOSE=1 prints the measured errors quoted next to the bounds. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "src/blas_kernel.h"
#include "src/rng.h"
#include "src/vecmath.h"
#include "tests/support/testutil.h"

/* Size of one unit in the last place of a float near |v| (subnormal spacing below FLT_MIN). */
static double ulp_of(double v) {
    v = fabs(v);
    if (v < 1.1754943508222875e-38) return ldexp(1.0, -149);
    int e;
    frexp(v, &e);
    return ldexp(1.0, e - 24);
}

static int same_bits(float a, float b) {
    return memcmp(&a, &b, sizeof a) == 0;
}

START_TEST(test_exp_accuracy) {
    /* Every 61st float from -104 to 89 (about 34 million values), subnormal results included. */
    double worst = 0.0;
    float worst_x = 0.0f;
    long checked = 0;
    for (int32_t bits = 0; bits <= fm_vec_bits(104.0f); bits += 61) {
        float x = -fm_vec_from_bits(bits);
        double want = exp((double)x), err = fabs((double)fm_vec_exp1(x) - want) / ulp_of(want);
        if (err > worst) worst = err, worst_x = x;
        checked++;
    }
    for (int32_t bits = 0; bits <= fm_vec_bits(88.72f); bits += 61) {
        float x = fm_vec_from_bits(bits);
        double want = exp((double)x), err = fabs((double)fm_vec_exp1(x) - want) / ulp_of(want);
        if (err > worst) worst = err, worst_x = x;
        checked++;
    }
    if (getenv("FM_TEST_VERBOSE"))
        printf("exp: max error %.3f ulp at x = %.9g over %ld values\n", worst, worst_x, checked);
    /* observed 1.19 ulp (the float rounding of the polynomial and of the scaling) */
    ck_assert_msg(worst <= 1.5, "exp error %.3f ulp at %.9g", worst, worst_x);
}
END_TEST

START_TEST(test_exp_special_values) {
    ck_assert(same_bits(fm_vec_exp1(0.0f), 1.0f));
    ck_assert(same_bits(fm_vec_exp1(-0.0f), 1.0f));
    ck_assert(isinf(fm_vec_exp1(INFINITY)) && fm_vec_exp1(INFINITY) > 0);
    ck_assert(same_bits(fm_vec_exp1(-INFINITY), 0.0f));
    ck_assert(isnan(fm_vec_exp1(NAN)));
    ck_assert(isnan(fm_vec_exp1(-NAN)));
    ck_assert(isinf(fm_vec_exp1(88.73f)));
    ck_assert(isinf(fm_vec_exp1(89.5f))); /* just above the computed range */
    ck_assert(isinf(fm_vec_exp1(1e30f)));
    ck_assert(isfinite(fm_vec_exp1(88.72f)));
    ck_assert(same_bits(fm_vec_exp1(-105.0f), 0.0f));
    ck_assert(same_bits(fm_vec_exp1(-1e30f), 0.0f));
    /* the smallest subnormal, 2^-149 = e^-103.28: e^-103.9 rounds to it, e^-104 to 0 */
    ck_assert_float_eq(fm_vec_exp1(-103.9f), ldexpf(1.0f, -149));
    ck_assert_float_eq(fm_vec_exp1(-104.0f), 0.0f);
    ck_assert_float_eq(fm_vec_exp1(1.0f), 2.71828183f);
}
END_TEST

START_TEST(test_softplus_accuracy) {
    /* Every 61st float with |x| <= 104, against log1p(exp(x)) in double. */
    double worst = 0.0;
    float worst_x = 0.0f;
    for (int32_t bits = 0; bits <= fm_vec_bits(104.0f); bits += 61) {
        for (int sign = -1; sign <= 1; sign += 2) {
            float x = (float)sign * fm_vec_from_bits(bits);
            double want = log1p(exp((double)x));
            double err = fabs((double)fm_vec_softplus1(x) - want) / ulp_of(want);
            if (err > worst) worst = err, worst_x = x;
        }
    }
    if (getenv("FM_TEST_VERBOSE")) {
        printf("softplus: max error %.3f ulp at x = %.9g\n", worst, worst_x);
        fflush(stdout);
    }
    /* observed 3.5 ulp (at x = -1.27: exp's 1.2 ulp passes through, plus the roundings of
     * s = e / (2 + e) and of the series) */
    ck_assert_msg(worst <= 4.5, "softplus error %.3f ulp at %.9g", worst, worst_x);
    ck_assert(same_bits(fm_vec_softplus1(-INFINITY), 0.0f));
    ck_assert(isinf(fm_vec_softplus1(INFINITY)));
    ck_assert(isnan(fm_vec_softplus1(NAN)));
    ck_assert_float_eq(fm_vec_softplus1(1e30f), 1e30f);
    ck_assert_float_eq(fm_vec_softplus1(0.0f), 0.693147181f);
}
END_TEST

/* Phi(x) in double from erfc, accurate in the tails. */
static double ncdf_ref(double x) {
    return 0.5 * erfc(-x / sqrt(2.0));
}

START_TEST(test_ncdf_accuracy) {
    /* Dense grid over [-13.5, 9] (below -12.9 Phi is subnormal, above 5.4 it rounds to 1), plus
     * both sides of the branch points z = 0.5 (x = 0.7071) and z = 10 (x = 14.14). Relative error
     * is measured where Phi is a normal float. */
    double worst_abs = 0.0, worst_rel[3] = {0, 0, 0};
    float at_abs = 0, at_rel[3] = {0, 0, 0};
    for (int i = 0; i <= 4500000; i++) {
        float x = -13.5f + (float)i * (22.5f / 4500000.0f);
        double want = ncdf_ref(x), got = fm_vec_ncdf1(x);
        double abs_err = fabs(got - want);
        if (abs_err > worst_abs) worst_abs = abs_err, at_abs = x;
        if (want < 1.1754943508222875e-38) continue;
        int band = x >= -3.0f ? 0 : x >= -9.0f ? 1 : 2;
        if (abs_err / want > worst_rel[band]) worst_rel[band] = abs_err / want, at_rel[band] = x;
    }
    const float edges[] = {0.70710677f, 0.70710683f, -0.70710677f, -0.70710683f, 14.1421356f, -14.1421356f};
    for (size_t i = 0; i < sizeof edges / sizeof *edges; i++) {
        double want = ncdf_ref(edges[i]), got = fm_vec_ncdf1(edges[i]);
        ck_assert_msg(fabs(got - want) <= 2e-7 && (want < 1e-30 || fabs(got - want) / want <= 1e-6),
                      "Phi(%.9g) = %.9g, want %.9g", edges[i], got, want);
    }
    if (getenv("FM_TEST_VERBOSE")) {
        printf("ncdf: max abs error %.2e at %.6g; max rel error %.2e at %.6g (x >= -3), %.2e at %.6g "
               "(-9 <= x < -3), %.2e at %.6g (x < -9)\n",
               worst_abs, at_abs, worst_rel[0], at_rel[0], worst_rel[1], at_rel[1], worst_rel[2], at_rel[2]);
        fflush(stdout);
    }
    /* observed: abs 9.9e-8 (1.6 ulp of Phi = 0.77 next to the branch point); relative 5.3e-7 for
     * x >= -3, 2.2e-6 on [-9, -3) and 4.0e-6 below: the rounding of x^2 inside exp (relative
     * error of exp about 2^-24 x^2 / 2) dominates the tail */
    ck_assert_double_le(worst_abs, 2e-7);
    ck_assert_double_le(worst_rel[0], 1e-6);
    ck_assert_double_le(worst_rel[1], 5e-6);
    ck_assert_double_le(worst_rel[2], 1e-5);
    ck_assert(same_bits(fm_vec_ncdf1(INFINITY), 1.0f));
    ck_assert(same_bits(fm_vec_ncdf1(-INFINITY), 0.0f));
    ck_assert(same_bits(fm_vec_ncdf1(40.0f), 1.0f));
    ck_assert(same_bits(fm_vec_ncdf1(-40.0f), 0.0f));
    ck_assert(same_bits(fm_vec_ncdf1(0.0f), 0.5f));
    ck_assert(isnan(fm_vec_ncdf1(NAN)));
}
END_TEST

/* The documented summation order: lane j takes elements j, j + 16, ...; the tail goes to lanes
 * 0, 1, ...; lanes are added pairwise (8 + 8, 4 + 4, 2 + 2, 1 + 1). */
static float sum_in_lane_order(const float *a, const float *b, size_t n) {
    float acc[FM_VEC_BLOCK] = {0};
    size_t full = n / FM_VEC_BLOCK * FM_VEC_BLOCK;
    for (size_t i = 0; i < full; i++)
        acc[i % FM_VEC_BLOCK] += b ? a[i] * b[i] : a[i];
    for (size_t i = full; i < n; i++)
        acc[i - full] += b ? a[i] * b[i] : a[i];
    for (int w = FM_VEC_BLOCK / 2; w >= 1; w /= 2)
        for (int j = 0; j < w; j++)
            acc[j] += acc[j + w];
    return acc[0];
}

START_TEST(test_array_loops) {
    FmRng rng;
    fm_rng_seed(&rng, 11);
    float x[200], y[200], z[200], w[200];
    fm_fill_uniform(&rng, x, 200, -20, 20);
    fm_fill_uniform(&rng, w, 200, -1, 1);
    for (size_t n = 0; n <= 200; n += (n < 40 ? 1 : 37)) {
        /* exp_sub: each element is exactly the scalar kernel's, in place too */
        fm_vec_exp_sub(y, x, 1.5f, n);
        for (size_t i = 0; i < n; i++)
            ck_assert(same_bits(y[i], fm_vec_exp1(x[i] - 1.5f)));
        memcpy(z, x, sizeof x);
        fm_vec_exp_sub(z, z, 1.5f, n);
        ck_assert_mem_eq(z, y, n * sizeof *y);
        /* sum and dot: bit for bit the documented lane order, and close to a double sum */
        float s = fm_vec_sum(x, n), d = fm_vec_dot(x, w, n);
        ck_assert(same_bits(s, sum_in_lane_order(x, NULL, n)));
        ck_assert(same_bits(d, sum_in_lane_order(x, w, n)));
        double ds = 0, dd = 0, mx = -INFINITY;
        for (size_t i = 0; i < n; i++)
            ds += x[i], dd += (double)x[i] * w[i], mx = fmax(mx, x[i]);
        ck_assert_double_le(fabs(s - ds), 1e-4); /* 200 terms of size <= 20: observed <= 8e-6 */
        ck_assert_double_le(fabs(d - dd), 1e-4);
        ck_assert(fm_vec_max(x, n) == (float)mx);
        /* scale */
        memcpy(z, x, sizeof x);
        fm_vec_scale(z, 0.25f, n);
        for (size_t i = 0; i < n; i++)
            ck_assert(same_bits(z[i], x[i] * 0.25f));
        if (n < 200) ck_assert(same_bits(z[n], x[n])); /* nothing past n is touched */
    }
    ck_assert(same_bits(fm_vec_sum(x, 0), 0.0f));
    ck_assert(isinf(fm_vec_max(x, 0)) && fm_vec_max(x, 0) < 0);
    /* max ignores NaN wherever it sits; all NaN (or all -inf) gives -inf */
    float v[37];
    for (int i = 0; i < 37; i++)
        v[i] = (float)i;
    v[0] = v[17] = v[36] = NAN;
    ck_assert_float_eq(fm_vec_max(v, 37), 35.0f);
    for (int i = 0; i < 37; i++)
        v[i] = NAN;
    ck_assert(isinf(fm_vec_max(v, 37)));
}
END_TEST

static Suite *vecmath_suite(void) {
    Suite *s = suite_create("vecmath");
    TCase *tc = tcase_create("vecmath");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_exp_accuracy);
    tcase_add_test(tc, test_exp_special_values);
    tcase_add_test(tc, test_softplus_accuracy);
    tcase_add_test(tc, test_ncdf_accuracy);
    tcase_add_test(tc, test_array_loops);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) {
    (void)argc;
    fm_blas_select_kernel(argv);
    return fm_test_run_suite(vecmath_suite());
}
