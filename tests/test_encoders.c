/* Encoders: mTAND (per channel and per item), the UTDE imputation branch and gate, the patch
 * encoder, and the per-modality encoder that packs a batch modality (with Time2Vec).
 *
 * Gradient checks run with the reference GEMM (double accumulation), so the float rounding
 * noise of the loss is mostly that of the element-wise code. About the tolerances: a numeric
 * gradient at step h carries ~1e-7 / h of rounding noise and the checker divides by at least
 * 1e-3, so near-zero gradients show relative errors up to ~1e-2 at h = 1e-2; a wrong backward
 * gives errors of order 1. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/encoder.h"
#include "models/mtand.h"
#include "models/patch.h"
#include "models/utde.h"
#include "src/gemm.h"
#include "src/time2vec.h"
#include "tests/support/model_support.h"

/* ================================ mTAND ================================ */

typedef struct {
    FmMtand mt;
    FmParams p;
    FmMtandBuffers buf;
    void *arena;
    int S, N, max_per_stay;
    int offset[8];
    float *phi_ref, *phi_obs, *x, *z, *R, *dphi_ref, *dphi_obs, *dx;
} MtandCtx;

static void mtand_layout(FmLayout *l, void *ctx) {
    MtandCtx *c = ctx;
    fm_mtand_layout(&c->buf, l, &c->mt.cfg, c->S, c->N, c->max_per_stay);
}

static float *fresh(size_t n) {
    float *x = calloc(n ? n : 1, sizeof(float));
    ck_assert(x != NULL);
    return x;
}

/* Stays with the given observation counts; per channel: channel `never` of every stay is never
 * observed, other entries observed with probability 0.6. */
static void mtand_setup(MtandCtx *c, int per_channel, const int *counts, int S, int never, uint64_t seed) {
    memset(c, 0, sizeof *c);
    FmRng rng;
    fm_rng_seed(&rng, seed);
    FmMtandConfig cfg = {.Q = 4, .H = 2, .DT = 4, .D = 3, .C = per_channel ? 3 : 5, .per_channel = per_channel};
    fm_params_init(&c->p);
    ck_assert_int_eq(fm_mtand_declare(&c->mt, &cfg, &c->p, "mtand", NULL), FM_OK);
    ck_assert_int_eq(fm_params_allocate(&c->p, 0, NULL), FM_OK);
    fm_mtand_init(&c->mt, &c->p, &rng);
    /* larger biases than nn.Linear's so that every path carries weight */
    c->S = S;
    c->offset[0] = 0;
    for (int s = 0; s < S; s++) {
        c->offset[s + 1] = c->offset[s] + counts[s];
        if (counts[s] > c->max_per_stay) c->max_per_stay = counts[s];
    }
    c->N = c->offset[S];
    const int Cin = c->mt.Cin, C = cfg.C;
    c->phi_ref = fresh((size_t)cfg.Q * cfg.DT);
    c->phi_obs = fresh((size_t)c->N * cfg.DT);
    c->x = fresh((size_t)c->N * Cin);
    fm_fill_uniform(&rng, c->phi_ref, (size_t)cfg.Q * cfg.DT, -1.5f, 1.5f);
    fm_fill_uniform(&rng, c->phi_obs, (size_t)c->N * cfg.DT, -1.5f, 1.5f);
    for (int l = 0; l < c->N; l++) {
        for (int ch = 0; ch < C; ch++) {
            if (!per_channel) {
                c->x[(size_t)l * Cin + ch] = (float)(2.0 * fm_rng_uniform(&rng) - 1.0);
                continue;
            }
            int obs = ch != never && fm_rng_uniform(&rng) < 0.6;
            c->x[(size_t)l * Cin + ch] = obs ? (float)(4.0 * fm_rng_uniform(&rng) - 2.0) : 0.0f;
            c->x[(size_t)l * Cin + C + ch] = (float)obs;
        }
    }
    c->z = fresh((size_t)S * cfg.Q * cfg.D);
    c->R = fresh((size_t)S * cfg.Q * cfg.D);
    fm_fill_uniform(&rng, c->R, (size_t)S * cfg.Q * cfg.D, -1.0f, 1.0f);
    c->dphi_ref = fresh((size_t)cfg.Q * cfg.DT);
    c->dphi_obs = fresh((size_t)c->N * cfg.DT);
    c->dx = fresh((size_t)c->N * Cin);
    c->arena = fm_test_layout_alloc(mtand_layout, c);
}

