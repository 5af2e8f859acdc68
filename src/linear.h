/* Fully connected layer.
 *   out (N, OUT) = inp (N, IN) @ weight^T + bias,   weight (OUT, IN) as in PyTorch, bias (OUT) */
#ifndef FM_LINEAR_H
#define FM_LINEAR_H

/* bias may be NULL (no bias). out must not alias inp. */
void fm_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int N,
                       int IN, int OUT);

/* Accumulates (+=) the gradients: dinp (N, IN), dweight (OUT, IN), dbias (OUT); any of them
 * may be NULL to skip it. dout (N, OUT); inp and weight as in the forward. */
void fm_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout,
                        const float *inp, const float *weight, int N, int IN, int OUT);

#endif
