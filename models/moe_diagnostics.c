#include "models/moe_diagnostics.h"

#include <math.h>
#include <string.h>

#include "models/moe_compete.h"
#include "models/moe_compete_loss.h"
#include "models/moe_gate.h"

void fm_moe_usage_reset(FmMoeUsage *u, int E) {
    FM_ASSERT(E >= 1 && E <= FM_MOE_MAX_EXPERTS);
    memset(u, 0, sizeof *u);
    u->E = E;
}

void fm_moe_usage_add(FmMoeUsage *u, const FmMoe *moe, const FmMoeCache *cache) {
    const int *counts = fm_moe_expert_counts(cache);
    FM_ASSERT(u->E == moe->cfg.E);
    for (int m = 0; m < moe->cfg.M; m++)
        for (int e = 0; e < u->E; e++)
            u->counts[e] += counts[(size_t)m * u->E + e];
}

double fm_moe_diag_utilisation_entropy(const long long *counts, int E) {
    long long total = 0;
    for (int e = 0; e < E; e++)
        total += counts[e];
    if (total == 0) return NAN;
    if (E == 1) return 1.0;
    double h = 0.0;
    for (int e = 0; e < E; e++)
        if (counts[e] > 0) {
            const double p = (double)counts[e] / (double)total;
            h -= p * log(p);
        }
    return h / log((double)E);
}

int fm_moe_diag_dead_experts(const long long *counts, int E) {
    int dead = 0;
    for (int e = 0; e < E; e++)
        dead += counts[e] == 0;
    return dead;
}

double fm_moe_diag_mean_pairwise_cosine(const float *const *rows, int n, int D) {
    if (n < 2) return NAN;
    double sum = 0.0;
    for (int a = 0; a < n; a++)
        for (int b = a + 1; b < n; b++)
            sum += fm_moe_compete_cosine(rows[a], rows[b], D);
    return sum * 2.0 / ((double)n * (n - 1));
}

double fm_moe_diag_topk_agreement(const int *a, const int *b, int T, int K) {
    if (T == 0) return NAN;
    long long shared = 0;
    for (int t = 0; t < T; t++)
        for (int i = 0; i < K; i++)
            for (int j = 0; j < K; j++)
                shared += a[(size_t)t * K + i] == b[(size_t)t * K + j];
    return (double)shared / ((double)T * K);
}

void fm_moe_diag_probe_add(const FmMoe *moe, const FmParams *params, FmMoeCache *cache, float *out,
                           const float *x, const int *modality, int T, FmMoeProbeSums *sums) {
    fm_moe_compete_forward(moe, params, cache, out, x, modality, T, 0, NULL, 0.0f, NULL);
    FmCompeteView v;
    fm_moe_compete_view(cache, &v);
    const int K = v.K, Er = v.E_r, D = moe->cfg.D;
    const float *rows[FM_MOE_MAX_EXPERTS];
    int router_top[FM_MOE_MAX_EXPERTS], kth[2];
    for (int t = 0; t < T; t++) {
        const int m = modality ? modality[t] : 0;
        if (Er > 1) {
            for (int j = 0; j < Er; j++)
                rows[j] = fm_moe_compete_expert_output(cache, t, j);
            sums->similarity[m] += fm_moe_diag_mean_pairwise_cosine(rows, Er, D);
            sums->similarity_tokens[m]++;
        }
        fm_moe_gate_select(router_top, kth, v.router_logits + (size_t)t * Er, Er, K);
        sums->agreement[m] += fm_moe_diag_topk_agreement(router_top, v.winners + (size_t)t * K, 1, K);
        sums->tokens[m]++;
    }
}

void fm_moe_diag_probe(const FmMoe *moe, const FmParams *params, FmMoeCache *cache, float *out,
                       const float *x, const int *modality, int T, FmMoeProbe *probe) {
    FmMoeProbeSums s;
    memset(&s, 0, sizeof s);
    fm_moe_diag_probe_add(moe, params, cache, out, x, modality, T, &s);
    double sim = 0.0, agree = 0.0;
    long long n_sim = 0, n = 0;
    for (int m = 0; m < moe->cfg.M; m++) {
        sim += s.similarity[m];
        agree += s.agreement[m];
        n_sim += s.similarity_tokens[m];
        n += s.tokens[m];
    }
    probe->similarity = n_sim > 0 ? sim / (double)n_sim : NAN;
    probe->agreement = n > 0 ? agree / (double)n : NAN;
}