static void mtand_free(MtandCtx *c) {
    fm_params_free(&c->p);
    free(c->arena);
    free(c->phi_ref);
    free(c->phi_obs);
    free(c->x);
    free(c->z);
    free(c->R);
    free(c->dphi_ref);
    free(c->dphi_obs);
    free(c->dx);
}

static double mtand_loss(void *ctx) {
    MtandCtx *c = ctx;
    fm_mtand_forward(&c->mt, &c->p, &c->buf, c->z, c->phi_ref, c->phi_obs, c->x, c->offset, c->S);
    const FmMtandConfig *k = &c->mt.cfg;
    return fm_dot_double(c->z, c->R, (size_t)c->S * k->Q * k->D);
}

static void mtand_grads(MtandCtx *c) {
    mtand_loss(c);
    fm_params_zero_grad(&c->p);
    const FmMtandConfig *k = &c->mt.cfg;
    memset(c->dphi_ref, 0, (size_t)k->Q * k->DT * sizeof(float));
    memset(c->dphi_obs, 0, (size_t)c->N * k->DT * sizeof(float));
    memset(c->dx, 0, (size_t)c->N * c->mt.Cin * sizeof(float));
    fm_mtand_backward(&c->mt, &c->p, &c->buf, c->dphi_ref, c->dphi_obs, k->per_channel ? NULL : c->dx, c->R,
                      c->phi_ref, c->phi_obs, c->x, c->offset, c->S);
}

/* The definition, in double, with the softmax materialised per channel: o (S, Q, H*Cin). */
static void mtand_reference(const MtandCtx *c, double *o) {
    const FmMtandConfig *k = &c->mt.cfg;
    const int Q = k->Q, H = k->H, DT = k->DT, dh = DT / H, Cin = c->mt.Cin, C = k->C;
    const float *wq = fm_params_data(&c->p, c->mt.w_q), *bq = fm_params_data(&c->p, c->mt.b_q);
    const float *wk = fm_params_data(&c->p, c->mt.w_k), *bk = fm_params_data(&c->p, c->mt.b_k);
    double *q = calloc((size_t)Q * DT, sizeof(double)), *kk = calloc((size_t)c->N * DT + 1, sizeof(double));
    for (int r = 0; r < Q; r++)
        for (int i = 0; i < DT; i++) {
            double s = bq[i];
            for (int j = 0; j < DT; j++) s += (double)wq[i * DT + j] * c->phi_ref[r * DT + j];
            q[r * DT + i] = s;
        }
    for (int l = 0; l < c->N; l++)
        for (int i = 0; i < DT; i++) {
            double s = bk[i];
            for (int j = 0; j < DT; j++) s += (double)wk[i * DT + j] * c->phi_obs[(size_t)l * DT + j];
            kk[(size_t)l * DT + i] = s;
        }
    for (int s = 0; s < c->S; s++) {
        const int off = c->offset[s], n = c->offset[s + 1] - off;
        for (int h = 0; h < H; h++)
            for (int r = 0; r < Q; r++)
                for (int ch = 0; ch < Cin; ch++) {
                    double mx = -INFINITY, den = 0.0, num = 0.0, sc[64];
                    ck_assert(n <= 64);
                    for (int l = 0; l < n; l++) {
                        int observed = !k->per_channel || ch >= C || c->x[(size_t)(off + l) * Cin + C + ch] > 0.5f;
                        double v = 0.0;
                        for (int j = 0; j < dh; j++) v += q[r * DT + h * dh + j] * kk[(size_t)(off + l) * DT + h * dh + j];
                        sc[l] = observed ? v / sqrt((double)dh) : -INFINITY;
                        if (sc[l] > mx) mx = sc[l];
                    }
                    for (int l = 0; l < n; l++) {
                        if (sc[l] == -INFINITY) continue;
                        double e = exp(sc[l] - mx);
                        den += e;
                        num += e * c->x[(size_t)(off + l) * Cin + ch];
                    }
                    o[((size_t)s * Q + r) * H * Cin + h * Cin + ch] = den > 0.0 ? num / den : 0.0;
                }
    }
    free(q);
    free(kk);
}

