/* Expert utilisation (src/evaluate_usage.h). */
#include "src/evaluate_usage.h"

#include <math.h>
#include <string.h>

#include "src/alloc.h"

FmStatus fm_evaluate_usage_create(FmExpertUsage *u, const FmModel *model, FmError *err) {
    memset(u, 0, sizeof *u);
    const FmModelConfig *c = &model->cfg;
    u->count = fm_calloc((size_t)c->layers * (size_t)c->M * (size_t)c->E, sizeof *u->count);
    if (!u->count) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory for expert counts");
    u->layers = c->layers;
    u->M = c->M;
    u->E = c->E;
    u->disjoint = c->router == FM_ROUTER_DISJOINT;
    return FM_OK;
}

void fm_evaluate_usage_free(FmExpertUsage *u) {
    if (!u) return;
    fm_free(u->count);
    memset(u, 0, sizeof *u);
}

void fm_evaluate_usage_clear(FmExpertUsage *u) {
    memset(u->count, 0, (size_t)u->layers * (size_t)u->M * (size_t)u->E * sizeof *u->count);
}

void fm_evaluate_usage_add(FmExpertUsage *u, const FmModelWorkspace *ws) {
    const size_t per_layer = (size_t)u->M * (size_t)u->E;
    for (int l = 0; l < u->layers; l++) {
        const int *c = fm_model_expert_counts(ws, l);
        int64_t *dst = u->count + (size_t)l * per_layer;
        for (size_t i = 0; i < per_layer; i++) dst[i] += c[i];
    }
}

/* Whether modality m (-1: any) can reach expert e. */
static int reachable(const FmExpertUsage *u, int m, int e) {
    if (!u->disjoint || m < 0) return 1;
    int per = u->E / u->M;
    return e >= m * per && e < (m + 1) * per;
}

/* Tokens of modality m (-1: all) that layer l sent to expert e. */
static int64_t tokens(const FmExpertUsage *u, int l, int m, int e) {
    const int64_t *c = u->count + (size_t)l * (size_t)u->M * (size_t)u->E;
    if (m >= 0) return c[(size_t)m * u->E + e];
    int64_t s = 0;
    for (int k = 0; k < u->M; k++) s += c[(size_t)k * u->E + e];
    return s;
}

double fm_evaluate_usage_share(const FmExpertUsage *u, int layer, int m, int e) {
    if (!reachable(u, m, e)) return NAN;
    int64_t total = 0;
    for (int k = 0; k < u->E; k++) total += tokens(u, layer, m, k);
    return total > 0 ? (double)tokens(u, layer, m, e) / (double)total : NAN;
}

double fm_evaluate_usage_entropy(const FmExpertUsage *u, int layer, int m) {
    int64_t total = 0;
    int avail = 0;
    for (int e = 0; e < u->E; e++) {
        if (!reachable(u, m, e)) continue;
        total += tokens(u, layer, m, e);
        avail++;
    }
    if (total == 0) return NAN;
    if (avail < 2) return 1.0; /* one reachable expert: nothing to spread over */
    double h = 0.0;
    for (int e = 0; e < u->E; e++) {
        if (!reachable(u, m, e)) continue;
        double p = (double)tokens(u, layer, m, e) / (double)total;
        if (p > 0.0) h -= p * log(p);
    }
    return h / log((double)avail);
}

int fm_evaluate_usage_dead(const FmExpertUsage *u, int layer, int m) {
    int dead = 0;
    for (int e = 0; e < u->E; e++)
        if (reachable(u, m, e) && tokens(u, layer, m, e) == 0) dead++;
    return dead;
}
