#include "tests/support/testutil.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "src/alloc.h"

void fm_assert_close(const float *got, const float *want, size_t n, double atol, double rtol,
                     const char *what) {
    for (size_t i = 0; i < n; i++) {
        double diff = fabs((double)got[i] - (double)want[i]);
        int ok = diff <= atol + rtol * fabs((double)want[i]);
        ck_assert_msg(ok, "%s[%zu]: got %.9g, want %.9g (|diff| %.3g, atol %.3g, rtol %.3g)", what, i,
                      (double)got[i], (double)want[i], diff, atol, rtol);
    }
}

void fm_fill_uniform(FmRng *rng, float *x, size_t n, float lo, float hi) {
    for (size_t i = 0; i < n; i++) x[i] = lo + (hi - lo) * (float)fm_rng_uniform(rng);
}

double fm_dot_double(const float *a, const float *b, size_t n) {
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)a[i] * (double)b[i];
    return s;
}

FmGradCheck fm_gradcheck(FmLossFn loss, void *ctx, float *x, const float *analytic, size_t n,
                         double h, double floor) {
    FmGradCheck r = {0};
    for (size_t i = 0; i < n; i++) {
        float saved = x[i];
        /* Use the step actually representable in float so the divisor is exact. */
        float plus = (float)(saved + h), minus = (float)(saved - h);
        x[i] = plus;
        double lp = loss(ctx);
        x[i] = minus;
        double lm = loss(ctx);
        x[i] = saved;
        double numeric = (lp - lm) / ((double)plus - (double)minus);
        double a = analytic[i];
        double abs_err = fabs(a - numeric);
        double scale = fmax(fmax(fabs(a), fabs(numeric)), floor);
        double rel = abs_err / scale;
        if (abs_err > r.max_abs_err) r.max_abs_err = abs_err;
        if (rel > r.max_rel_err || i == 0) {
            if (rel > r.max_rel_err) r.max_rel_err = rel;
            r.worst = i;
            r.worst_analytic = a;
            r.worst_numeric = numeric;
        }
    }
    return r;
}

void fm_assert_gradcheck(FmLossFn loss, void *ctx, float *x, const float *analytic, size_t n,
                         double h, double tol, const char *what) {
    ck_assert_msg(n > 0, "%s: nothing to check", what);
    FmGradCheck r = fm_gradcheck(loss, ctx, x, analytic, n, h, 1e-3);
    ck_assert_msg(r.max_rel_err <= tol,
                  "%s: gradient mismatch at [%zu]: analytic %.8g, numeric %.8g (rel err %.3g > %.3g)",
                  what, r.worst, r.worst_analytic, r.worst_numeric, r.max_rel_err, tol);
}

void fm_fixture_load(FmFixture *fx, const char *path) {
    memset(fx, 0, sizeof *fx);
    FILE *f = fopen(path, "r");
    ck_assert_msg(f != NULL, "cannot open fixture %s", path);
    char word[256];
    int cap = 0;
    while (fscanf(f, "%255s", word) == 1) {
        if (word[0] == '#') {
            int c;
            while ((c = fgetc(f)) != EOF && c != '\n') {}
            continue;
        }
        ck_assert_msg(strcmp(word, "tensor") == 0, "%s: expected 'tensor', got '%s'", path, word);
        if (fx->n == cap) {
            cap = cap ? 2 * cap : 16;
            fx->tensors = realloc(fx->tensors, (size_t)cap * sizeof *fx->tensors);
            ck_assert(fx->tensors != NULL);
        }
        FmFixtureTensor *t = &fx->tensors[fx->n];
        memset(t, 0, sizeof *t);
        ck_assert_msg(fscanf(f, "%127s %d", t->name, &t->ndim) == 2 && t->ndim >= 0 && t->ndim <= 8,
                      "%s: bad tensor header", path);
        t->count = 1;
        for (int d = 0; d < t->ndim; d++) {
            ck_assert_msg(fscanf(f, "%d", &t->shape[d]) == 1 && t->shape[d] >= 0, "%s: bad shape of %s",
                          path, t->name);
            t->count *= (size_t)t->shape[d];
        }
        t->data = malloc((t->count ? t->count : 1) * sizeof(float));
        ck_assert(t->data != NULL);
        for (size_t i = 0; i < t->count; i++)
            ck_assert_msg(fscanf(f, "%f", &t->data[i]) == 1, "%s: %s: value %zu missing", path, t->name, i);
        fx->n++;
    }
    fclose(f);
}

const FmFixtureTensor *fm_fixture_get(const FmFixture *fx, const char *name, size_t count) {
    for (int i = 0; i < fx->n; i++) {
        if (strcmp(fx->tensors[i].name, name) != 0) continue;
        ck_assert_msg(count == 0 || fx->tensors[i].count == count, "fixture %s: %zu values, expected %zu",
                      name, fx->tensors[i].count, count);
        return &fx->tensors[i];
    }
    ck_abort_msg("fixture tensor %s missing", name);
    return NULL;
}

void fm_fixture_free(FmFixture *fx) {
    for (int i = 0; i < fx->n; i++) free(fx->tensors[i].data);
    free(fx->tensors);
    memset(fx, 0, sizeof *fx);
}

const char *fm_test_shared_dir(void) {
    const char *env = getenv("FUSEMOE_SHARED");
    return env && *env ? env : "../shared";
}

void fm_test_tmpdir(char *buf, size_t cap) {
    const char *base = getenv("TMPDIR");
    snprintf(buf, cap, "%s/fusemoe-test-XXXXXX", base && *base ? base : "/tmp");
    ck_assert_msg(mkdtemp(buf) != NULL, "cannot create a temporary directory");
}

void fm_test_rmtree(const char *path) {
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    ck_assert_int_eq(system(cmd), 0);
}

const char *fm_test_cli(void) {
    static char cli[1024];
    if (cli[0]) return cli;
    char exe[900];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0) {
        perror("tests: /proc/self/exe");
        exit(1);
    }
    exe[n] = '\0';
    for (int k = 0; k < 2; k++) {
        char *slash = strrchr(exe, '/');
        if (slash) *slash = '\0';
    }
    snprintf(cli, sizeof cli, "%s/fusemoe", exe);
    return cli;
}

int fm_test_run_suite(Suite *suite) {
    SRunner *runner = srunner_create(suite);
    srunner_run_all(runner, CK_NORMAL);
    int failed = srunner_ntests_failed(runner);
    srunner_free(runner);
    return failed == 0 ? 0 : 1;
}
