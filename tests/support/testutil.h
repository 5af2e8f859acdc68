/* Shared helpers for the Check suites: closeness assertions, the central-difference gradient
 * checker, PyTorch fixture files, and the location of the shared data. */
#ifndef FM_TESTUTIL_H
#define FM_TESTUTIL_H

#include <check.h>
#include <stddef.h>

#include "src/rng.h"

/* Fails the current test unless |got[i] - want[i]| <= atol + rtol * |want[i]| for every i;
 * the message names `what`, the first bad index and both values. NaN never passes. */
void fm_assert_close(const float *got, const float *want, size_t n, double atol, double rtol,
                     const char *what);

/* Fills x[0..n) with uniform values in [lo, hi). */
void fm_fill_uniform(FmRng *rng, float *x, size_t n, float lo, float hi);

/* sum_i a[i] * b[i] accumulated in double: the scalar loss of the gradient checks. */
double fm_dot_double(const float *a, const float *b, size_t n);

/* A loss evaluated at the current values of the checked variables (which the checker perturbs
 * in place); must be deterministic. */
typedef double (*FmLossFn)(void *ctx);

typedef struct {
    double max_abs_err;  /* max |analytic - numeric| */
    double max_rel_err;  /* max |analytic - numeric| / max(|analytic|, |numeric|, floor) */
    size_t worst;        /* index of the worst relative error */
    double worst_analytic, worst_numeric;
} FmGradCheck;

/* Central differences of loss(x) around x, one element at a time, with step h (the float is
 * perturbed in place and restored): numeric_i = (loss(x + h e_i) - loss(x - h e_i)) / 2h,
 * compared with analytic[i]. `floor` keeps relative errors of near-zero gradients meaningful. */
FmGradCheck fm_gradcheck(FmLossFn loss, void *ctx, float *x, const float *analytic, size_t n,
                         double h, double floor);

/* Runs fm_gradcheck and fails the test, naming `what`, if max_rel_err > tol. */
void fm_assert_gradcheck(FmLossFn loss, void *ctx, float *x, const float *analytic, size_t n,
                         double h, double tol, const char *what);

/* A fixture file: named float tensors written by tests/fixtures/generate.py.
 * Format, one tensor after another: a line "tensor <name> <ndim> <d0> ... <dn-1>", then the
 * values (C order) separated by whitespace; lines starting with '#' are comments. */
typedef struct {
    char name[128];
    int ndim;
    int shape[8];
    size_t count;
    float *data;
} FmFixtureTensor;

typedef struct {
    FmFixtureTensor *tensors;
    int n;
} FmFixture;

/* Loads `path` (relative to the project root, where the suites run); fails the test on any
 * error. Free with fm_fixture_free. */
void fm_fixture_load(FmFixture *fx, const char *path);
/* The tensor called `name`; fails the test when it is missing or its size is not `count`
 * (count 0: any size). */
const FmFixtureTensor *fm_fixture_get(const FmFixture *fx, const char *name, size_t count);
void fm_fixture_free(FmFixture *fx);

/* The shared data folder: $FUSEMOE_SHARED, else ../shared relative to the project root. */
const char *fm_test_shared_dir(void);

/* A fresh empty temporary directory for the current test (removed by the OS's tmp cleaning,
 * or by fm_test_rmtree). Writes its path into buf. */
void fm_test_tmpdir(char *buf, size_t cap);
/* Removes a directory tree made by a test. */
void fm_test_rmtree(const char *path);

/* The fusemoe program of the build the running suite belongs to: <build>/tests/test_x ->
 * <build>/fusemoe. Exits the process when /proc/self/exe cannot be read. */
const char *fm_test_cli(void);

/* Runs a suite and returns the process exit status (0 when every test passed). */
int fm_test_run_suite(Suite *suite);

#endif