static void check_against_reference(MtandCtx *c, double atol, const char *what) {
    const FmMtandConfig *k = &c->mt.cfg;
    const size_t no = (size_t)c->S * k->Q * k->H * c->mt.Cin;
    double *o = calloc(no, sizeof(double));
    mtand_reference(c, o);
    float *want = fresh(no), *zwant = fresh((size_t)c->S * k->Q * k->D);
    for (size_t i = 0; i < no; i++) want[i] = (float)o[i];
    fm_test_expect_close(c->buf.o, want, no, atol, 1e-4, what);
    /* Z = W_O o + b_O */
    const float *wo = fm_params_data(&c->p, c->mt.w_o), *bo = fm_params_data(&c->p, c->mt.b_o);
    const int HC = k->H * c->mt.Cin;
    for (int row = 0; row < c->S * k->Q; row++)
        for (int d = 0; d < k->D; d++) {
            double s = bo[d];
            for (int j = 0; j < HC; j++) s += (double)wo[d * HC + j] * o[(size_t)row * HC + j];
            zwant[(size_t)row * k->D + d] = (float)s;
        }
    fm_test_expect_close(c->z, zwant, (size_t)c->S * k->Q * k->D, atol, 1e-4, "mtand z");
    free(o);
    free(want);
    free(zwant);
}

START_TEST(test_mtand_series_matches_definition) {
    const int counts[3] = {5, 0, 3};
    MtandCtx c;
    mtand_setup(&c, 1, counts, 3, 1, 11);
    mtand_loss(&c);
    /* observed max abs error 1.2e-7 (float against double) */
    check_against_reference(&c, 1e-5, "mtand series o");
    /* channel 1 has no observation: o = 0 exactly, in every stay, head and reference time */
    const FmMtandConfig *k = &c.mt.cfg;
    for (int s = 0; s < 3; s++)
        for (int r = 0; r < k->Q; r++)
            for (int h = 0; h < k->H; h++) {
                const float *o = c.buf.o + ((size_t)s * k->Q + r) * k->H * c.mt.Cin + h * c.mt.Cin;
                ck_assert_float_eq(o[1], 0.0f);
                ck_assert_float_eq(o[k->C + 1], 0.0f); /* never measured: frequency 0 */
                if (s == 1) /* a stay without observations: everything 0, so z = b_O */
                    for (int ch = 0; ch < c.mt.Cin; ch++) ck_assert_float_eq(o[ch], 0.0f);
            }
    const float *bo = fm_params_data(&c.p, c.mt.b_o);
    for (int r = 0; r < k->Q; r++)
        for (int d = 0; d < k->D; d++) ck_assert_float_eq(c.z[((size_t)1 * k->Q + r) * k->D + d], bo[d]);
    mtand_free(&c);
}
END_TEST

START_TEST(test_mtand_items_matches_definition) {
    const int counts[3] = {4, 1, 0};
    MtandCtx c;
    mtand_setup(&c, 0, counts, 3, -1, 12);
    mtand_loss(&c);
    /* observed max abs error 6e-8 */
    check_against_reference(&c, 1e-5, "mtand items o");
    mtand_free(&c);
}
END_TEST

START_TEST(test_mtand_underflow_recomputed_directly) {
    /* Observation 0 gets a huge key: in rows where it scores far above the others, channels
     * observed only elsewhere have denominators that underflow in exp(s - row max). */
    const int counts[1] = {4};
    MtandCtx c;
    mtand_setup(&c, 1, counts, 1, -1, 13);
    const FmMtandConfig *k = &c.mt.cfg;
    const int C = k->C, Cin = c.mt.Cin;
    for (int j = 0; j < k->DT; j++) c.phi_obs[j] *= 3000.0f;
    /* observation 0 measures only channel 0; channels 1 and 2 are measured elsewhere */
    for (int ch = 0; ch < C; ch++) {
        c.x[ch] = ch == 0 ? 1.5f : 0.0f;
        c.x[C + ch] = ch == 0;
        c.x[(size_t)1 * Cin + ch] = 0.5f + ch;
        c.x[(size_t)1 * Cin + C + ch] = 1.0f;
    }
    mtand_loss(&c);
    /* the case arises: some (h, r) has channel 1's denominator below the threshold */
    int tiny = 0;
    for (int i = 0; i < k->H * k->Q; i++) tiny += c.buf.nd[(size_t)i * Cin + C + 1] < 1e-30f;
    ck_assert_int_gt(tiny, 0);
    /* observed max abs error 1.2e-7 */
    check_against_reference(&c, 1e-5, "mtand underflow o");
    /* the gradient through the direct path (W_O, b_O and the ordinary observations' keys) */
    mtand_grads(&c);
    fm_gemm_use_reference(1);
    /* observed max rel err 1.5e-4 (w_o), 5.3e-3 (phi of observations 1..3) */
    fm_test_gradcheck_params(&c.p, "mtand.w_o", mtand_loss, &c, 1e-2, 2e-2);
    fm_test_gradcheck_params(&c.p, "mtand.b_o", mtand_loss, &c, 1e-2, 2e-2);
    fm_test_gradcheck(mtand_loss, &c, c.phi_obs + k->DT, c.dphi_obs + k->DT, (size_t)3 * k->DT, 1e-2, 2e-2,
                      "mtand underflow dphi_obs[1..3]");
    fm_gemm_use_reference(0);
    mtand_free(&c);
}
END_TEST

