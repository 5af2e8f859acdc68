/* Row-wise softmax with an optional mask.
 *   out[n, j] = mask[n, j] exp(inp[n, j] - max) / sum_k mask[n, k] exp(inp[n, k] - max)
 * Masked positions (mask 0) get probability 0; a row with no unmasked position is all 0. */
#ifndef FM_SOFTMAX_H
#define FM_SOFTMAX_H

#include <stdint.h>

/* inp, out (N, D); mask (N, D) with 1 = allowed, or NULL for none. out may alias inp. */
void fm_softmax_forward(float *out, const float *inp, const uint8_t *mask, int N, int D);

/* The same with one mask (D) shared by every row, e.g. a key padding mask for N queries; NULL
 * for none. out may alias inp. */
void fm_softmax_forward_shared_mask(float *out, const float *inp, const uint8_t *mask, int N, int D);

/* dinp[n, j] += out[n, j] (dout[n, j] - sum_k out[n, k] dout[n, k]). Masked entries (out = 0)
 * receive 0. */
void fm_softmax_backward(float *dinp, const float *dout, const float *out, int N, int D);

#endif
