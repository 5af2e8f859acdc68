/* Element-wise activations over n floats. Forwards may run in place (out == inp).
 * Backwards accumulate (+=) into dinp and read what the forward saw (inp) or produced (out):
 *   GELU (exact, erf):  y = x * Phi(x) = 0.5 x (1 + erf(x / sqrt 2)),  dy/dx = Phi(x) + x phi(x)
 *   ReLU:               y = max(x, 0),  dy/dx = [x > 0]
 *   sigmoid:            y = 1 / (1 + e^-x),  dy/dx = y (1 - y)
 *   softplus:           y = log(1 + e^x) (computed without overflow),  dy/dx = sigmoid(x)
 * All run on the vectorisable kernels of src/vecmath.h (Phi within 1e-7 absolute, exp within
 * 1.2 ulp, softplus within 3.5 ulp). */
#ifndef FM_ACTIVATION_H
#define FM_ACTIVATION_H

#include <stddef.h>

void fm_gelu_forward(float *out, const float *inp, size_t n);
void fm_gelu_backward(float *dinp, const float *dout, const float *inp, size_t n);

void fm_relu_forward(float *out, const float *inp, size_t n);
void fm_relu_backward(float *dinp, const float *dout, const float *inp, size_t n);

void fm_sigmoid_forward(float *out, const float *inp, size_t n);
void fm_sigmoid_backward(float *dinp, const float *dout, const float *out, size_t n);

void fm_softplus_forward(float *out, const float *inp, size_t n);
void fm_softplus_backward(float *dinp, const float *dout, const float *inp, size_t n);

#endif