START_TEST(test_mtand_series_gradcheck) {
    const int counts[3] = {5, 0, 3};
    MtandCtx c;
    mtand_setup(&c, 1, counts, 3, 1, 21);
    fm_gemm_use_reference(1);
    mtand_grads(&c);
    const FmMtandConfig *k = &c.mt.cfg;
    /* observed max rel err: params 5.1e-3, dphi_ref 2.8e-3, dphi_obs 1.5e-3 */
    fm_test_gradcheck_params(&c.p, "", mtand_loss, &c, 1e-2, 2e-2);
    fm_test_gradcheck(mtand_loss, &c, c.phi_ref, c.dphi_ref, (size_t)k->Q * k->DT, 1e-2, 2e-2, "mtand dphi_ref");
    fm_test_gradcheck(mtand_loss, &c, c.phi_obs, c.dphi_obs, (size_t)c.N * k->DT, 1e-2, 2e-2, "mtand dphi_obs");
    fm_gemm_use_reference(0);
    mtand_free(&c);
}
END_TEST

START_TEST(test_mtand_items_gradcheck) {
    const int counts[3] = {4, 1, 0};
    MtandCtx c;
    mtand_setup(&c, 0, counts, 3, -1, 22);
    fm_gemm_use_reference(1);
    mtand_grads(&c);
    const FmMtandConfig *k = &c.mt.cfg;
    /* observed max rel err: params 1.7e-3, dphi_ref 6.4e-4, dphi_obs 9.4e-4, dx 9.9e-5 */
    fm_test_gradcheck_params(&c.p, "", mtand_loss, &c, 1e-2, 2e-2);
    fm_test_gradcheck(mtand_loss, &c, c.phi_ref, c.dphi_ref, (size_t)k->Q * k->DT, 1e-2, 2e-2, "mtand dphi_ref");
    fm_test_gradcheck(mtand_loss, &c, c.phi_obs, c.dphi_obs, (size_t)c.N * k->DT, 1e-2, 2e-2, "mtand dphi_obs");
    fm_test_gradcheck(mtand_loss, &c, c.x, c.dx, (size_t)c.N * c.mt.Cin, 1e-2, 2e-2, "mtand dx");
    fm_gemm_use_reference(0);
    mtand_free(&c);
}
END_TEST

/* ================================ UTDE ================================ */

START_TEST(test_utde_impute_carries_forward) {
    /* Q = 5 bins centred on 0, .25, .5, .75, 1; C = 2 */
    const int Q = 5, C = 2;
    const float t[4] = {0.05f, 0.30f, 0.20f, 0.74f};
    /* rows [v0 v1 | m0 m1] */
    const float x[4][4] = {
        {1.0f, 0.0f, 1, 0},  /* t .05 -> bin 0: channel 0 */
        {2.0f, 5.0f, 1, 1},  /* t .30 -> bin 1: both */
        {3.0f, 0.0f, 1, 0},  /* t .20 -> bin 1, earlier than .30: channel 0 loses to 2.0 */
        {0.0f, -1.0f, 0, 1}, /* t .74 -> bin 3: channel 1 */
    };
    float ximp[5 * 4];
    fm_utde_impute(ximp, t, &x[0][0], 4, Q, C);
    const float want[5][4] = {
        {1.0f, 0.0f, 1, 0},  /* channel 1 not yet observed: 0 */
        {2.0f, 5.0f, 1, 1},
        {2.0f, 5.0f, 0, 0},  /* carried */
        {2.0f, -1.0f, 0, 1},
        {2.0f, -1.0f, 0, 0},
    };
    fm_assert_close(ximp, &want[0][0], 20, 0.0, 0.0, "imputed bins");
}
END_TEST

typedef struct {
    FmUtde u;
    FmParams p;
    FmUtdeBuffers buf;
    void *arena;
    int S, N, offset[4];
    float *zm, *t, *x, *z, *R, *dzm;
} UtdeCtx;

static void utde_layout(FmLayout *l, void *ctx) {
    UtdeCtx *c = ctx;
    fm_utde_layout(&c->buf, l, c->u.Q, c->u.C, c->u.D, c->S);
}

static double utde_loss(void *ctx) {
    UtdeCtx *c = ctx;
    fm_utde_forward(&c->u, &c->p, &c->buf, c->z, c->zm, c->t, c->x, c->offset, c->S);
    return fm_dot_double(c->z, c->R, (size_t)c->S * c->u.Q * c->u.D);
}

