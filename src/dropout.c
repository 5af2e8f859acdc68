#include "src/dropout.h"

#include <string.h>

#include "src/error.h"
#include "src/vecmath.h"

/* y[i] = x[i] * keep[i] * scale, or y[i] += that when accumulate, in blocks of constant length
 * that vectorise (see src/vecmath.h). */
FM_VEC_CLONES
static void apply_mask(float *y, const float *x, const uint8_t *keep, size_t n, float scale, int accumulate) {
    size_t i = 0;
    for (; i + FM_VEC_BLOCK <= n; i += FM_VEC_BLOCK) {
        float t[FM_VEC_BLOCK];
        for (int k = 0; k < FM_VEC_BLOCK; k++)
            t[k] = x[i + k] * ((float)keep[i + k] * scale);
        if (accumulate)
            for (int k = 0; k < FM_VEC_BLOCK; k++)
                t[k] = y[i + k] + t[k];
        memcpy(y + i, t, sizeof t);
    }
    for (; i < n; i++) {
        float v = x[i] * ((float)keep[i] * scale);
        y[i] = accumulate ? y[i] + v : v;
    }
}

void fm_dropout_forward(float *out, uint8_t *keep, const float *inp, size_t n, float p, FmRng *rng) {
    FM_ASSERT(p >= 0.0f && p < 1.0f);
    if (p == 0.0f) { /* nothing dropped, no number drawn */
        if (out != inp) memmove(out, inp, n * sizeof *out);
        memset(keep, 1, n);
        return;
    }
    /* keep[i] = [u_i >= p] with u_i uniform in [0, 1): P(keep) = 1 - p. The mask is drawn first,
     * in index order, so the loop that applies it stays branch-free. */
    for (size_t i = 0; i < n; i++)
        keep[i] = fm_rng_uniform(rng) >= (double)p;
    apply_mask(out, inp, keep, n, 1.0f / (1.0f - p), 0);
}

void fm_dropout_backward(float *dinp, const float *dout, const uint8_t *keep, size_t n, float p) {
    /* forward: out = inp * keep / (1 - p) */
    FM_ASSERT(p >= 0.0f && p < 1.0f);
    apply_mask(dinp, dout, keep, n, 1.0f / (1.0f - p), 1);
}
