#include "models/init.h"

#include <math.h>

void fm_init_uniform(FmParams *params, int id, float bound, FmRng *rng) {
    float *w = fm_params_data(params, id);
    size_t n = params->tensors[id].count;
    for (size_t i = 0; i < n; i++) w[i] = (float)((2.0 * fm_rng_uniform(rng) - 1.0) * bound);
}

void fm_init_normal(FmParams *params, int id, float std, FmRng *rng) {
    float *w = fm_params_data(params, id);
    size_t n = params->tensors[id].count;
    for (size_t i = 0; i < n; i++) w[i] = (float)(fm_rng_normal(rng) * std);
}

void fm_init_const(FmParams *params, int id, float value) {
    float *w = fm_params_data(params, id);
    size_t n = params->tensors[id].count;
    for (size_t i = 0; i < n; i++) w[i] = value;
}

void fm_init_linear(FmParams *params, int weight_id, int bias_id, FmRng *rng) {
    const FmTensorInfo *t = &params->tensors[weight_id];
    float bound = 1.0f / sqrtf((float)t->shape[t->ndim - 1]);
    fm_init_uniform(params, weight_id, bound, rng);
    if (bias_id >= 0) fm_init_uniform(params, bias_id, bound, rng);
}