START_TEST(test_utde_gradcheck) {
    UtdeCtx c;
    memset(&c, 0, sizeof c);
    FmRng rng;
    fm_rng_seed(&rng, 31);
    const int Q = 4, C = 3, D = 5;
    fm_params_init(&c.p);
    ck_assert_int_eq(fm_utde_declare(&c.u, Q, C, D, &c.p, "utde", NULL), FM_OK);
    ck_assert_int_eq(fm_params_allocate(&c.p, 0, NULL), FM_OK);
    fm_utde_init(&c.u, &c.p, &rng);
    c.S = 3;
    const int counts[3] = {4, 0, 2};
    for (int s = 0; s < 3; s++) c.offset[s + 1] = c.offset[s] + counts[s];
    c.N = c.offset[3];
    c.zm = fresh((size_t)c.S * Q * D);
    fm_fill_uniform(&rng, c.zm, (size_t)c.S * Q * D, -1.0f, 1.0f);
    c.t = fresh((size_t)c.N);
    c.x = fresh((size_t)c.N * 2 * C);
    for (int l = 0; l < c.N; l++) {
        c.t[l] = (float)fm_rng_uniform(&rng);
        for (int ch = 0; ch < C; ch++) {
            int o = fm_rng_uniform(&rng) < 0.7;
            c.x[(size_t)l * 2 * C + ch] = o ? (float)fm_rng_uniform(&rng) * 2.0f - 1.0f : 0.0f;
            c.x[(size_t)l * 2 * C + C + ch] = (float)o;
        }
    }
    c.z = fresh((size_t)c.S * Q * D);
    c.R = fresh((size_t)c.S * Q * D);
    c.dzm = fresh((size_t)c.S * Q * D);
    fm_fill_uniform(&rng, c.R, (size_t)c.S * Q * D, -1.0f, 1.0f);
    c.arena = fm_test_layout_alloc(utde_layout, &c);
    fm_gemm_use_reference(1);
    utde_loss(&c);
    /* the gate is strictly inside (0, 1) and mixes the two branches */
    for (int s = 0; s < 3; s++) ck_assert(c.buf.g[s] > 0.0f && c.buf.g[s] < 1.0f);
    fm_utde_backward(&c.u, &c.p, &c.buf, c.dzm, c.R, c.zm, c.S);
    /* observed max rel err: params 5.6e-3, dzm 4.9e-4. The step is 1e-3: at 1e-2 a column
     * maximum can change rows within the step (a kink), observed 4e-2 on imp.weight. */
    fm_test_gradcheck_params(&c.p, "", utde_loss, &c, 1e-3, 2e-2);
    fm_test_gradcheck(utde_loss, &c, c.zm, c.dzm, (size_t)c.S * Q * D, 1e-3, 2e-2, "utde dzm");
    fm_gemm_use_reference(0);
    fm_params_free(&c.p);
    free(c.arena);
    free(c.zm);
    free(c.t);
    free(c.x);
    free(c.z);
    free(c.R);
    free(c.dzm);
}
END_TEST

/* ================================ patch encoder ================================ */

typedef struct {
    FmPatch pe;
    FmParams p;
    FmPatchBuffers buf;
    void *arena;
    int N;
    float *pix, *out, *R;
} PatchCtx;

static void patch_layout(FmLayout *l, void *ctx) {
    PatchCtx *c = ctx;
    fm_patch_layout(&c->buf, l, &c->pe, c->N);
}

static double patch_loss(void *ctx) {
    PatchCtx *c = ctx;
    fm_patch_forward(&c->pe, &c->p, &c->buf, c->out, c->pix, c->N);
    return fm_dot_double(c->out, c->R, (size_t)c->N * c->pe.F);
}

