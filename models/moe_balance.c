#include "models/moe_balance.h"

#include <math.h>
#include <string.h>

#include "src/error.h"
#include "src/softmax.h"

#define CV_EPS 1e-10

double fm_moe_cv_squared(const double *v, int n) {
    if (n <= 0) return 0.0;
    double mean = 0.0, var = 0.0;
    for (int i = 0; i < n; i++)
        mean += v[i];
    mean /= n;
    for (int i = 0; i < n; i++)
        var += (v[i] - mean) * (v[i] - mean);
    var /= n;
    return var / (mean * mean + CV_EPS);
}

void fm_moe_cv_squared_backward(double *dv, const double *v, int n, double dloss) {
    if (n <= 0) return;
    double mean = 0.0, var = 0.0;
    for (int i = 0; i < n; i++)
        mean += v[i];
    mean /= n;
    for (int i = 0; i < n; i++)
        var += (v[i] - mean) * (v[i] - mean);
    var /= n;
    const double den = mean * mean + CV_EPS;
    /* CV^2 = var / den:  dvar/dv_i = 2 (v_i - mean) / n (the mean's own dependence cancels since
     * sum (v - mean) = 0),  dden/dv_i = 2 mean / n */
    for (int i = 0; i < n; i++)
        dv[i] += dloss * (2.0 * (v[i] - mean) / n / den - var / (den * den) * 2.0 * mean / n);
}

/* Standard normal density and distribution function. */
static double normal_pdf(double z) {
    return exp(-0.5 * z * z) * 0.39894228040143267794;
}
static double normal_cdf(double z) {
    return 0.5 * erfc(-z * 0.70710678118654752440);
}

static int in_selection(const int *sel, int K, int e) {
    for (int k = 0; k < K; k++)
        if (sel[k] == e) return 1;
    return 0;
}

/* The threshold of expert e for token t: the K-th largest noisy logit among the other experts. */
static int threshold_id(const FmMoeRoutes *rt, int t, int e) {
    const int *kth = rt->kth + (size_t)t * 2;
    return in_selection(rt->sel + (size_t)t * rt->K, rt->K, e) ? kth[1] : kth[0];
}

double fm_moe_balance_forward(FmMoeAuxState *a, const FmMoeRoutes *rt, int noisy) {
    const int T = rt->T, Er = rt->Er, K = rt->K, R = rt->R;
    memset(a->importance, 0, (size_t)R * Er * sizeof *a->importance);
    memset(a->load, 0, (size_t)R * Er * sizeof *a->load);
    for (int t = 0; t < T; t++) {
        const int r = rt->router[t];
        const int *sel = rt->sel + (size_t)t * K;
        double *imp = a->importance + (size_t)r * Er, *load = a->load + (size_t)r * Er;
        for (int k = 0; k < K; k++)
            imp[sel[k]] += rt->gate[(size_t)t * K + k];
        if (!noisy) {
            for (int k = 0; k < K; k++)
                load[sel[k]] += 1.0;
            continue;
        }
        for (int e = 0; e < Er; e++) {
            const size_t i = (size_t)t * Er + e;
            const int j = threshold_id(rt, t, e);
            /* Er == K: every expert is always selected, whatever the noise */
            double p = 1.0;
            if (j >= 0) {
                double thr = rt->noisy[(size_t)t * Er + j];
                p = normal_cdf(((double)rt->logit[i] - thr) / rt->noise_std[i]);
            }
            a->p_in[i] = (float)p;
            load[e] += p;
        }
    }
    double loss = 0.0;
    for (int r = 0; r < R; r++)
        loss += fm_moe_cv_squared(a->importance + (size_t)r * Er, Er) +
                fm_moe_cv_squared(a->load + (size_t)r * Er, Er);
    return loss;
}

