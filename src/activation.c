#include "src/activation.h"

#include <math.h>
#include <string.h>

#include "src/vecmath.h"

#define FM_INV_SQRT_2PI 0.39894228040143267794f /* 1 / sqrt(2 pi) */

/* The element-wise loops below run in blocks of FM_VEC_BLOCK (a constant trip count, through a
 * local buffer so out may alias inp) so the compiler vectorises them; see src/vecmath.h. */
enum { BLK = FM_VEC_BLOCK };

FM_VEC_CLONES
void fm_gelu_forward(float *out, const float *inp, size_t n) {
    /* y = x Phi(x) = 0.5 x (1 + erf(x / sqrt 2)) */
    size_t i = 0;
    for (; i + BLK <= n; i += BLK) {
        float t[BLK];
        for (int k = 0; k < BLK; k++)
            t[k] = inp[i + k] * fm_vec_ncdf1(inp[i + k]);
        memcpy(out + i, t, sizeof t);
    }
    for (; i < n; i++)
        out[i] = inp[i] * fm_vec_ncdf1(inp[i]);
}

/* d/dx [x Phi(x)] = Phi(x) + x phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi) */
static inline float gelu_grad(float x) {
    return fm_vec_ncdf1(x) + x * (FM_INV_SQRT_2PI * fm_vec_exp1(-0.5f * x * x));
}

FM_VEC_CLONES
void fm_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    /* forward: y = x Phi(x) */
    size_t i = 0;
    for (; i + BLK <= n; i += BLK) {
        float t[BLK];
        for (int k = 0; k < BLK; k++)
            t[k] = dinp[i + k] + dout[i + k] * gelu_grad(inp[i + k]);
        memcpy(dinp + i, t, sizeof t);
    }
    for (; i < n; i++)
        dinp[i] += dout[i] * gelu_grad(inp[i]);
}

FM_VEC_CLONES
void fm_relu_forward(float *out, const float *inp, size_t n) {
    /* y = max(x, 0) */
    size_t i = 0;
    for (; i + BLK <= n; i += BLK) {
        float t[BLK];
        for (int k = 0; k < BLK; k++)
            t[k] = fm_vec_select(fm_vec_mask(inp[i + k] > 0.0f), inp[i + k], 0.0f);
        memcpy(out + i, t, sizeof t);
    }
    for (; i < n; i++)
        out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

FM_VEC_CLONES
void fm_relu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    /* y = max(x, 0):  dy/dx = [x > 0] (0 at the kink, as PyTorch) */
    size_t i = 0;
    for (; i + BLK <= n; i += BLK) {
        float t[BLK];
        for (int k = 0; k < BLK; k++)
            t[k] = dinp[i + k] + fm_vec_select(fm_vec_mask(inp[i + k] > 0.0f), dout[i + k], 0.0f);
        memcpy(dinp + i, t, sizeof t);
    }
    for (; i < n; i++)
        dinp[i] += inp[i] > 0.0f ? dout[i] : 0.0f;
}

FM_VEC_CLONES
void fm_sigmoid_forward(float *out, const float *inp, size_t n) {
    /* y = 1 / (1 + e^-x): e^-x = inf for x < -88.7 gives exactly 0, e^-x = 0 gives 1 */
    size_t i = 0;
    for (; i + BLK <= n; i += BLK) {
        float t[BLK];
        for (int k = 0; k < BLK; k++)
            t[k] = 1.0f / (1.0f + fm_vec_exp1(-inp[i + k]));
        memcpy(out + i, t, sizeof t);
    }
    for (; i < n; i++)
        out[i] = 1.0f / (1.0f + fm_vec_exp1(-inp[i]));
}

FM_VEC_CLONES
void fm_sigmoid_backward(float *dinp, const float *dout, const float *out, size_t n) {
    /* y = sigmoid(x):  dy/dx = y (1 - y), read from the forward's output */
    size_t i = 0;
    for (; i + BLK <= n; i += BLK) {
        float t[BLK];
        for (int k = 0; k < BLK; k++)
            t[k] = dinp[i + k] + dout[i + k] * out[i + k] * (1.0f - out[i + k]);
        memcpy(dinp + i, t, sizeof t);
    }
    for (; i < n; i++)
        dinp[i] += dout[i] * out[i] * (1.0f - out[i]);
}

FM_VEC_CLONES
void fm_softplus_forward(float *out, const float *inp, size_t n) {
    /* y = log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow for large x */
    size_t i = 0;
    for (; i + BLK <= n; i += BLK) {
        float t[BLK];
        for (int k = 0; k < BLK; k++)
            t[k] = fm_vec_softplus1(inp[i + k]);
        memcpy(out + i, t, sizeof t);
    }
    for (; i < n; i++)
        out[i] = fm_vec_softplus1(inp[i]);
}

FM_VEC_CLONES
void fm_softplus_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    /* y = log(1 + e^x):  dy/dx = sigmoid(x) = 1 / (1 + e^-x) */
    size_t i = 0;
    for (; i + BLK <= n; i += BLK) {
        float t[BLK];
        for (int k = 0; k < BLK; k++)
            t[k] = dinp[i + k] + dout[i + k] / (1.0f + fm_vec_exp1(-inp[i + k]));
        memcpy(dinp + i, t, sizeof t);
    }
    for (; i < n; i++)
        dinp[i] += dout[i] / (1.0f + fm_vec_exp1(-inp[i]));
}
