#include "src/logreg.h"

#include <math.h>
#include <string.h>

#include "src/alloc.h"

void fm_logreg_free(FmLogReg *m) {
    if (!m) return;
    fm_free(m->w);
    fm_free(m->mean);
    fm_free(m->std);
    memset(m, 0, sizeof *m);
}

static double sigmoid(double x) { return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x)); }

/* log(1 + e^x) without overflow. */
static double log1pexp(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }

/* Solves A x = rhs for a symmetric positive definite A (P, P), overwriting A with its Cholesky
 * factor; returns 0, or -1 when A is not positive definite. */
static int cholesky_solve(double *A, double *x, const double *rhs, int P) {
    for (int j = 0; j < P; j++) {
        double d = A[(size_t)j * P + j];
        for (int k = 0; k < j; k++) d -= A[(size_t)j * P + k] * A[(size_t)j * P + k];
        if (!(d > 0)) return -1;
        d = sqrt(d);
        A[(size_t)j * P + j] = d;
        for (int i = j + 1; i < P; i++) {
            double s = A[(size_t)i * P + j];
            for (int k = 0; k < j; k++) s -= A[(size_t)i * P + k] * A[(size_t)j * P + k];
            A[(size_t)i * P + j] = s / d;
        }
    }
    for (int i = 0; i < P; i++) { /* L y = rhs */
        double s = rhs[i];
        for (int k = 0; k < i; k++) s -= A[(size_t)i * P + k] * x[k];
        x[i] = s / A[(size_t)i * P + i];
    }
    for (int i = P - 1; i >= 0; i--) { /* L^T x = y */
        double s = x[i];
        for (int k = i + 1; k < P; k++) s -= A[(size_t)k * P + i] * x[k];
        x[i] = s / A[(size_t)i * P + i];
    }
    return 0;
}

/* The objective at coefficients theta = (w, b) over standardised Z (n, F). */
static double objective(const double *Z, const float *y, const double *s, double s_sum, int64_t n, int F,
                        const double *theta, double l2) {
    double loss = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double *z = Z + (size_t)i * F;
        double eta = theta[F];
        for (int f = 0; f < F; f++) eta += theta[f] * z[f];
        /* BCE = log(1 + e^eta) - y eta */
        loss += s[i] * (log1pexp(eta) - y[i] * eta);
    }
    double pen = 0.0;
    for (int f = 0; f < F; f++) pen += theta[f] * theta[f];
    return loss / s_sum + 0.5 * l2 * pen;
}

