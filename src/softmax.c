#include "src/softmax.h"

#include <math.h>
#include <string.h>

/* One row: out = softmax of inp over the positions with mask 1 (all when mask is NULL), 0
 * elsewhere. No allowed position, or only -inf scores: the row is all 0 (no mass to share).
 * Subtracting the row's maximum keeps exp from overflowing and does not change the result. */
static void softmax_row(float *out, const float *inp, const uint8_t *mask, int D) {
    float max = -INFINITY;
    if (mask) {
        for (int j = 0; j < D; j++)
            if (mask[j] && inp[j] > max) max = inp[j];
    } else {
        for (int j = 0; j < D; j++)
            max = inp[j] > max ? inp[j] : max;
    }
    if (max == -INFINITY) {
        memset(out, 0, (size_t)D * sizeof *out);
        return;
    }
    float sum = 0.0f;
    for (int j = 0; j < D; j++) {
        float e = (!mask || mask[j]) ? expf(inp[j] - max) : 0.0f;
        out[j] = e;
        sum += e;
    }
    const float inv = 1.0f / sum; /* sum >= 1: the maximum contributes exp(0) */
    for (int j = 0; j < D; j++)
        out[j] *= inv;
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
void fm_softmax_backward(float *dinp, const float *dout, const float *out, int N, int D) {
    for (int n = 0; n < N; n++) {
        const float *y = out + (size_t)n * D, *g = dout + (size_t)n * D;
        float *dx = dinp + (size_t)n * D;
        float dot = 0.0f;
        for (int j = 0; j < D; j++)
            dot += y[j] * g[j];
        for (int j = 0; j < D; j++)
            dx[j] += y[j] * (g[j] - dot);
    }
}
