#include "models/moe_gate.h"

#include <math.h>
#include <string.h>

#include "src/activation.h"
#include "src/error.h"
#include "src/gemm.h"
#include "src/softmax.h"
#include "src/vecmath.h"

/* ||x - w||^2 from the differences (never negative, exactly 0 at x == w), in FM_VEC_BLOCK
 * partial sums so that it vectorises (see src/vecmath.h). */
FM_VEC_CLONES
static float sq_dist(const float *x, const float *w, int D) {
    float acc[FM_VEC_BLOCK] = {0};
    int i = 0;
    for (; i + FM_VEC_BLOCK <= D; i += FM_VEC_BLOCK)
        for (int j = 0; j < FM_VEC_BLOCK; j++) {
            const float diff = x[i + j] - w[i + j];
            acc[j] += diff * diff;
        }
    for (int j = 0; i < D; i++, j++) {
        const float diff = x[i] - w[i];
        acc[j] += diff * diff;
    }
    return fm_vec_reduce_lanes(acc);
}

void fm_moe_gate_logits(float *logit, const float *x, const float *w, int Er, int D, FmGate gate) {
    const double eps = FM_MOE_LAPLACE_EPS;
    for (int e = 0; e < Er; e++) {
        const float *we = w + (size_t)e * D;
        switch (gate) {
        case FM_GATE_LAPLACE: logit[e] = (float)-(sqrt((double)sq_dist(x, we, D) + eps * eps) - eps); break;
        case FM_GATE_GAUSSIAN: logit[e] = -sq_dist(x, we, D); break;
        case FM_GATE_SOFTMAX: logit[e] = fm_vec_dot(x, we, (size_t)D); break;
        }
    }
}

void fm_moe_gate_select(int *sel, int *kth, const float *noisy, int Er, int K) {
    FM_ASSERT(K >= 1 && K <= Er);
    /* K + 1 passes of "largest not yet taken", strict > so the lowest index wins a tie. Er is
     * small (tens), so this beats any sort. */
    unsigned char taken[FM_MOE_MAX_EXPERTS];
    FM_ASSERT(Er <= FM_MOE_MAX_EXPERTS);
    memset(taken, 0, (size_t)Er);
    int last = -1;
    kth[0] = kth[1] = -1;
    for (int k = 0; k <= K && k < Er; k++) {
        int best = -1;
        for (int e = 0; e < Er; e++)
            if (!taken[e] && (best < 0 || noisy[e] > noisy[best])) best = e;
        taken[best] = 1;
        if (k < K) sel[k] = best;
        last = best;
        if (k == K - 1) kth[0] = last;
        if (k == K) kth[1] = last;
    }
}

/* out (T, Er) = x (T, D) @ w[router(t)]^T, row by row. One router: one GEMM. Several: one GEMM
 * per router over all tokens into scratch, keeping each token's own router's row (the routers
 * are tiny next to the experts, so the extra rows cost less than gathering the tokens). */
static void router_matmul(float *out, const FmMoeRoutes *rt, const float *x, const float *const *w, int D,
                          float *scratch) {
    const int T = rt->T, Er = rt->Er;
    if (rt->R == 1) {
        fm_gemm(FM_NO_TRANS, FM_TRANS, T, Er, D, 1.0f, x, D, w[0], D, 0.0f, out, Er);
        return;
    }
    for (int r = 0; r < rt->R; r++) {
        fm_gemm(FM_NO_TRANS, FM_TRANS, T, Er, D, 1.0f, x, D, w[r], D, 0.0f, scratch, Er);
        for (int t = 0; t < T; t++)
            if (rt->router[t] == r)
                memcpy(out + (size_t)t * Er, scratch + (size_t)t * Er, (size_t)Er * sizeof *out);
    }
}

/* The backward of router_matmul for coefficients c (T, Er): dx (T, D) += c W_router(t) and
 * dw[r] (Er, D) += c_r^T x, where c_r keeps the rows of router r's tokens (masked into scratch).
 * dx or dw[r] may be NULL. */
static void router_matmul_backward(float *dx, float *const *dw, const float *c, const FmMoeRoutes *rt,
                                   const float *x, const float *const *w, int D, float *scratch) {
    const int T = rt->T, Er = rt->Er;
    for (int r = 0; r < rt->R; r++) {
        const float *cr = c;
        if (rt->R > 1) {
            for (int t = 0; t < T; t++) {
                float *row = scratch + (size_t)t * Er;
                if (rt->router[t] == r)
                    memcpy(row, c + (size_t)t * Er, (size_t)Er * sizeof *row);
                else
                    memset(row, 0, (size_t)Er * sizeof *row);
            }
            cr = scratch;
        }
        if (dx) fm_gemm(FM_NO_TRANS, FM_NO_TRANS, T, D, Er, 1.0f, cr, Er, w[r], D, 1.0f, dx, D);
        if (dw && dw[r]) fm_gemm(FM_TRANS, FM_NO_TRANS, Er, D, T, 1.0f, cr, Er, x, D, 1.0f, dw[r], D);
    }
}