FmStatus fm_logreg_fit(FmLogReg *m, const float *X, const float *y, const float *sample_weight,
                       int64_t n, int F, double l2, FmError *err) {
    memset(m, 0, sizeof *m);
    FM_ASSERT(F >= 0 && n >= 0 && l2 >= 0);
    int has[2] = {0, 0};
    for (int64_t i = 0; i < n; i++) {
        if (y[i] != 0.0f && y[i] != 1.0f)
            return FM_FAIL(err, FM_ERR_ARG, NULL, "logistic regression: target %lld is %g, not 0 or 1",
                           (long long)i, (double)y[i]);
        has[y[i] == 1.0f] = 1;
        for (int f = 0; f < F; f++)
            if (!isfinite(X[(size_t)i * F + f]))
                return FM_FAIL(err, FM_ERR_ARG, NULL, "logistic regression: feature %d of row %lld is not finite",
                               f, (long long)i);
    }
    if (!has[0] || !has[1])
        return FM_FAIL(err, FM_ERR_ARG, NULL, "logistic regression needs both classes among the %lld rows",
                       (long long)n);
    const int P = F + 1; /* coefficients and intercept */
    m->F = F;
    m->w = fm_calloc((size_t)F + 1, sizeof *m->w);
    m->mean = fm_calloc((size_t)F + 1, sizeof *m->mean);
    m->std = fm_calloc((size_t)F + 1, sizeof *m->std);
    double *Z = fm_malloc_array((size_t)n * (size_t)F + 1, sizeof *Z);
    double *s = fm_malloc_array((size_t)n + 1, sizeof *s);
    double *theta = fm_calloc((size_t)P, sizeof *theta), *trial = fm_calloc((size_t)P, sizeof *trial);
    double *grad = fm_calloc((size_t)P, sizeof *grad), *step = fm_calloc((size_t)P, sizeof *step);
    double *H = fm_calloc((size_t)P * (size_t)P, sizeof *H);
    FmStatus st = FM_OK;
    if (!m->w || !m->mean || !m->std || !Z || !s || !theta || !trial || !grad || !step || !H) {
        st = FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory fitting logistic regression");
        goto done;
    }
    double s_sum = 0.0;
    for (int64_t i = 0; i < n; i++) s_sum += s[i] = sample_weight ? sample_weight[i] : 1.0;
    /* Standardise with the weighted mean and population standard deviation. */
    for (int f = 0; f < F; f++) {
        double mu = 0.0, var = 0.0;
        for (int64_t i = 0; i < n; i++) mu += s[i] * X[(size_t)i * F + f];
        mu /= s_sum;
        for (int64_t i = 0; i < n; i++) {
            double d = X[(size_t)i * F + f] - mu;
            var += s[i] * d * d;
        }
        double sd = sqrt(var / s_sum);
        m->mean[f] = mu;
        m->std[f] = sd > 1e-12 ? sd : 1.0;
        for (int64_t i = 0; i < n; i++) Z[(size_t)i * F + f] = (X[(size_t)i * F + f] - mu) / m->std[f];
    }
    double loss = objective(Z, y, s, s_sum, n, F, theta, l2);
    for (m->iterations = 0; m->iterations < 100; m->iterations++) {
        /* Gradient and Hessian of the objective (intercept unpenalised):
         *   g = Z1^T s (p - y) / S + l2 [w; 0],  H = Z1^T diag(s p (1 - p)) Z1 / S + l2 [I 0; 0 0] */
        memset(grad, 0, (size_t)P * sizeof *grad);
        memset(H, 0, (size_t)P * (size_t)P * sizeof *H);
        for (int64_t i = 0; i < n; i++) {
            const double *z = Z + (size_t)i * F;
            double eta = theta[F];
            for (int f = 0; f < F; f++) eta += theta[f] * z[f];
            double p = sigmoid(eta);
            double r = s[i] * (p - y[i]) / s_sum, h = s[i] * p * (1.0 - p) / s_sum;
            for (int a = 0; a < P; a++) {
                double za = a < F ? z[a] : 1.0;
                grad[a] += r * za;
                double hza = h * za;
                double *row = H + (size_t)a * P;
                for (int c = 0; c <= a; c++) row[c] += hza * (c < F ? z[c] : 1.0);
            }
        }
        for (int a = 0; a < F; a++) {
            grad[a] += l2 * theta[a];
            H[(size_t)a * P + a] += l2;
        }
        H[(size_t)F * P + F] += 1e-12; /* keeps the factorisation defined for separable data */
        for (int a = 0; a < P; a++)
            for (int c = a + 1; c < P; c++) H[(size_t)a * P + c] = H[(size_t)c * P + a];
        if (cholesky_solve(H, step, grad, P) != 0) {
            st = FM_FAIL(err, FM_ERR_NUMERIC, NULL, "logistic regression: the Hessian is singular "
                         "(perfectly separable data without regularisation?)");
            goto done;
        }
        /* Newton step with halving until the objective does not rise. */
        double t = 1.0, next = loss, largest = 0.0;
        for (int halvings = 0; halvings < 30; halvings++, t *= 0.5) {
            for (int a = 0; a < P; a++) trial[a] = theta[a] - t * step[a];
            next = objective(Z, y, s, s_sum, n, F, trial, l2);
            if (next <= loss + 1e-15) break;
        }
        for (int a = 0; a < P; a++) {
            largest = fmax(largest, fabs(trial[a] - theta[a]));
            theta[a] = trial[a];
        }
        loss = next;
        if (largest < 1e-8) break;
    }
    memcpy(m->w, theta, (size_t)F * sizeof *theta);
    m->b = theta[F];
done:
    fm_free(Z);
    fm_free(s);
    fm_free(theta);
    fm_free(trial);
    fm_free(grad);
    fm_free(step);
    fm_free(H);
    if (st != FM_OK) fm_logreg_free(m);
    return st;
}

void fm_logreg_predict(const FmLogReg *m, const float *X, int64_t n, float *prob) {
    for (int64_t i = 0; i < n; i++) {
        double eta = m->b;
        for (int f = 0; f < m->F; f++) eta += m->w[f] * ((X[(size_t)i * m->F + f] - m->mean[f]) / m->std[f]);
        prob[i] = (float)sigmoid(eta);
    }
}
