#include "src/time2vec.h"

#include <math.h>
#include <stddef.h>

void fm_time2vec_forward(float *out, const float *t, const float *w, const float *b, int N, int DT) {
    /* t (N), w (DT), b (DT), out (N, DT) */
    for (int n = 0; n < N; n++) {
        float *row = out + (size_t)n * DT;
        float tn = t[n];
        row[0] = w[0] * tn + b[0];
        for (int i = 1; i < DT; i++)
            row[i] = sinf(w[i] * tn + b[i]);
    }
}

void fm_time2vec_backward(float *dt, float *dw, float *db, const float *dout, const float *t, const float *w,
                          const float *b, int N, int DT) {
    /* forward: out[n, 0] = w[0] t[n] + b[0];  out[n, i] = sin(w[i] t[n] + b[i])
     * so with g = dout[n, i] and c = cos(w[i] t[n] + b[i]) (i >= 1):
     *   dt[n] += g w[i] c,  dw[i] += g t[n] c,  db[i] += g c;  and for i = 0 the same with c = 1. */
    for (int n = 0; n < N; n++) {
        const float *g = dout + (size_t)n * DT;
        float tn = t[n];
        float dtn = g[0] * w[0];
        if (dw) dw[0] += g[0] * tn;
        if (db) db[0] += g[0];
        for (int i = 1; i < DT; i++) {
            float gc = g[i] * cosf(w[i] * tn + b[i]);
            dtn += gc * w[i];
            if (dw) dw[i] += gc * tn;
            if (db) db[i] += gc;
        }
        if (dt) dt[n] += dtn;
    }
}
