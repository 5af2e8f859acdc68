/* Inverted dropout, seeded: out = inp * keep / (1 - p), keep ~ Bernoulli(1 - p).
 * Evaluation simply does not call it (or calls it with p = 0, which copies). */
#ifndef FM_DROPOUT_H
#define FM_DROPOUT_H

#include <stddef.h>
#include <stdint.h>

#include "src/rng.h"

/* p in [0, 1). keep (n) receives the mask for the backward. out may alias inp. The mask is
 * drawn from `rng` in index order, one uniform per element (kept when u >= p), so the same
 * stream gives the same mask. p = 0 copies, sets keep to 1 and draws nothing (rng may then be
 * NULL). */
void fm_dropout_forward(float *out, uint8_t *keep, const float *inp, size_t n, float p, FmRng *rng);

/* dinp += dout * keep / (1 - p). */
void fm_dropout_backward(float *dinp, const float *dout, const uint8_t *keep, size_t n, float p);

#endif