START_TEST(test_patch_encoder) {
    const int gelu = _i;
    PatchCtx c;
    memset(&c, 0, sizeof c);
    FmRng rng;
    fm_rng_seed(&rng, 41 + (uint64_t)gelu);
    fm_params_init(&c.p);
    /* 6 x 6 images, 3 x 3 patches (4 of them), width 5 */
    ck_assert_int_eq(fm_patch_declare(&c.pe, 36, 3, 5, gelu, &c.p, "patch", NULL), FM_OK);
    ck_assert_int_eq(fm_params_allocate(&c.p, 0, NULL), FM_OK);
    fm_patch_init(&c.pe, &c.p, &rng);
    c.N = 3;
    c.pix = fresh((size_t)c.N * 36);
    c.out = fresh((size_t)c.N * 5);
    c.R = fresh((size_t)c.N * 5);
    fm_fill_uniform(&rng, c.pix, (size_t)c.N * 36, 0.0f, 1.0f);
    fm_fill_uniform(&rng, c.R, (size_t)c.N * 5, -1.0f, 1.0f);
    c.arena = fm_test_layout_alloc(patch_layout, &c);
    patch_loss(&c);
    /* the definition: mean over the 4 patches of act(W patch + b) */
    const float *w = fm_params_data(&c.p, c.pe.w), *b = fm_params_data(&c.p, c.pe.b);
    float want[15];
    for (int n = 0; n < c.N; n++)
        for (int f = 0; f < 5; f++) {
            double acc = 0.0;
            for (int py = 0; py < 2; py++)
                for (int px = 0; px < 2; px++) {
                    double a = b[f];
                    for (int i = 0; i < 3; i++)
                        for (int j = 0; j < 3; j++)
                            a += (double)w[f * 9 + i * 3 + j] * c.pix[(size_t)n * 36 + (py * 3 + i) * 6 + px * 3 + j];
                    acc += gelu ? 0.5 * a * (1.0 + erf(a / sqrt(2.0))) : a;
                }
            want[n * 5 + f] = (float)(acc / 4.0);
        }
    /* observed max abs error 6e-8 */
    fm_test_expect_close(c.out, want, 15, 1e-6, 1e-5, gelu ? "patch gelu forward" : "patch forward");
    fm_params_zero_grad(&c.p);
    fm_patch_backward(&c.pe, &c.p, &c.buf, c.R, c.N);
    fm_gemm_use_reference(1);
    /* observed max rel err 3.1e-5 (linear), 7.8e-5 (GELU) */
    fm_test_gradcheck_params(&c.p, "", patch_loss, &c, 1e-2, 1e-2);
    fm_gemm_use_reference(0);
    ck_assert_int_eq(fm_patch_declare(&c.pe, 35, 3, 5, 0, &c.p, "bad", NULL), FM_ERR_CONFIG); /* not square */
    ck_assert_int_eq(fm_patch_declare(&c.pe, 36, 4, 5, 0, &c.p, "bad", NULL), FM_ERR_CONFIG); /* 4 does not divide 6 */
    fm_params_free(&c.p);
    free(c.arena);
    free(c.pix);
    free(c.out);
    free(c.R);
}
END_TEST

/* ================================ encoder ================================ */

typedef struct {
    FmEncoder enc;
    FmParams p;
    int t2v_w, t2v_b;
    FmEncoderBuffers buf;
    void *arena;
    FmTestBatch tb;
    float ref_t[8], phi_ref[8 * 8], dphi_ref[8 * 8];
    float *R;
    size_t n_out;
} EncCtx;

static void enc_layout(FmLayout *l, void *ctx) {
    EncCtx *c = ctx;
    fm_encoder_layout(&c->buf, l, &c->enc, c->tb.batch.B, c->tb.mod[0].max_L);
}

static double enc_loss(void *ctx) {
    EncCtx *c = ctx;
    const FmEncoderConfig *k = &c->enc.cfg;
    fm_time2vec_forward(c->phi_ref, c->ref_t, fm_params_data(&c->p, c->t2v_w), fm_params_data(&c->p, c->t2v_b), k->Q,
                        k->DT);
    ck_assert_int_eq(fm_encoder_pack(&c->enc, &c->buf, &c->tb.mod[0], c->tb.batch.B, "m", NULL), FM_OK);
    fm_encoder_forward(&c->enc, &c->p, &c->buf, c->phi_ref, c->t2v_w, c->t2v_b);
    return fm_dot_double(c->buf.z, c->R, (size_t)c->buf.S * c->n_out);
}

/* B = 4 stays of one modality: stay 1 absent, stay 2 present without observations (SERIES,
 * EVENTS, IMAGES), padding beyond each count. */
