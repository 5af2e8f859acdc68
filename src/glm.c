#include "src/glm.h"

#include <math.h>
#include <string.h>

#include "src/alloc.h"
#include "src/cholesky.h"

void fm_glm_free(FmGlm *m) {
    if (!m) return;
    fm_free(m->w);
    fm_free(m->mean);
    fm_free(m->std);
    memset(m, 0, sizeof *m);
}

static double sigmoid(double x) { return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x)); }

/* log(1 + e^x) without overflow. */
static double log1pexp(double x) { return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x)); }

/* One sample's loss at linear predictor eta. */
static double sample_loss(FmGlmFamily family, double eta, double y) {
    if (family == FM_GLM_GAUSSIAN) return 0.5 * (eta - y) * (eta - y);
    return log1pexp(eta) - y * eta; /* BCE of sigmoid(eta) */
}

/* The objective at coefficients theta = (w, b) over standardised Z (n, F). */
static double objective(FmGlmFamily family, const double *Z, const float *y, const double *s, double s_sum,
                        int64_t n, int F, const double *theta, double l2) {
    double loss = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double *z = Z + (size_t)i * F;
        double eta = theta[F];
        for (int f = 0; f < F; f++) eta += theta[f] * z[f];
        loss += s[i] * sample_loss(family, eta, y[i]);
    }
    double pen = 0.0;
    for (int f = 0; f < F; f++) pen += theta[f] * theta[f];
    return loss / s_sum + 0.5 * l2 * pen;
}

FmStatus fm_glm_fit(FmGlm *m, FmGlmFamily family, const float *X, const float *y, const float *sample_weight,
                    int64_t n, int F, double l2, FmError *err) {
    memset(m, 0, sizeof *m);
    FM_ASSERT(F >= 0 && n >= 0 && l2 >= 0);
    int has[2] = {0, 0};
    const char *what = family == FM_GLM_LOGISTIC ? "logistic regression" : "ridge regression";
    for (int64_t i = 0; i < n; i++) {
        if (family == FM_GLM_LOGISTIC && y[i] != 0.0f && y[i] != 1.0f)
            return FM_FAIL(err, FM_ERR_ARG, NULL, "%s: target %lld is %g, not 0 or 1", what, (long long)i,
                           (double)y[i]);
        if (!isfinite(y[i]))
            return FM_FAIL(err, FM_ERR_ARG, NULL, "%s: target %lld is not finite", what, (long long)i);
        has[y[i] == 1.0f] = 1;
        for (int f = 0; f < F; f++)
            if (!isfinite(X[(size_t)i * F + f]))
                return FM_FAIL(err, FM_ERR_ARG, NULL, "%s: feature %d of row %lld is not finite", what, f,
                               (long long)i);
    }
    if (family == FM_GLM_LOGISTIC && (!has[0] || !has[1]))
        return FM_FAIL(err, FM_ERR_ARG, NULL, "logistic regression needs both classes among the %lld rows",
                       (long long)n);
    if (n == 0) return FM_FAIL(err, FM_ERR_ARG, NULL, "%s needs at least one row", what);
    const int P = F + 1; /* coefficients and intercept */
    m->family = family;
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
        st = FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory fitting %s", what);
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
    double loss = objective(family, Z, y, s, s_sum, n, F, theta, l2);
    for (m->iterations = 0; m->iterations < 100; m->iterations++) {
        /* Gradient and Hessian of the objective (intercept unpenalised), with mu the mean
         * (sigmoid(eta) or eta) and v its derivative (mu (1 - mu) or 1):
         *   g = Z1^T s (mu - y) / S + l2 [w; 0],  H = Z1^T diag(s v) Z1 / S + l2 [I 0; 0 0] */
        memset(grad, 0, (size_t)P * sizeof *grad);
        memset(H, 0, (size_t)P * (size_t)P * sizeof *H);
        for (int64_t i = 0; i < n; i++) {
            const double *z = Z + (size_t)i * F;
            double eta = theta[F];
            for (int f = 0; f < F; f++) eta += theta[f] * z[f];
            double mu = family == FM_GLM_LOGISTIC ? sigmoid(eta) : eta;
            double v = family == FM_GLM_LOGISTIC ? mu * (1.0 - mu) : 1.0;
            double r = s[i] * (mu - y[i]) / s_sum, h = s[i] * v / s_sum;
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
        if (fm_cholesky_solve(H, step, grad, P) != 0) {
            st = FM_FAIL(err, FM_ERR_NUMERIC, NULL, "%s: the Hessian is singular "
                         "(perfectly separable data without regularisation?)", what);
            goto done;
        }
        /* Newton step with halving until the objective does not rise. */
        double t = 1.0, next = loss, largest = 0.0;
        for (int halvings = 0; halvings < 30; halvings++, t *= 0.5) {
            for (int a = 0; a < P; a++) trial[a] = theta[a] - t * step[a];
            next = objective(family, Z, y, s, s_sum, n, F, trial, l2);
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
    if (st != FM_OK) fm_glm_free(m);
    return st;
}

void fm_glm_predict(const FmGlm *m, const float *X, int64_t n, float *out) {
    for (int64_t i = 0; i < n; i++) {
        double eta = m->b;
        for (int f = 0; f < m->F; f++) eta += m->w[f] * ((X[(size_t)i * m->F + f] - m->mean[f]) / m->std[f]);
        out[i] = (float)(m->family == FM_GLM_LOGISTIC ? sigmoid(eta) : eta);
    }
}