void fm_moe_balance_backward(const FmMoeAuxState *a, const FmMoeRoutes *rt, FmMoeRouteGrads *g, int noisy,
                             float coef) {
    const int T = rt->T, Er = rt->Er, K = rt->K, R = rt->R;
    double dimp[FM_MOE_MAX_MODALITIES][FM_MOE_MAX_EXPERTS];
    double dload[FM_MOE_MAX_MODALITIES][FM_MOE_MAX_EXPERTS];
    FM_ASSERT(R <= FM_MOE_MAX_MODALITIES && Er <= FM_MOE_MAX_EXPERTS);
    for (int r = 0; r < R; r++) {
        memset(dimp[r], 0, (size_t)Er * sizeof dimp[r][0]);
        memset(dload[r], 0, (size_t)Er * sizeof dload[r][0]);
        fm_moe_cv_squared_backward(dimp[r], a->importance + (size_t)r * Er, Er, coef);
        fm_moe_cv_squared_backward(dload[r], a->load + (size_t)r * Er, Er, coef);
    }
    for (int t = 0; t < T; t++) {
        const int r = rt->router[t];
        const int *sel = rt->sel + (size_t)t * K;
        /* importance_e = sum_t g_{t,e} */
        for (int k = 0; k < K; k++)
            g->dgate[(size_t)t * K + k] += (float)dimp[r][sel[k]];
        if (!noisy) continue; /* the hard count has no gradient */
        for (int e = 0; e < Er; e++) {
            const int j = threshold_id(rt, t, e);
            if (j < 0) continue;
            const size_t i = (size_t)t * Er + e, ij = (size_t)t * Er + j;
            /* P = Phi(z), z = (l_e - l~_j) / s_e:
             *   dl_e += dP phi(z) / s_e,  dl~_j -= dP phi(z) / s_e,  ds_e -= dP phi(z) z / s_e */
            const double s = rt->noise_std[i];
            const double z = ((double)rt->logit[i] - (double)rt->noisy[ij]) / s;
            const double c = dload[r][e] * normal_pdf(z) / s;
            g->dlogit[i] += (float)c;
            g->dnoisy[ij] -= (float)c;
            g->dstd[i] -= (float)(c * z);
        }
    }
}

static double entropy(const double *p, int n) {
    double h = 0.0;
    for (int i = 0; i < n; i++)
        if (p[i] > 0.0) h -= p[i] * log(p[i]);
    return h;
}

double fm_moe_entropy_forward(FmMoeAuxState *a, const FmMoeRoutes *rt, const int *modality, int M, int E) {
    const int T = rt->T, Er = rt->Er;
    FM_ASSERT(E <= FM_MOE_MAX_EXPERTS);
    memset(a->mod_prob, 0, (size_t)M * E * sizeof *a->mod_prob);
    memset(a->mod_tokens, 0, (size_t)M * sizeof *a->mod_tokens);
    for (int t = 0; t < T; t++) {
        const int m = modality ? modality[t] : 0;
        double *pm = a->mod_prob + (size_t)m * E + rt->base[rt->router[t]];
        for (int e = 0; e < Er; e++)
            pm[e] += rt->prob[(size_t)t * Er + e];
        a->mod_tokens[m]++;
    }
    double q[FM_MOE_MAX_EXPERTS] = {0}, sum_h = 0.0;
    int present = 0;
    for (int m = 0; m < M; m++) {
        if (a->mod_tokens[m] == 0) continue;
        double *pm = a->mod_prob + (size_t)m * E;
        for (int i = 0; i < E; i++) {
            pm[i] /= a->mod_tokens[m];
            q[i] += pm[i];
        }
        sum_h += entropy(pm, E);
        present++;
    }
    if (present <= 1) return 0.0;
    for (int i = 0; i < E; i++)
        q[i] /= present;
    return sum_h / present - entropy(q, E);
}

void fm_moe_entropy_backward(FmMoeAuxState *a, const FmMoeRoutes *rt, FmMoeRouteGrads *g, const int *modality,
                             int M, int E, float coef) {
    const int T = rt->T, Er = rt->Er;
    int present = 0;
    double q[FM_MOE_MAX_EXPERTS] = {0};
    for (int m = 0; m < M; m++) {
        if (a->mod_tokens[m] == 0) continue;
        for (int i = 0; i < E; i++)
            q[i] += a->mod_prob[(size_t)m * E + i];
        present++;
    }
    if (present <= 1) return; /* E is identically 0 */
    for (int i = 0; i < E; i++)
        q[i] /= present;
    /* dE/dp^_{m,i} = (1/M') (-(log p^_{m,i} + 1)) + (1/M') (log q_i + 1)
     *             = (log q_i - log p^_{m,i}) / M'.
     * A zero p^_{m,i} means every p_{t,i} of the modality underflowed to 0; the softmax backward
     * multiplies its gradient by p_{t,i} = 0, so it is set to 0 instead of -log 0. */
    for (int t = 0; t < T; t++) {
        const int m = modality ? modality[t] : 0;
        const double *pm = a->mod_prob + (size_t)m * E;
        const int base = rt->base[rt->router[t]];
        const double scale = (double)coef / present / a->mod_tokens[m];
        for (int e = 0; e < Er; e++) {
            const int i = base + e;
            double d = pm[i] > 0.0 && q[i] > 0.0 ? (log(q[i]) - log(pm[i])) * scale : 0.0;
            a->dprob[(size_t)t * Er + e] = (float)d;
        }
    }
    /* p_t = softmax(l_t) */
    fm_softmax_backward(g->dlogit, a->dprob, rt->prob, T, Er);
}
