/* Parameter initialisers shared by the model's parts. All are seeded: they draw from the given
 * stream only, element by element in storage order. */
#ifndef FM_INIT_H
#define FM_INIT_H

#include "src/params.h"
#include "src/rng.h"

/* Tensor `id` ~ U(-bound, bound). */
void fm_init_uniform(FmParams *params, int id, float bound, FmRng *rng);

/* Tensor `id` ~ N(0, std^2). */
void fm_init_normal(FmParams *params, int id, float std, FmRng *rng);

/* Every element of tensor `id` set to `value`. */
void fm_init_const(FmParams *params, int id, float value);

/* PyTorch's nn.Linear default: weight and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in the
 * weight's last dimension. bias_id may be -1 (no bias). */
void fm_init_linear(FmParams *params, int weight_id, int bias_id, FmRng *rng);

#endif
