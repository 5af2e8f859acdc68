#include "src/linear.h"

#include <stddef.h>

#include "src/gemm.h"

void fm_linear_forward(float *out, const float *inp, const float *weight, const float *bias, int N, int IN,
                       int OUT) {
    /* inp (N, IN), weight (OUT, IN), bias (OUT), out (N, OUT).
     * out = bias (broadcast over rows), then out += inp @ weight^T in one GEMM. */
    float beta = 0.0f;
    if (bias) {
        for (int n = 0; n < N; n++) {
            float *row = out + (size_t)n * OUT;
            for (int o = 0; o < OUT; o++)
                row[o] = bias[o];
        }
        beta = 1.0f;
    }
    fm_gemm(FM_NO_TRANS, FM_TRANS, N, OUT, IN, 1.0f, inp, IN, weight, IN, beta, out, OUT);
}

void fm_linear_backward(float *dinp, float *dweight, float *dbias, const float *dout, const float *inp,
                        const float *weight, int N, int IN, int OUT) {
    /* forward: out[n, o] = sum_i inp[n, i] weight[o, i] + bias[o] */
    if (dinp) /* dinp (N, IN) += dout (N, OUT) @ weight (OUT, IN) */
        fm_gemm(FM_NO_TRANS, FM_NO_TRANS, N, IN, OUT, 1.0f, dout, OUT, weight, IN, 1.0f, dinp, IN);
    if (dweight) /* dweight (OUT, IN) += dout^T (OUT, N) @ inp (N, IN) */
        fm_gemm(FM_TRANS, FM_NO_TRANS, OUT, IN, N, 1.0f, dout, OUT, inp, IN, 1.0f, dweight, IN);
    if (dbias) /* dbias[o] += sum_n dout[n, o] */
        for (int n = 0; n < N; n++) {
            const float *row = dout + (size_t)n * OUT;
            for (int o = 0; o < OUT; o++)
                dbias[o] += row[o];
        }
}
