/* Float math that the compiler can vectorise: exp, softplus and the standard normal CDF as branch-free
 * inline kernels, and array loops (exp, sum, max, dot, scale) for the layers' hot paths.
 *
 * Why: glibc's expf and erff are scalar calls (about 4 to 30 ns each here), and the build's -O2
 * only vectorises loops whose trip count is a multiple of the vector width and whose bodies
 * have no float branches. The kernels below therefore select with bit masks instead of `?:`
 * on floats, and the array loops run in blocks of FM_VEC_BLOCK elements (a constant trip count)
 * through a local buffer, then finish the tail one element at a time with the same kernel.
 *
 * Results never depend on the vector width: every lane performs the same IEEE single-precision
 * operations in the same order (C11 mode does not contract a * b + c into FMA), and reductions
 * keep FM_VEC_BLOCK partial sums combined in a fixed order. Accuracy (measured against double
 * precision, see tests/test_vecmath.c):
 *   fm_vec_exp1       max relative error 1.2 ulp; 0 below -104, inf above 88.72, NaN stays
 *                     NaN; results below FLT_MIN within one subnormal step
 *   fm_vec_softplus1  max relative error 3.5 ulp; softplus(-inf) = 0, softplus(inf) = inf
 *   fm_vec_ncdf1      max absolute error 1e-7; relative error 5e-7 for x >= -3, 2.2e-6 down
 *                     to x = -9, 4e-6 down to x = -12.9 (below, Phi is subnormal);
 *                     Phi(-inf) = 0, Phi(inf) = 1, NaN stays NaN */
#ifndef FM_VECMATH_H
#define FM_VECMATH_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define FM_VEC_BLOCK 16

/* Put before a function whose loops are written for vectorisation: on x86-64 with GCC it is
 * also compiled for AVX2 and AVX-512 and the loader picks the widest version the CPU has
 * (function multi-versioning). All versions give the same bits, see above. */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define FM_VEC_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define FM_VEC_CLONES
#endif

static inline int32_t fm_vec_bits(float x) {
    int32_t i;
    memcpy(&i, &x, sizeof i);
    return i;
}

static inline float fm_vec_from_bits(int32_t i) {
    float x;
    memcpy(&x, &i, sizeof x);
    return x;
}

/* a where mask is all ones, b where it is 0: a bitwise select, exact for every value. */
static inline float fm_vec_select(int32_t mask, float a, float b) {
    return fm_vec_from_bits((fm_vec_bits(a) & mask) | (fm_vec_bits(b) & ~mask));
}

/* All ones when cond != 0, else 0. */
static inline int32_t fm_vec_mask(int cond) {
    return -(int32_t)(cond != 0);
}

/* e^x. Range reduction x = n ln2 + r with |r| <= ln2 / 2 (ln2 split in two parts so n ln2 is
 * exact), e^r by its Taylor polynomial of degree 7 (truncation error below 5.1e-9), and 2^n
 * applied in two halves so that results down to the smallest subnormal come out right. */
static inline float fm_vec_exp1(float x_in) {
    const int32_t xi = fm_vec_bits(x_in), ax = xi & 0x7fffffff, neg = xi >> 31;
    /* |x| beyond 89 (x >= 0) or 104 (x < 0), inf and NaN: computed on 0, replaced at the end */
    const int32_t limit = 0x42B20000 /* 89 */ + ((0x42D00000 /* 104 */ - 0x42B20000) & neg);
    const int32_t special = fm_vec_mask(ax > limit);
    const float x = fm_vec_from_bits(xi & ~special);
    /* n = round(x / ln2) by the 1.5 * 2^23 trick (exact for |x / ln2| < 2^22) */
    const float shifted = x * 1.44269504088896341f + 12582912.0f;
    const float nf = shifted - 12582912.0f;
    const int32_t n = fm_vec_bits(shifted) - 0x4B400000;
    const float r = (x - nf * 0.693359375f) - nf * -2.12194440e-4f;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    const int32_t n1 = n >> 1, n2 = n - n1; /* n in [-150, 129]: both halves are normal powers */
    const float y = p * fm_vec_from_bits((n1 + 127) << 23) * fm_vec_from_bits((n2 + 127) << 23);
    /* specials: NaN stays NaN, large positive gives inf, large negative gives 0 */
    const int32_t is_nan = fm_vec_mask(ax > 0x7f800000);
    const int32_t special_value = (xi & is_nan) | (0x7f800000 & ~neg & ~is_nan);
    return fm_vec_from_bits((special_value & special) | (fm_vec_bits(y) & ~special));
}