static void enc_setup(EncCtx *c, FmModalityKind kind, int imputation, int patch_gelu, uint64_t seed) {
    memset(c, 0, sizeof *c);
    FmRng rng;
    fm_rng_seed(&rng, seed);
    const int C = kind == FM_MODALITY_IMAGES ? 16 : kind == FM_MODALITY_EVENTS ? 5 : 3;
    FmEncoderConfig cfg = {.kind = kind, .C = C, .Q = 4, .D = 3, .H = 2, .DT = 4, .imputation = imputation,
                           .patch = 2, .patch_dim = 3, .patch_gelu = patch_gelu};
    fm_params_init(&c->p);
    int dt = cfg.DT;
    ck_assert_int_eq(fm_params_declare(&c->p, "time2vec.w", 1, &dt, 0, &c->t2v_w, NULL), FM_OK);
    ck_assert_int_eq(fm_params_declare(&c->p, "time2vec.b", 1, &dt, 0, &c->t2v_b, NULL), FM_OK);
    ck_assert_int_eq(fm_encoder_declare(&c->enc, &cfg, &c->p, "encoder.m", NULL), FM_OK);
    ck_assert_int_eq(fm_params_allocate(&c->p, 0, NULL), FM_OK);
    fm_encoder_init(&c->enc, &c->p, &rng);
    fm_fill_uniform(&rng, fm_params_data(&c->p, c->t2v_w), 4, -3.0f, 3.0f);
    fm_fill_uniform(&rng, fm_params_data(&c->p, c->t2v_b), 4, -1.0f, 1.0f);
    for (int r = 0; r < cfg.Q; r++) c->ref_t[r] = (float)r / (float)(cfg.Q - 1);
    c->tb.batch.B = 4;
    c->tb.batch.M = 1;
    const int L = kind == FM_MODALITY_STATIC ? 1 : 5;
    fm_test_batch_modality(&c->tb, 0, kind, C, L);
    const int never[2] = {1, -1};
    fm_test_batch_fill(&c->tb, 0, 0, L, 0.7, kind == FM_MODALITY_SERIES ? never : NULL, &rng);
    fm_test_batch_fill(&c->tb, 0, 1, L, 0.7, NULL, &rng);
    c->tb.mod[0].present[1] = 0;
    fm_test_batch_fill(&c->tb, 0, 2, kind == FM_MODALITY_STATIC ? 1 : 0, 0.7, NULL, &rng);
    fm_test_batch_fill(&c->tb, 0, 3, kind == FM_MODALITY_STATIC ? 1 : 3, 0.7, NULL, &rng);
    if (kind == FM_MODALITY_EVENTS) c->tb.mod[0].mask[3 * L + 1] = 0; /* a padded item inside the count */
    c->n_out = (size_t)(kind == FM_MODALITY_STATIC ? 1 : cfg.Q) * cfg.D;
    c->R = fresh(4 * c->n_out);
    fm_fill_uniform(&rng, c->R, 4 * c->n_out, -1.0f, 1.0f);
    c->arena = fm_test_layout_alloc(enc_layout, c);
}

static void enc_free(EncCtx *c) {
    fm_params_free(&c->p);
    free(c->arena);
    free(c->R);
    fm_test_batch_free(&c->tb);
}

/* kind, imputation, patch GELU */
static const int ENC_CASES[][3] = {
    {FM_MODALITY_SERIES, 1, 0}, {FM_MODALITY_SERIES, 0, 0}, {FM_MODALITY_EVENTS, 0, 0},
    {FM_MODALITY_IMAGES, 0, 0}, {FM_MODALITY_IMAGES, 0, 1}, {FM_MODALITY_STATIC, 0, 0},
};

START_TEST(test_encoder_gradcheck) {
    const int *k = ENC_CASES[_i];
    EncCtx c;
    enc_setup(&c, (FmModalityKind)k[0], k[1], k[2], 50 + (uint64_t)_i);
    fm_gemm_use_reference(1);
    enc_loss(&c);
    ck_assert_int_eq(c.buf.S, 3); /* the absent stay is not encoded */
    ck_assert_int_eq(c.buf.slot_stay[1], 2);
    fm_params_zero_grad(&c.p);
    memset(c.dphi_ref, 0, sizeof c.dphi_ref);
    fm_encoder_backward(&c.enc, &c.p, &c.buf, c.R, c.phi_ref, c.dphi_ref, c.t2v_w, c.t2v_b);
    /* Through phi_ref into Time2Vec, as the model does once for all modalities */
    fm_time2vec_backward(NULL, fm_params_grad(&c.p, c.t2v_w), fm_params_grad(&c.p, c.t2v_b), c.dphi_ref, c.ref_t,
                         fm_params_data(&c.p, c.t2v_w), fm_params_data(&c.p, c.t2v_b), c.enc.cfg.Q, c.enc.cfg.DT);
    /* observed max rel err over all tensors and cases: 6.5e-3 (mtand.w_q; at h 1e-3 the
     * rounding noise gave up to 4.8e-2 on gradients near 5e-4) */
    fm_test_gradcheck_params(&c.p, "", enc_loss, &c, 1e-2, 2e-2);
    fm_gemm_use_reference(0);
    enc_free(&c);
}
END_TEST

