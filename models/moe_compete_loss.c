#include "models/moe_compete_loss.h"

#include <math.h>

#include "src/activation.h"
#include "src/vecmath.h"

float fm_moe_compete_response(const float *o, int D, float *scratch) {
    fm_softplus_forward(scratch, o, (size_t)D);
    return fm_vec_sum(scratch, (size_t)D) / (float)D;
}

static int is_winner(const int *sel, int K, int e) {
    for (int k = 0; k < K; k++)
        if (sel[k] == e) return 1;
    return 0;
}

double fm_moe_compete_router_loss(const float *p, const float *q, const int *sel, int T, int Er, int K,
                                  float beta) {
    if (T == 0) return 0.0;
    double sum = 0.0;
    for (int t = 0; t < T; t++)
        for (int e = 0; e < Er; e++) {
            const size_t i = (size_t)t * Er + e;
            const double diff = (double)p[i] - (double)q[i];
            const double weight = 1.0 + (is_winner(sel + (size_t)t * K, K, e) ? (double)beta : 0.0);
            sum += weight * diff * diff;
        }
    return sum / ((double)T * Er);
}

void fm_moe_compete_router_loss_backward(float *dp, const float *p, const float *q, const int *sel, int T,
                                         int Er, int K, float beta, float coef) {
    if (T == 0) return;
    /* L_R = (1 / (T Er)) sum weight (p - q)^2:  dp = coef 2 weight (p - q) / (T Er) */
    const double scale = 2.0 * (double)coef / ((double)T * Er);
    for (int t = 0; t < T; t++)
        for (int e = 0; e < Er; e++) {
            const size_t i = (size_t)t * Er + e;
            const double weight = 1.0 + (is_winner(sel + (size_t)t * K, K, e) ? (double)beta : 0.0);
            dp[i] = (float)(scale * weight * ((double)p[i] - (double)q[i]));
        }
}

static double clamped_norm(const float *a, int D) {
    double n2 = 0.0;
    for (int d = 0; d < D; d++)
        n2 += (double)a[d] * a[d];
    return fmax(sqrt(n2), (double)FM_COMPETE_COS_EPS);
}

static double dot_double(const float *a, const float *b, int D) {
    double s = 0.0;
    for (int d = 0; d < D; d++)
        s += (double)a[d] * b[d];
    return s;
}

double fm_moe_compete_cosine(const float *a, const float *b, int D) {
    return dot_double(a, b, D) / (clamped_norm(a, D) * clamped_norm(b, D));
}

double fm_moe_compete_diversity(const float *const *o, int K, int D, float *norm, float *cosine) {
    for (int a = 0; a < K; a++)
        norm[a] = (float)clamped_norm(o[a], D);
    double sum = 0.0;
    for (int a = 0; a < K; a++) {
        cosine[a * K + a] = 1.0f;
        for (int b = a + 1; b < K; b++) {
            const double c = dot_double(o[a], o[b], D) / ((double)norm[a] * norm[b]);
            cosine[a * K + b] = cosine[b * K + a] = (float)c;
            sum += c;
        }
    }
    return K < 2 ? 0.0 : sum * 2.0 / ((double)K * (K - 1));
}

void fm_moe_compete_diversity_backward(float *d_o, int a, const float *const *o, int K, int D,
                                       const float *norm, const float *cosine, float scale) {
    const double na = norm[a];
    /* whether the clamp is inactive, so that n_a = |o_a| moves with o_a */
    const int moving = na > (double)FM_COMPETE_COS_EPS;
    for (int b = 0; b < K; b++) {
        if (b == a) continue;
        /* cos = o_a . o_b / (n_a n_b):  dcos/do_a = o_b / (n_a n_b) - cos o_a / n_a^2 */
        const double cb = (double)scale / (na * norm[b]);
        const double ca = moving ? (double)scale * cosine[a * K + b] / (na * na) : 0.0;
        for (int d = 0; d < D; d++)
            d_o[d] += (float)(cb * o[b][d] - ca * o[a][d]);
    }
}