/* Phi(x) = P(N(0, 1) <= x) = (1 + erf(x / sqrt 2)) / 2, with z = |x| / sqrt 2:
 *   z < 0.5:  erf(z) = z P(z^2), P of degree 4
 *   z >= 0.5: erfc(z) = exp(-z^2) t G(s), t = 1 / (1 + z / 2), s = (t - 0.48333) / 0.31667,
 *             G of degree 9 (fitted on 0.5 <= z <= 10; z is capped at 10 inside G, where
 *             exp(-z^2) has already made erfc smaller than 4e-44)
 * P and G are weighted least-squares fits of the relative error on Chebyshev nodes, made by
 * scripts/fit-normal-cdf.py (relative errors 1.5e-9 and 2.5e-9 before float rounding). The
 * tail's relative accuracy is limited by the rounding of z^2 = x^2 / 2 inside exp (relative
 * error about z^2 2^-24). */
static inline float fm_vec_ncdf1(float x) {
    const float z = fabsf(x) * 0.707106781186547524f;
    const float u = 0.5f * x * x; /* z^2 with one rounding, not three */
    float pa = 4.728139844e-03f;
    pa = pa * u + -2.676265873e-02f;
    pa = pa * u + 1.128291860e-01f;
    pa = pa * u + -3.761261404e-01f;
    pa = pa * u + 1.128379226e+00f;
    const float near0 = 0.5f + 0.5f * (x * 0.707106781186547524f) * pa;
    const float zc = fm_vec_select(fm_vec_mask(z < 10.0f), z, 10.0f);
    const float t = 1.0f / (1.0f + 0.5f * zc);
    const float s = (t - 0.483333333f) * (1.0f / 0.316666667f);
    float g = -9.547432001e-07f;
    g = g * s + -6.591725651e-06f;
    g = g * s + 2.108381887e-05f;
    g = g * s + 9.130557737e-05f;
    g = g * s + -3.607940453e-04f;
    g = g * s + -1.639005262e-03f;
    g = g * s + 4.983776249e-03f;
    g = g * s + 5.529048294e-02f;
    g = g * s + 2.117403746e-01f;
    g = g * s + 4.994932413e-01f;
    const float half_erfc = 0.5f * (fm_vec_exp1(-u) * t * g);
    const float tail = fm_vec_select(fm_vec_mask(x >= 0.0f), 1.0f - half_erfc, half_erfc);
    return fm_vec_select(fm_vec_mask(z < 0.5f), near0, tail);
}

/* log(1 + e^x), the softplus, as max(x, 0) + log1p(e^-|x|) with log1p(e) = 2 atanh(s),
 * s = e / (2 + e) in [0, 1/3], by the series 2 s (1 + s^2/3 + s^4/5 + ... + s^14/15)
 * (truncation below 1.4e-8 relative). No overflow for large x, full relative accuracy for very
 * negative x (where the result is e^x). */
static inline float fm_vec_softplus1(float x) {
    const float e = fm_vec_exp1(-fabsf(x));
    const float s = e / (2.0f + e);
    const float s2 = s * s;
    float p = 1.0f / 15.0f;
    p = p * s2 + 1.0f / 13.0f;
    p = p * s2 + 1.0f / 11.0f;
    p = p * s2 + 1.0f / 9.0f;
    p = p * s2 + 1.0f / 7.0f;
    p = p * s2 + 1.0f / 5.0f;
    p = p * s2 + 1.0f / 3.0f;
    p = p * s2 + 1.0f;
    const float pos = fm_vec_select(fm_vec_mask(x > 0.0f), x, 0.0f);
    return pos + 2.0f * s * p;
}

/* y[i] = e^(x[i] - c). y may alias x. */
void fm_vec_exp_sub(float *y, const float *x, float c, size_t n);

/* Adds up FM_VEC_BLOCK partial sums pairwise (8 + 8, 4 + 4, 2 + 2, 1 + 1) and returns the
 * total; acc is overwritten. Loops that keep their own lane sums finish with it. */
float fm_vec_reduce_lanes(float *acc);

/* sum_i x[i]: lane j adds x[j], x[j + 16], ...; the tail goes to lanes 0, 1, ...; then
 * fm_vec_reduce_lanes. 0 for n = 0. */
float fm_vec_sum(const float *x, size_t n);

/* sum_i a[i] b[i], summed as fm_vec_sum does. */
float fm_vec_dot(const float *a, const float *b, size_t n);

/* max_i x[i], ignoring NaN entries; -inf for n = 0 or when every entry is NaN. */
float fm_vec_max(const float *x, size_t n);

/* x[i] *= a. */
void fm_vec_scale(float *x, float a, size_t n);

#endif