START_TEST(test_encoder_ignores_what_is_not_observed) {
    /* NaN in an absent stay, in padding beyond the count, in unobserved SERIES entries and in
     * items whose mask is 0 leaves the output unchanged. */
    for (int kcase = 0; kcase < 3; kcase++) {
        EncCtx c;
        enc_setup(&c, (FmModalityKind)ENC_CASES[kcase][0], ENC_CASES[kcase][1], 0, 60 + (uint64_t)kcase);
        enc_loss(&c);
        size_t nz = (size_t)c.buf.S * c.n_out;
        float *before = fresh(nz);
        memcpy(before, c.buf.z, nz * sizeof(float));
        FmBatchModality *bm = &c.tb.mod[0];
        const int L = bm->max_L, C = bm->C;
        for (int b = 0; b < 4; b++)
            for (int l = 0; l < L; l++) {
                int real = bm->present[b] && l < bm->count[b];
                int item_real = real && (bm->kind == FM_MODALITY_SERIES || bm->mask[(size_t)b * L + l]);
                if (!item_real) bm->time[(size_t)b * L + l] = NAN;
                for (int ch = 0; ch < C; ch++) {
                    int obs = item_real && (bm->kind != FM_MODALITY_SERIES || bm->mask[((size_t)b * L + l) * C + ch]);
                    if (!obs) bm->value[((size_t)b * L + l) * C + ch] = NAN;
                }
            }
        enc_loss(&c);
        ck_assert_mem_eq(before, c.buf.z, nz * sizeof(float));
        free(before);
        enc_free(&c);
    }
}
END_TEST

START_TEST(test_encoder_pack_rejects_bad_batches) {
    EncCtx c;
    enc_setup(&c, FM_MODALITY_SERIES, 1, 0, 70);
    FmBatchModality *bm = &c.tb.mod[0];
    FmError err;
    bm->kind = FM_MODALITY_EVENTS;
    ck_assert_int_eq(fm_encoder_pack(&c.enc, &c.buf, bm, 4, "vitals", &err), FM_ERR_ARG);
    ck_assert_str_eq(err.message, "modality vitals: the model expects series data with 3 channels, got events with 3");
    bm->kind = FM_MODALITY_SERIES;
    bm->count[2] = 6;
    ck_assert_int_eq(fm_encoder_pack(&c.enc, &c.buf, bm, 4, "vitals", &err), FM_ERR_ARG);
    ck_assert_str_eq(err.message, "modality vitals: stay 2: 6 observations, not in [0, 5]");
    bm->count[2] = 0;
    ck_assert_int_eq(fm_encoder_pack(&c.enc, &c.buf, bm, 5, "vitals", &err), FM_ERR_ARG); /* 5 stays > 4 */
    bm->time[3 * 5 + 2] = NAN;
    ck_assert_int_eq(fm_encoder_pack(&c.enc, &c.buf, bm, 4, "vitals", &err), FM_ERR_ARG);
    ck_assert_str_eq(err.message, "modality vitals: stay 3: observation 2: time is not finite");
    bm->time[3 * 5 + 2] = 0.5f;
    bm->mask[(3 * 5 + 1) * 3 + 0] = 1;
    bm->value[(3 * 5 + 1) * 3 + 0] = INFINITY;
    ck_assert_int_eq(fm_encoder_pack(&c.enc, &c.buf, bm, 4, "vitals", &err), FM_ERR_ARG);
    ck_assert_str_eq(err.message, "modality vitals: stay 3: observation 1: channel 0: value is not finite");
    bm->value[(3 * 5 + 1) * 3 + 0] = 1.0f;
    ck_assert_int_eq(fm_encoder_pack(&c.enc, &c.buf, bm, 4, "vitals", &err), FM_OK);
    enc_free(&c);
}
END_TEST

static Suite *encoders_suite(void) {
    Suite *s = suite_create("encoders");
    TCase *tc = tcase_create("encoders");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_mtand_series_matches_definition);
    tcase_add_test(tc, test_mtand_items_matches_definition);
    tcase_add_test(tc, test_mtand_underflow_recomputed_directly);
    tcase_add_test(tc, test_mtand_series_gradcheck);
    tcase_add_test(tc, test_mtand_items_gradcheck);
    tcase_add_test(tc, test_utde_impute_carries_forward);
    tcase_add_test(tc, test_utde_gradcheck);
    tcase_add_loop_test(tc, test_patch_encoder, 0, 2);
    tcase_add_loop_test(tc, test_encoder_gradcheck, 0, (int)(sizeof ENC_CASES / sizeof *ENC_CASES));
    tcase_add_test(tc, test_encoder_ignores_what_is_not_observed);
    tcase_add_test(tc, test_encoder_pack_rejects_bad_batches);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return fm_test_run_suite(encoders_suite()); }
