/* Expert diagnostics of an evaluation (src/evaluate_experts.h). */
#include "src/evaluate_experts.h"

#include <math.h>
#include <string.h>

#include "models/moe_compete.h"
#include "src/alloc.h"
#include "src/json_out.h"

FmStatus fm_evaluate_experts_create(FmExpertProbe *p, const FmModel *model, int chunk, FmError *err) {
    memset(p, 0, sizeof *p);
    const FmModelConfig *c = &model->cfg;
    if (chunk < 1) return FM_FAIL(err, FM_ERR_ARG, NULL, "expert probe: chunk of %d tokens", chunk);
    FmStatus st = fm_moe_cache_create_compete(&p->cache, &model->layer[0].moe.cfg, chunk, err);
    if (st != FM_OK) return st;
    p->out = fm_malloc_array((size_t)chunk * (size_t)c->D, sizeof *p->out);
    p->sums = fm_calloc((size_t)c->layers, sizeof *p->sums);
    if (!p->out || !p->sums) {
        fm_evaluate_experts_free(p);
        return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory for the expert probe");
    }
    p->layers = c->layers;
    p->M = c->M;
    p->D = c->D;
    p->chunk = chunk;
    return FM_OK;
}

void fm_evaluate_experts_free(FmExpertProbe *p) {
    if (!p) return;
    fm_moe_cache_free(p->cache);
    fm_free(p->out);
    fm_free(p->sums);
    memset(p, 0, sizeof *p);
}

void fm_evaluate_experts_clear(FmExpertProbe *p) {
    memset(p->sums, 0, (size_t)p->layers * sizeof *p->sums);
}

void fm_evaluate_experts_add(FmExpertProbe *p, const FmModel *model, const FmModelWorkspace *ws) {
    FM_ASSERT(model->cfg.layers == p->layers && model->cfg.D == p->D);
    for (int l = 0; l < p->layers; l++) {
        const int *modality;
        int N;
        const float *x = fm_model_moe_input(ws, model, l, &modality, &N);
        for (int t0 = 0; t0 < N; t0 += p->chunk) {
            const int n = N - t0 < p->chunk ? N - t0 : p->chunk;
            fm_moe_diag_probe_add(&model->layer[l].moe, &model->params, p->cache, p->out,
                                  x + (size_t)t0 * p->D, modality + t0, n, &p->sums[l]);
        }
    }
}

/* sum[m] / n[m] over modality m, or over all modalities for m = -1 (NaN for no token). */
static double mean_of(const double *sum, const long long *n, int M, int m) {
    double s = 0.0;
    long long k = 0;
    for (int i = 0; i < M; i++)
        if (m < 0 || i == m) {
            s += sum[i];
            k += n[i];
        }
    return k > 0 ? s / (double)k : NAN;
}

double fm_evaluate_experts_similarity(const FmExpertProbe *p, int layer, int m) {
    const FmMoeProbeSums *s = &p->sums[layer];
    return mean_of(s->similarity, s->similarity_tokens, p->M, m);
}

double fm_evaluate_experts_agreement(const FmExpertProbe *p, int layer, int m) {
    const FmMoeProbeSums *s = &p->sums[layer];
    return mean_of(s->agreement, s->tokens, p->M, m);
}

size_t fm_evaluate_experts_n_values(const FmExpertProbe *p) {
    return (size_t)p->layers * (size_t)p->M * 4;
}

void fm_evaluate_experts_get_values(const FmExpertProbe *p, double *v) {
    for (int l = 0; l < p->layers; l++)
        for (int m = 0; m < p->M; m++) {
            const FmMoeProbeSums *s = &p->sums[l];
            double *o = v + ((size_t)l * p->M + m) * 4;
            o[0] = s->similarity[m];
            o[1] = (double)s->similarity_tokens[m];
            o[2] = s->agreement[m];
            o[3] = (double)s->tokens[m];
        }
}

void fm_evaluate_experts_set_values(FmExpertProbe *p, const double *v) {
    for (int l = 0; l < p->layers; l++)
        for (int m = 0; m < p->M; m++) {
            FmMoeProbeSums *s = &p->sums[l];
            const double *o = v + ((size_t)l * p->M + m) * 4;
            s->similarity[m] = o[0];
            s->similarity_tokens[m] = (long long)o[1];
            s->agreement[m] = o[2];
            s->tokens[m] = (long long)o[3];
        }
}

/* The mean of the finite values among v[0..n) (NaN when none is). */
static double finite_mean(const double *v, int n) {
    double s = 0.0;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) {
            s += v[i];
            k++;
        }
    return k > 0 ? s / k : NAN;
}

FmStatus fm_evaluate_experts_report(cJSON *root, const FmExpertUsage *u, const FmExpertProbe *p,
                                    FmError *err) {
    FM_ASSERT(u->layers == p->layers && u->layers <= FM_MODEL_MAX_LAYERS);
    enum { ENTROPY, DEAD, SIMILARITY, AGREEMENT, N_DIAG };
    static const char *const NAMES[N_DIAG] = {"entropy", "dead", "similarity", "agreement"};
    double v[N_DIAG][FM_MODEL_MAX_LAYERS];
    for (int l = 0; l < p->layers; l++) {
        v[ENTROPY][l] = fm_evaluate_usage_entropy(u, l, -1);
        v[DEAD][l] = fm_evaluate_usage_dead(u, l, -1);
        v[SIMILARITY][l] = fm_evaluate_experts_similarity(p, l, -1);
        v[AGREEMENT][l] = fm_evaluate_experts_agreement(p, l, -1);
    }
    cJSON *experts = cJSON_CreateObject(), *layers = NULL;
    FmStatus st = experts ? FM_OK : FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
    for (int k = 0; k < N_DIAG && st == FM_OK; k++)
        st = fm_json_add_number(experts, NAMES[k], finite_mean(v[k], p->layers), err);
    if (st == FM_OK && !(layers = cJSON_AddArrayToObject(experts, "layers")))
        st = FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
    for (int l = 0; l < p->layers && st == FM_OK; l++) {
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(layers, o)) {
            cJSON_Delete(o);
            st = FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
        }
        for (int k = 0; k < N_DIAG && st == FM_OK; k++)
            st = fm_json_add_number(o, NAMES[k], v[k][l], err);
    }
    if (st == FM_OK && !cJSON_AddItemToObject(root, "experts", experts))
        st = FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory");
    if (st != FM_OK) cJSON_Delete(experts);
    return st;
}