void fm_moe_gate_forward(FmMoeRoutes *rt, const float *x, const float *const *w, const float *const *wn,
                         int D, FmGate gate, int noisy, float *scratch) {
    const int T = rt->T, Er = rt->Er, K = rt->K;
    const size_t n = (size_t)T * Er;
    if (gate == FM_GATE_SOFTMAX) {
        router_matmul(rt->logit, rt, x, w, D, scratch);
    } else {
        for (int t = 0; t < T; t++)
            fm_moe_gate_logits(rt->logit + (size_t)t * Er, x + (size_t)t * D, w[rt->router[t]], Er, D, gate);
    }
    if (noisy) {
        /* s = softplus(x . wn) + floor;  l~ = l + eps s */
        router_matmul(rt->noise_pre, rt, x, wn, D, scratch);
        fm_softplus_forward(rt->noise_std, rt->noise_pre, n);
        for (size_t i = 0; i < n; i++) {
            rt->noise_std[i] += FM_MOE_NOISE_FLOOR;
            rt->noisy[i] = rt->logit[i] + rt->eps[i] * rt->noise_std[i];
        }
    } else {
        memcpy(rt->noisy, rt->logit, n * sizeof *rt->noisy);
    }
    fm_softmax_forward(rt->prob, rt->logit, NULL, T, Er);
    for (int t = 0; t < T; t++) {
        int *sel = rt->sel + (size_t)t * K;
        const float *nt = rt->noisy + (size_t)t * Er;
        fm_moe_gate_select(sel, rt->kth + (size_t)t * 2, nt, Er, K);
        for (int k = 0; k < K; k++)
            rt->sel_logit[(size_t)t * K + k] = nt[sel[k]];
    }
    /* g = softmax over S of l~ */
    fm_softmax_forward(rt->gate, rt->sel_logit, NULL, T, K);
}

void fm_moe_gate_backward(const FmMoeRoutes *rt, FmMoeRouteGrads *g, float *dx, float *const *dw,
                          float *const *dwn, const float *x, const float *const *w, const float *const *wn,
                          int D, FmGate gate, int noisy) {
    const int T = rt->T, Er = rt->Er, K = rt->K;
    const size_t n = (size_t)T * Er;
    /* g = softmax(l~_S):  dl~_S = g (dg - sum_j g_j dg_j), scattered to the selected experts */
    memset(g->dsel, 0, (size_t)T * K * sizeof *g->dsel);
    fm_softmax_backward(g->dsel, g->dgate, rt->gate, T, K);
    for (int t = 0; t < T; t++)
        for (int k = 0; k < K; k++)
            g->dnoisy[(size_t)t * Er + rt->sel[(size_t)t * K + k]] += g->dsel[(size_t)t * K + k];
    /* l~ = l + eps s:  dl += dl~,  ds += eps dl~ */
    for (size_t i = 0; i < n; i++)
        g->dlogit[i] += g->dnoisy[i];
    if (noisy) {
        for (size_t i = 0; i < n; i++)
            g->dstd[i] += rt->eps[i] * g->dnoisy[i];
        /* s = softplus(pre) + floor:  dpre = ds sigmoid(pre);  pre = x wn^T:  dx += dpre wn,
         * dwn += dpre^T x */
        memset(g->dpre, 0, n * sizeof *g->dpre);
        fm_softplus_backward(g->dpre, g->dstd, rt->noise_pre, n);
        router_matmul_backward(dx, dwn, g->dpre, rt, x, wn, D, g->coef);
    }
    if (gate == FM_GATE_SOFTMAX) {
        /* l = x w^T:  dx += dl w,  dw += dl^T x */
        router_matmul_backward(dx, dw, g->dlogit, rt, x, w, D, g->coef);
        return;
    }
    /* Laplace  l_e = -(r_e - eps), r_e = sqrt(||x - w_e||^2 + eps^2):  dl_e/dx = -(x - w_e) / r_e
     * Gaussian l_e = -||x - w_e||^2:                                 dl_e/dx = -2 (x - w_e)
     * and dl_e/dw_e = -dl_e/dx. With c_e = dl_e / r_e (Laplace) or 2 dl_e (Gaussian):
     *   dx += -(sum_e c_e) x + c W,   dw_e += sum_t c_{t,e} x_t - (sum_t c_{t,e}) w_e.
     * r_e is recovered from the logit (r_e = eps - l_e). c is kept in g->dpre, free by now. */
    float *c = g->dpre;
    double colsum[FM_MOE_MAX_MODALITIES][FM_MOE_MAX_EXPERTS];
    for (int r = 0; r < rt->R; r++)
        memset(colsum[r], 0, (size_t)Er * sizeof colsum[r][0]);
    for (int t = 0; t < T; t++) {
        const int r = rt->router[t];
        double rowsum = 0.0;
        for (int e = 0; e < Er; e++) {
            const size_t i = (size_t)t * Er + e;
            const float ce = gate == FM_GATE_LAPLACE
                                 ? (float)(g->dlogit[i] / ((double)FM_MOE_LAPLACE_EPS - (double)rt->logit[i]))
                                 : 2.0f * g->dlogit[i];
            c[i] = ce;
            rowsum += ce;
            colsum[r][e] += ce;
        }
        if (dx)
            for (int d = 0; d < D; d++)
                dx[(size_t)t * D + d] -= (float)rowsum * x[(size_t)t * D + d];
    }
    router_matmul_backward(dx, dw, c, rt, x, w, D, g->coef);
    if (dw)
        for (int r = 0; r < rt->R; r++) {
            if (!dw[r]) continue;
            for (int e = 0; e < Er; e++)
                for (int d = 0; d < D; d++)
                    dw[r][(size_t)e * D + d] -= (float)colsum[r][e] * w[r][(size_t)e * D + d];
        }
}
