#include "src/dropout.h"

#include <string.h>

#include "src/error.h"

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
    const float scale = 1.0f / (1.0f - p);
    for (size_t i = 0; i < n; i++)
        out[i] = inp[i] * (keep[i] ? scale : 0.0f);
}

void fm_dropout_backward(float *dinp, const float *dout, const uint8_t *keep, size_t n, float p) {
    /* forward: out = inp * keep / (1 - p) */
    FM_ASSERT(p >= 0.0f && p < 1.0f);
    const float scale = 1.0f / (1.0f - p);
    for (size_t i = 0; i < n; i++)
        dinp[i] += dout[i] * (keep[i] ? scale : 0.0f);
}
