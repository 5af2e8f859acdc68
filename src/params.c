#include "src/params.h"

#include <math.h>
#include <string.h>

#include "src/alloc.h"

#define ALIGN_FLOATS 16

void fm_params_init(FmParams *p) { memset(p, 0, sizeof *p); }

FmStatus fm_params_declare(FmParams *p, const char *name, int ndim, const int *shape, int decay,
                           int *id, FmError *err) {
    FM_ASSERT(p->data == NULL); /* declaring after allocation would move every tensor */
    if (strlen(name) >= FM_PARAM_NAME_MAX)
        return FM_FAIL(err, FM_ERR_ARG, NULL, "parameter name too long: %s", name);
    if (ndim < 1 || ndim > FM_PARAM_MAX_DIMS)
        return FM_FAIL(err, FM_ERR_ARG, NULL, "parameter %s: rank %d not in 1..%d", name, ndim,
                       FM_PARAM_MAX_DIMS);
    size_t count = 1;
    for (int d = 0; d < ndim; d++) {
        if (shape[d] <= 0)
            return FM_FAIL(err, FM_ERR_ARG, NULL, "parameter %s: dimension %d is %d", name, d, shape[d]);
        count *= (size_t)shape[d];
    }
    if (fm_params_find(p, name) >= 0)
        return FM_FAIL(err, FM_ERR_ARG, NULL, "parameter %s declared twice", name);
    if (p->n_tensors == p->capacity) {
        int cap = p->capacity ? 2 * p->capacity : 32;
        FmTensorInfo *grown = fm_realloc(p->tensors, (size_t)cap * sizeof *grown);
        if (!grown) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory declaring %s", name);
        p->tensors = grown;
        p->capacity = cap;
    }
    FmTensorInfo *t = &p->tensors[p->n_tensors];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = ndim;
    memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
    t->count = count;
    t->offset = p->total;
    t->decay = decay;
    p->total += (count + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS;
    if (id) *id = p->n_tensors;
    p->n_tensors++;
    return FM_OK;
}

FmStatus fm_params_allocate(FmParams *p, int with_optimizer, FmError *err) {
    FM_ASSERT(p->data == NULL);
    p->data = fm_calloc(p->total, sizeof(float));
    p->grad = fm_calloc(p->total, sizeof(float));
    if (with_optimizer) {
        p->adam_m = fm_calloc(p->total, sizeof(float));
        p->adam_v = fm_calloc(p->total, sizeof(float));
    }
    if (!p->data || !p->grad || (with_optimizer && (!p->adam_m || !p->adam_v))) {
        fm_free(p->data);
        fm_free(p->grad);
        fm_free(p->adam_m);
        fm_free(p->adam_v);
        p->data = p->grad = p->adam_m = p->adam_v = NULL;
        return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory allocating %zu parameters", p->total);
    }
    return FM_OK;
}

int fm_params_find(const FmParams *p, const char *name) {
    for (int i = 0; i < p->n_tensors; i++)
        if (strcmp(p->tensors[i].name, name) == 0) return i;
    return -1;
}

float *fm_params_data(const FmParams *p, int id) {
    FM_ASSERT(id >= 0 && id < p->n_tensors);
    return p->data ? p->data + p->tensors[id].offset : NULL;
}

float *fm_params_grad(const FmParams *p, int id) {
    FM_ASSERT(id >= 0 && id < p->n_tensors);
    return p->grad ? p->grad + p->tensors[id].offset : NULL;
}

void fm_params_zero_grad(FmParams *p) {
    if (p->grad) memset(p->grad, 0, p->total * sizeof(float));
}

size_t fm_params_count(const FmParams *p) {
    size_t n = 0;
    for (int i = 0; i < p->n_tensors; i++) n += p->tensors[i].count;
    return n;
}

void fm_params_free(FmParams *p) {
    if (!p) return;
    fm_free(p->tensors);
    fm_free(p->data);
    fm_free(p->grad);
    fm_free(p->adam_m);
    fm_free(p->adam_v);
    fm_params_init(p);
}

FmAdamConfig fm_adam_default(void) {
    FmAdamConfig c = {.lr = 4e-4f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.0f};
    return c;
}

void fm_adam_step(FmParams *p, const FmAdamConfig *cfg, long step) {
    FM_ASSERT(p->adam_m && p->adam_v && step >= 1);
    const float b1 = cfg->beta1, b2 = cfg->beta2;
    const float bias1 = 1.0f - powf(b1, (float)step);
    const float bias2 = 1.0f - powf(b2, (float)step);
    for (int t = 0; t < p->n_tensors; t++) {
        const FmTensorInfo *info = &p->tensors[t];
        const float decay = info->decay ? cfg->lr * cfg->weight_decay : 0.0f;
        float *w = p->data + info->offset, *g = p->grad + info->offset;
        float *m = p->adam_m + info->offset, *v = p->adam_v + info->offset;
        for (size_t i = 0; i < info->count; i++) {
            w[i] -= decay * w[i];
            m[i] = b1 * m[i] + (1.0f - b1) * g[i];
            v[i] = b2 * v[i] + (1.0f - b2) * g[i] * g[i];
            w[i] -= cfg->lr * (m[i] / bias1) / (sqrtf(v[i] / bias2) + cfg->eps);
        }
    }
}

double fm_params_grad_norm(const FmParams *p) {
    double sum = 0.0;
    for (size_t i = 0; i < p->total; i++) sum += (double)p->grad[i] * p->grad[i]; /* padding is 0 */
    return sqrt(sum);
}

double fm_params_clip_grad(FmParams *p, double max_norm) {
    double norm = fm_params_grad_norm(p);
    if (max_norm > 0.0 && norm > max_norm) {
        float scale = (float)(max_norm / (norm + 1e-6));
        for (size_t i = 0; i < p->total; i++) p->grad[i] *= scale;
    }
    return norm;
}
