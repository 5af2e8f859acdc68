/* Time2Vec (Kazemi et al. 2019), the time embedding shared by all modalities:
 *   out[n, 0] = w[0] t[n] + b[0];   out[n, i] = sin(w[i] t[n] + b[i]),  i = 1..DT-1
 * Times t are scaled to [0, 1] by the observation window before they get here. */
#ifndef FM_TIME2VEC_H
#define FM_TIME2VEC_H

/* t (N), w (DT), b (DT), out (N, DT). */
void fm_time2vec_forward(float *out, const float *t, const float *w, const float *b, int N, int DT);

/* Accumulates (+=) dt (N), dw (DT), db (DT) (any may be NULL) from dout (N, DT). */
void fm_time2vec_backward(float *dt, float *dw, float *db, const float *dout, const float *t,
                          const float *w, const float *b, int N, int DT);

#endif
