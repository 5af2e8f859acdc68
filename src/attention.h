/* Masked multi-head self-attention, PyTorch nn.MultiheadAttention's layout:
 *   [q k v] = inp @ w_qkv^T + b_qkv           w_qkv (3D, D): rows 0..D-1 for q, then k, then v
 *   per head h (width Dh = D / H):  a = softmax_keys(q_h k_h^T / sqrt(Dh)), masked keys excluded
 *   ctx_h = a v_h;  out = [ctx_1 .. ctx_H] @ w_out^T + b_out      w_out (D, D)
 * A query whose keys are all masked gets a zero context (then out = b_out). */
#ifndef FM_ATTENTION_H
#define FM_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int B; /* sequences */
    int T; /* tokens per sequence */
    int D; /* model width, divisible by H */
    int H; /* heads */
} FmAttnShape;

/* Floats the forward writes to `cache` for the backward (q, k, v, attention weights, context),
 * and floats of scratch the backward needs. */
size_t fm_attention_cache_size(FmAttnShape s);
size_t fm_attention_scratch_size(FmAttnShape s);

/* inp, out (B, T, D); key_mask (B, T): 1 = token can be attended, NULL = all can. b_qkv and
 * b_out may be NULL. out must not alias inp. */
void fm_attention_forward(float *out, float *cache, const float *inp, const uint8_t *key_mask,
                          const float *w_qkv, const float *b_qkv, const float *w_out,
                          const float *b_out, FmAttnShape s);

/* Accumulates (+=) dinp (B, T, D), dw_qkv, db_qkv, dw_out, db_out (any may be NULL) from dout
 * (B, T, D), using the forward's cache. `scratch` holds fm_attention_scratch_size floats. */
void fm_attention_backward(float *dinp, float *dw_qkv, float *db_qkv, float *dw_out, float *db_out,
                           float *scratch, const float *dout, const float *inp, const float *cache,
                           const uint8_t *key_mask, const float *w_qkv, const float *w_out,
                           FmAttnShape s);

#endif
