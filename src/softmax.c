#include "src/softmax.h"

#include <math.h>
#include <string.h>

#include "src/vecmath.h"

/* One row: out = softmax of inp over the positions with mask 1 (all when mask is NULL), 0
 * elsewhere. No allowed position, or only -inf scores: the row is all 0 (no mass to share).
 * Masked scores are replaced by -inf (whose exp is 0) so the rest runs on whole rows;
 * subtracting the row's maximum keeps exp from overflowing and does not change the result. */
static void softmax_row(float *out, const float *inp, const uint8_t *mask, int D) {
    const float *src = inp;
    if (mask) {
        for (int j = 0; j < D; j++)
            out[j] = mask[j] ? inp[j] : -INFINITY;
        src = out;
    }
    const float max = fm_vec_max(src, (size_t)D);
    if (max == -INFINITY) {
        memset(out, 0, (size_t)D * sizeof *out);
        return;
    }
    fm_vec_exp_sub(out, src, max, (size_t)D);
    fm_vec_scale(out, 1.0f / fm_vec_sum(out, (size_t)D), (size_t)D); /* sum >= 1: exp(0) is in it */
}

void fm_softmax_forward(float *out, const float *inp, const uint8_t *mask, int N, int D) {
    for (int n = 0; n < N; n++)
        softmax_row(out + (size_t)n * D, inp + (size_t)n * D, mask ? mask + (size_t)n * D : NULL, D);
}

void fm_softmax_forward_shared_mask(float *out, const float *inp, const uint8_t *mask, int N, int D) {
    for (int n = 0; n < N; n++)
        softmax_row(out + (size_t)n * D, inp + (size_t)n * D, mask, D);
}

/* Backward. For one row, y_j = e^{x_j} / sum_k e^{x_k} over the allowed positions, so
 *   dy_j / dx_i = y_j (delta_ij - y_i)          (i, j allowed)
 *   dx_i = sum_j g_j y_j (delta_ij - y_i) = y_i (g_i - sum_j y_j g_j).
 * A masked x_i does not enter the forward; its y_i is 0, so the same formula gives it 0, and a
 * fully masked row (all y = 0) gives 0 everywhere: the mask is not needed here. */
FM_VEC_CLONES
void fm_softmax_backward(float *dinp, const float *dout, const float *out, int N, int D) {
    for (int n = 0; n < N; n++) {
        const float *y = out + (size_t)n * D, *g = dout + (size_t)n * D;
        float *dx = dinp + (size_t)n * D;
        const float dot = fm_vec_dot(y, g, (size_t)D);
        int j = 0;
        for (; j + FM_VEC_BLOCK <= D; j += FM_VEC_BLOCK) { /* blocks of constant length vectorise */
            float t[FM_VEC_BLOCK];
            for (int k = 0; k < FM_VEC_BLOCK; k++)
                t[k] = dx[j + k] + y[j + k] * (g[j + k] - dot);
            memcpy(dx + j, t, sizeof t);
        }
        for (; j < D; j++)
            dx[j] += y[j] * (g[j] - dot);
    }
}
