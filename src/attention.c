#include "src/attention.h"

#include <math.h>
#include <string.h>

#include "src/error.h"
#include "src/gemm.h"
#include "src/linear.h"
#include "src/softmax.h"

/* Cache layout (floats), written by the forward and read by the backward:
 *   qkv (B*T, 3D)   the projections, row t of sequence b = [q | k | v], head h at column h*Dh
 *   att (B, H, T, T) the attention weights (rows: queries, columns: keys)
 *   ctx (B*T, D)     the heads' contexts side by side, the input of the output projection
 * Scratch layout for the backward: dctx (B*T, D), dqkv (B*T, 3D), datt (T, T), dscore (T, T). */

static void check_shape(FmAttnShape s) {
    FM_ASSERT(s.B >= 0 && s.T >= 0 && s.H > 0 && s.D > 0 && s.D % s.H == 0);
}

size_t fm_attention_cache_size(FmAttnShape s) {
    check_shape(s);
    size_t BT = (size_t)s.B * s.T;
    return BT * 3 * s.D + (size_t)s.B * s.H * s.T * s.T + BT * s.D;
}

size_t fm_attention_scratch_size(FmAttnShape s) {
    check_shape(s);
    size_t BT = (size_t)s.B * s.T;
    return BT * s.D + BT * 3 * s.D + 2 * (size_t)s.T * s.T;
}

void fm_attention_forward(float *out, float *cache, const float *inp, const uint8_t *key_mask,
                          const float *w_qkv, const float *b_qkv, const float *w_out, const float *b_out,
                          FmAttnShape s) {
    check_shape(s);
    const int B = s.B, T = s.T, D = s.D, H = s.H, Dh = D / H, D3 = 3 * D;
    const size_t BT = (size_t)B * T;
    float *qkv = cache, *att = qkv + BT * D3, *ctx = att + (size_t)B * H * T * T;
    const float scale = 1.0f / sqrtf((float)Dh);

    /* [q k v] (B*T, 3D) = inp @ w_qkv^T + b_qkv */
    fm_linear_forward(qkv, inp, w_qkv, b_qkv, (int)BT, D, D3);
    for (int b = 0; b < B; b++) {
        const float *q = qkv + (size_t)b * T * D3, *k = q + D, *v = q + 2 * D;
        const uint8_t *mask = key_mask ? key_mask + (size_t)b * T : NULL;
        for (int h = 0; h < H; h++) {
            float *a = att + ((size_t)b * H + h) * T * T;
            /* scores (T, T) = q_h k_h^T / sqrt(Dh); a = softmax over unmasked keys (0 if none) */
            fm_gemm(FM_NO_TRANS, FM_TRANS, T, T, Dh, scale, q + h * Dh, D3, k + h * Dh, D3, 0.0f, a, T);
            fm_softmax_forward_shared_mask(a, a, mask, T, T);
            /* ctx_h (T, Dh) = a @ v_h */
            fm_gemm(FM_NO_TRANS, FM_NO_TRANS, T, Dh, T, 1.0f, a, T, v + h * Dh, D3, 0.0f,
                    ctx + (size_t)b * T * D + h * Dh, D);
        }
    }
    /* out (B*T, D) = ctx @ w_out^T + b_out */
    fm_linear_forward(out, ctx, w_out, b_out, (int)BT, D, D);
}

/* Backward, per sequence b and head h, with S = q_h k_h^T / sqrt(Dh), A = masked softmax(S),
 * C_h = A v_h, out = [C_1 .. C_H] W_out^T + b_out:
 *   dC = dout W_out,  dW_out += dout^T C,  db_out += sum over rows of dout     (linear)
 *   dA = dC_h v_h^T,  dv_h = A^T dC_h                                          (C_h = A v_h)
 *   dS = A o (dA - rowsum(A o dA))                                             (softmax)
 *   dq_h = dS k_h / sqrt(Dh),  dk_h = dS^T q_h / sqrt(Dh)                      (S = q k^T / sqrt Dh)
 * then the input projection is a linear layer on dqkv = [dq dk dv]. A masked key has A = 0 in
 * every row, so its dS column and its dv row are 0: it gets no gradient through k or v. A fully
 * masked sequence has A = 0, hence C = 0, and only b_out sees its dout. */
void fm_attention_backward(float *dinp, float *dw_qkv, float *db_qkv, float *dw_out, float *db_out,
                           float *scratch, const float *dout, const float *inp, const float *cache,
                           const uint8_t *key_mask, const float *w_qkv, const float *w_out, FmAttnShape s) {
    check_shape(s);
    (void)key_mask; /* the cached weights already hold the mask (zeros) */
    const int B = s.B, T = s.T, D = s.D, H = s.H, Dh = D / H, D3 = 3 * D;
    const size_t BT = (size_t)B * T;
    const float *qkv = cache, *att = qkv + BT * D3, *ctx = att + (size_t)B * H * T * T;
    float *dctx = scratch, *dqkv = dctx + BT * D, *datt = dqkv + BT * D3, *dscore = datt + (size_t)T * T;
    const float scale = 1.0f / sqrtf((float)Dh);

    /* forward: out = ctx @ w_out^T + b_out. dctx is overwritten, so it starts at zero. */
    memset(dctx, 0, BT * D * sizeof *dctx);
    fm_linear_backward(dctx, dw_out, db_out, dout, ctx, w_out, (int)BT, D, D);
    if (!dinp && !dw_qkv && !db_qkv) return; /* nothing upstream of the context wanted */

    for (int b = 0; b < B; b++) {
        const float *q = qkv + (size_t)b * T * D3, *k = q + D, *v = q + 2 * D;
        float *dq = dqkv + (size_t)b * T * D3, *dk = dq + D, *dv = dq + 2 * D;
        for (int h = 0; h < H; h++) {
            const float *a = att + ((size_t)b * H + h) * T * T;
            const float *dc = dctx + (size_t)b * T * D + h * Dh;
            /* forward: ctx_h = a @ v_h.  datt = dctx_h @ v_h^T;  dv_h = a^T @ dctx_h */
            fm_gemm(FM_NO_TRANS, FM_TRANS, T, T, Dh, 1.0f, dc, D, v + h * Dh, D3, 0.0f, datt, T);
            fm_gemm(FM_TRANS, FM_NO_TRANS, T, Dh, T, 1.0f, a, T, dc, D, 0.0f, dv + h * Dh, D3);
            /* forward: a = softmax(scores) */
            memset(dscore, 0, (size_t)T * T * sizeof *dscore);
            fm_softmax_backward(dscore, datt, a, T, T);
            /* forward: scores = q_h k_h^T * scale.  dq_h = scale dscore @ k_h;  dk_h = scale dscore^T @ q_h
             */
            fm_gemm(FM_NO_TRANS, FM_NO_TRANS, T, Dh, T, scale, dscore, T, k + h * Dh, D3, 0.0f, dq + h * Dh,
                    D3);
            fm_gemm(FM_TRANS, FM_NO_TRANS, T, Dh, T, scale, dscore, T, q + h * Dh, D3, 0.0f, dk + h * Dh, D3);
        }
    }
    /* forward: qkv = inp @ w_qkv^T + b_qkv */
    fm_linear_backward(dinp, dw_qkv, db_qkv, dqkv, inp, w_qkv, (int)BT, D, D3);
}
