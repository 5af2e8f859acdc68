#include "src/activation.h"

#include <math.h>

#define FM_SQRT1_2 0.70710678118654752440f      /* 1 / sqrt(2) */
#define FM_INV_SQRT_2PI 0.39894228040143267794f /* 1 / sqrt(2 pi) */

void fm_gelu_forward(float *out, const float *inp, size_t n) {
    /* y = 0.5 x (1 + erf(x / sqrt 2)) */
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = 0.5f * x * (1.0f + erff(x * FM_SQRT1_2));
    }
}

void fm_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    /* y = x Phi(x):  dy/dx = Phi(x) + x phi(x),  phi(x) = exp(-x^2 / 2) / sqrt(2 pi) */
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        float cdf = 0.5f * (1.0f + erff(x * FM_SQRT1_2));
        float pdf = FM_INV_SQRT_2PI * expf(-0.5f * x * x);
        dinp[i] += dout[i] * (cdf + x * pdf);
    }
}

void fm_relu_forward(float *out, const float *inp, size_t n) {
    /* y = max(x, 0) */
    for (size_t i = 0; i < n; i++)
        out[i] = inp[i] > 0.0f ? inp[i] : 0.0f;
}

void fm_relu_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    /* y = max(x, 0):  dy/dx = [x > 0] (0 at the kink, as PyTorch) */
    for (size_t i = 0; i < n; i++)
        dinp[i] += inp[i] > 0.0f ? dout[i] : 0.0f;
}

/* 1 / (1 + e^-x) without overflow: for x < 0 use e^x / (1 + e^x). */
static inline float sigmoid1(float x) {
    if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
    float e = expf(x);
    return e / (1.0f + e);
}

void fm_sigmoid_forward(float *out, const float *inp, size_t n) {
    for (size_t i = 0; i < n; i++)
        out[i] = sigmoid1(inp[i]);
}

void fm_sigmoid_backward(float *dinp, const float *dout, const float *out, size_t n) {
    /* y = sigmoid(x):  dy/dx = y (1 - y), read from the forward's output */
    for (size_t i = 0; i < n; i++)
        dinp[i] += dout[i] * out[i] * (1.0f - out[i]);
}

void fm_softplus_forward(float *out, const float *inp, size_t n) {
    /* log(1 + e^x) = max(x, 0) + log1p(e^-|x|): no overflow for large x, no loss for small */
    for (size_t i = 0; i < n; i++) {
        float x = inp[i];
        out[i] = fmaxf(x, 0.0f) + log1pf(expf(-fabsf(x)));
    }
}

void fm_softplus_backward(float *dinp, const float *dout, const float *inp, size_t n) {
    /* y = log(1 + e^x):  dy/dx = sigmoid(x) */
    for (size_t i = 0; i < n; i++)
        dinp[i] += dout[i] * sigmoid1(inp[i]);
}
