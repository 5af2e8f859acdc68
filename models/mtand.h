/* mTAND, multi-time attention (Shukla and Marlin, ICLR 2021), one instance per modality
 * (BRIEF section 2): Q reference times attend over a stay's irregular observations.
 *
 *   q_{h,r} = (W_Q phi(gamma_r) + b_Q)[head h],   k_{h,l} = (W_K phi(t_l) + b_K)[head h]
 *   s_{h,r,l} = <q_{h,r}, k_{h,l}> / sqrt(DT / H)
 *   o_{h,r,c} = sum_l alpha_{h,r,l,c} x_{l,c},  alpha = softmax over l of s, over the l where
 *               channel c is observed
 *   Z_r = W_O [o_{1,r,:} .. o_{H,r,:}] + b_O   (D)
 *
 * Two kinds of input:
 *  - per channel (SERIES): x_l = [v_l (C) | m_l (C)], the standardised values (0 where not
 *    observed) and the 0/1 observation mask, so the encoder attends over 2C channels. Value
 *    channel c is observed where m_{l,c} = 1; a mask channel is a fact known at every
 *    observation time, so it is observed at every l (its o is the attention-weighted frequency
 *    with which channel c was measured around gamma_r). A value channel with no observation
 *    gives o = 0.
 *    Cost: E = exp(s - max_l s) once per (h, r, l); then [num | den] = E @ [v | m] is one GEMM,
 *    o_value = num / den, o_mask = den / sum_l E. H*Q*L*C is never formed. If a channel's
 *    denominator underflows (its observations all score ~70 below the row's best), that
 *    (h, r, c) is recomputed directly with its own maximum.
 *  - per item (EVENTS, IMAGES): every observation is a real item (padding is never packed), so
 *    alpha is one softmax per (h, r) and o_h = alpha_h @ x is a GEMM.
 *
 * Observations arrive packed: the rows of stay s are offset[s] .. offset[s+1]-1 of phi_obs and
 * x; only real observations of present stays are packed. Heads split DT into H blocks of DT/H.
 * Parameters: w_q, w_k (DT, DT), b_q, b_k (DT), w_o (D, H*Cin), b_o (D), where Cin = 2C per
 * channel and C per item; w_o's column h*Cin + j is head h's channel j. */
#ifndef FM_MTAND_H
#define FM_MTAND_H

#include <stddef.h>

#include "models/layout.h"
#include "src/error.h"
#include "src/params.h"
#include "src/rng.h"

typedef struct {
    int Q;           /* reference times */
    int H;           /* heads; DT divisible by H */
    int DT;          /* time-embedding width */
    int D;           /* output width */
    int C;           /* per channel: measurement channels; per item: item width */
    int per_channel; /* 1: SERIES input [v | m] (2C wide); 0: per-item input (C wide) */
} FmMtandConfig;

typedef struct {
    FmMtandConfig cfg;
    int Cin; /* 2C or C */
    int w_q, b_q, w_k, b_k, w_o, b_o;
} FmMtand;

/* Buffers of one instance, carved by fm_mtand_layout for up to max_stays stays and max_obs
 * packed observations in all (at most max_per_stay per stay). The forward fills the cache
 * part; the backward reads it and uses the scratch part. */
typedef struct {
    /* cache */
    float *q;   /* (Q, DT) */
    float *k;   /* (max_obs, DT) */
    float *p;   /* per stay s, at H*Q*offset[s]: (H*Q, n_s), E (per channel) or alpha (per item) */
    float *rs;  /* (max_stays, H*Q) per channel: sum_l E */
    float *nd;  /* (max_stays, H*Q, 2C) per channel: [num | den] */
    float *cnt; /* (max_stays, C) per channel: observations of each channel */
    float *o;   /* (max_stays, Q, H*Cin) attention outputs, the input of W_O */
    /* scratch */
    float *d_o; /* (max_stays, Q, H*Cin) */
    float *dp;  /* (H*Q, max_per_stay) */
    float *drs; /* (H*Q) per channel: d(sum_l E) in the backward; per item: the forward's row sums */
    float *a;   /* (max_per_stay) per channel: one channel's attention, recomputed directly */
    float *dnd; /* (H*Q, 2C) */
    float *dq;  /* (Q, DT) */
    float *dk;  /* (max_obs, DT) */
} FmMtandBuffers;

/* Checks the shapes (FM_ERR_CONFIG) and declares w_q, b_q, w_k, b_k, w_o, b_o under
 * `prefix` (e.g. "encoder.vitals.mtand"). */
FmStatus fm_mtand_declare(FmMtand *mt, const FmMtandConfig *cfg, FmParams *params, const char *prefix,
                          FmError *err);

/* PyTorch nn.Linear defaults for the three projections. */
void fm_mtand_init(const FmMtand *mt, FmParams *params, FmRng *rng);

void fm_mtand_layout(FmMtandBuffers *buf, FmLayout *l, const FmMtandConfig *cfg, int max_stays,
                     int max_obs, int max_per_stay);

/* z (S, Q, D) = mTAND of the S stays' packed observations. phi_ref (Q, DT): the time embedding
 * of the reference times; phi_obs (N, DT) and x (N, Cin): the packed observations, N =
 * offset[S]. A stay with no observation gets o = 0, so z = b_O. */
void fm_mtand_forward(const FmMtand *mt, const FmParams *params, FmMtandBuffers *buf, float *z,
                      const float *phi_ref, const float *phi_obs, const float *x, const int *offset,
                      int S);

/* Accumulates (+=) into params->grad, dphi_ref (Q, DT), dphi_obs (N, DT) and dx (N, Cin; may be
 * NULL, per item only) the gradient of sum(dz * z) for the last forward (same inputs). */
void fm_mtand_backward(const FmMtand *mt, FmParams *params, FmMtandBuffers *buf, float *dphi_ref,
                       float *dphi_obs, float *dx, const float *dz, const float *phi_ref,
                       const float *phi_obs, const float *x, const int *offset, int S);

#endif
