/* The competition mode of the MoE layer (models/moe_compete.h), its schedule
 * (models/compete_schedule.h) and the collapse diagnostics (models/moe_diagnostics.h): gradient
 * checks for every gate and router, the PyTorch reference (tests/fixtures/generate_compete.py),
 * behaviour, schedule statistics, hand-computed diagnostics and allocation failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/compete_schedule.h"
#include "models/model.h"
#include "models/moe.h"
#include "models/moe_compete.h"
#include "models/moe_compete_loss.h"
#include "models/moe_diagnostics.h"
#include "models/moe_internal.h"
#include "src/alloc.h"
#include "src/blas_kernel.h"
#include "src/evaluate_experts.h"
#include "src/gemm.h"
#include "tests/support/model_support.h"
#include "tests/support/testutil.h"

static const FmGate GATES[] = {FM_GATE_LAPLACE, FM_GATE_GAUSSIAN, FM_GATE_SOFTMAX};
static const FmRouter ROUTERS[] = {FM_ROUTER_JOINT, FM_ROUTER_PER_MODALITY, FM_ROUTER_DISJOINT};
static const char *GATE_NAMES[] = {"laplace", "gaussian", "softmax"};
static const char *ROUTER_NAMES[] = {"joint", "per_modality", "disjoint"};

#define MAX_T 64

/* A layer in competition mode with inputs and a fixed loss
 *   sum(out * dout) + router_coef L_R + diversity_coef L_div + balance_coef balance.
 * For the gradient checks L_R is evaluated with the target q and the winners frozen at the
 * unperturbed point (the layer's stop-gradient), and every evaluation checks that the winners
 * have not changed. */
typedef struct {
    FmMoeConfig cfg;
    FmMoe moe;
    FmParams params;
    FmMoeCache *cache;
    int T;
    float *x, *out, *dout, *dx;
    int *modality;
    int training;
    FmRng rng; /* copied before every forward, so dropout masks repeat */
    float router_coef, diversity_coef, balance_coef, beta;
    int frozen;
    float q_base[MAX_T * FM_MOE_MAX_EXPERTS];
    int sel_base[MAX_T * 8];
    unsigned sig_base[MAX_T];
} Layer;

static FmMoeConfig small_config(FmGate gate, FmRouter router) {
    FmMoeConfig c = {.D = 6,
                     .hidden = 5,
                     .E = 8,
                     .K = 3,
                     .M = 2,
                     .gate = gate,
                     .router = router,
                     .dropout = 0.0f,
                     .noisy = 1};
    return c;
}

static void layer_build(Layer *L, const FmMoeConfig *cfg, int T, unsigned seed) {
    memset(L, 0, sizeof *L);
    ck_assert_int_le(T, MAX_T);
    L->cfg = *cfg;
    L->T = T;
    L->training = 1;
    L->router_coef = 2.0f;
    L->diversity_coef = 0.5f;
    L->balance_coef = 0.3f;
    FmError err;
    fm_params_init(&L->params);
    ck_assert_int_eq(fm_moe_declare(&L->moe, cfg, &L->params, "moe", &err), FM_OK);
    ck_assert_int_eq(fm_params_allocate(&L->params, 0, &err), FM_OK);
    ck_assert_int_eq(fm_moe_cache_create_compete(&L->cache, cfg, T, &err), FM_OK);
    FmRng rng;
    fm_rng_seed(&rng, seed);
    fm_moe_init(&L->moe, &L->params, &rng);
    /* Spread the experts' responses: an offset in U(-0.5, 0.5) on each expert's output bias
     * makes gaps between responses of order 0.1 common, so inputs away from ties are easy to
     * find for the gradient checks' step. */
    float *b2 = fm_params_data(&L->params, L->moe.fc2_b);
    for (int e = 0; e < cfg->E; e++) {
        const float offset = (float)fm_rng_uniform(&rng) - 0.5f;
        for (int d = 0; d < cfg->D; d++)
            b2[e * cfg->D + d] += offset;
    }
    const size_t n = (size_t)T * cfg->D;
    L->x = malloc(n * sizeof(float));
    L->out = malloc(n * sizeof(float));
    L->dout = malloc(n * sizeof(float));
    L->dx = calloc(n, sizeof(float));
    L->modality = malloc((size_t)T * sizeof(int));
    fm_fill_uniform(&rng, L->x, n, -1.0f, 1.0f);
    fm_fill_uniform(&rng, L->dout, n, -1.0f, 1.0f);
    for (int t = 0; t < T; t++)
        L->modality[t] = (t * 5 + 1) % 3 % cfg->M;
    fm_rng_seed(&L->rng, seed + 17);
}

static void layer_free(Layer *L) {
    fm_moe_cache_free(L->cache);
    fm_params_free(&L->params);
    free(L->x);
    free(L->out);
    free(L->dout);
    free(L->dx);
    free(L->modality);
}

static FmCompeteAux layer_forward(Layer *L) {
    FmRng rng = L->rng;
    FmCompeteAux aux;
    fm_moe_compete_forward(&L->moe, &L->params, L->cache, L->out, L->x, L->modality, L->T, L->training, &rng,
                           L->beta, &aux);
    return aux;
}

/* Per token, the bit mask of its winners (local ids). */
static void winner_signature(const FmMoeCache *cache, unsigned *sig) {
    FmCompeteView v;
    fm_moe_compete_view(cache, &v);
    for (int t = 0; t < v.T; t++) {
        sig[t] = 0;
        for (int k = 0; k < v.K; k++)
            sig[t] |= 1u << v.winners[t * v.K + k];
    }
}

/* The smallest gap between the K-th and (K+1)-th largest response over the tokens. */
static double response_margin(const FmMoeCache *cache) {
    FmCompeteView v;
    fm_moe_compete_view(cache, &v);
    double best = INFINITY;
    for (int t = 0; t < v.T; t++) {
        const float *s = v.response + (size_t)t * v.E_r;
        float kth = INFINITY, next = -INFINITY;
        for (int k = 0; k < v.K; k++)
            kth = fminf(kth, s[v.winners[t * v.K + k]]);
        for (int e = 0; e < v.E_r; e++) {
            int won = 0;
            for (int k = 0; k < v.K; k++)
                won |= v.winners[t * v.K + k] == e;
            if (!won) next = fmaxf(next, s[e]);
        }
        if (v.K < v.E_r) best = fmin(best, (double)kth - next);
    }
    return best;
}

static double layer_loss(void *ctx) {
    Layer *L = ctx;
    FmCompeteAux aux = layer_forward(L);
    double router = aux.router;
    if (L->frozen) {
        unsigned sig[MAX_T];
        winner_signature(L->cache, sig);
        ck_assert_msg(memcmp(sig, L->sig_base, (size_t)L->T * sizeof *sig) == 0,
                      "a finite-difference step changed the winners: the margin is too small for the step");
        FmCompeteView v;
        fm_moe_compete_view(L->cache, &v);
        router =
            fm_moe_compete_router_loss(v.router_probs, L->q_base, L->sel_base, L->T, v.E_r, v.K, L->beta);
    }
    return fm_dot_double(L->out, L->dout, (size_t)L->T * L->cfg.D) + (double)L->router_coef * router +
           (double)L->diversity_coef * aux.diversity + (double)L->balance_coef * aux.balance;
}

static void layer_backward(Layer *L) {
    fm_params_zero_grad(&L->params);
    memset(L->dx, 0, (size_t)L->T * L->cfg.D * sizeof(float));
    layer_forward(L);
    fm_moe_compete_backward(&L->moe, &L->params, L->cache, L->dx, L->dout, L->router_coef, L->diversity_coef,
                            L->balance_coef);
}

static unsigned layer_build_away_from_ties(Layer *L, const FmMoeConfig *cfg, int T, unsigned seed,
                                           double margin) {
    for (int tries = 0; tries < 2000; tries++, seed++) {
        layer_build(L, cfg, T, seed);
        layer_forward(L);
        if (response_margin(L->cache) > margin) return seed;
        layer_free(L);
    }
    ck_abort_msg("no seed with a response margin above %g", margin);
    return 0;
}

/* Central differences of the whole loss for the input and every parameter tensor (the noise
 * weights get no gradient in competition mode, and the check confirms it). */
static void check_all_gradients(Layer *L, double h, double tol, const char *what) {
    layer_backward(L);
    FmCompeteView v;
    fm_moe_compete_view(L->cache, &v);
    /* the analytic L_R equals the frozen one at the base point */
    const FmCompeteAux aux = layer_forward(L);
    memcpy(L->q_base, v.target, (size_t)L->T * v.E_r * sizeof(float));
    memcpy(L->sel_base, v.winners, (size_t)L->T * v.K * sizeof(int));
    winner_signature(L->cache, L->sig_base);
    const double frozen =
        fm_moe_compete_router_loss(v.router_probs, L->q_base, L->sel_base, L->T, v.E_r, v.K, L->beta);
    ck_assert_double_eq_tol(frozen, aux.router, 1e-6 * frozen); /* aux.router is a float */
    L->frozen = 1;
    char name[256];
    snprintf(name, sizeof name, "%s dx", what);
    fm_assert_gradcheck(layer_loss, L, L->x, L->dx, (size_t)L->T * L->cfg.D, h, tol, name);
    for (int i = 0; i < L->params.n_tensors; i++) {
        const FmTensorInfo *info = &L->params.tensors[i];
        snprintf(name, sizeof name, "%s %s", what, info->name);
        fm_assert_gradcheck(layer_loss, L, fm_params_data(&L->params, i), fm_params_grad(&L->params, i),
                            info->count, h, tol, name);
    }
    L->frozen = 0;
}

/* The forward runs in float, so each loss evaluation carries noise of a few 1e-7, divided by 2h
 * in the numeric gradient. At h = 1e-2 the median relative error over the 234 tensor checks of
 * this suite is 3.8e-4 and the worst is 2.3e-2: float noise in the balance-only loss (absolute
 * error 2.3e-5 against the checker's floor of 1e-3 on gradients of about 2e-4; it is 3.4e-2 at
 * h = 5e-3 and drops out of the worst four at h = 2e-2, where truncation in the diversity loss
 * takes over at 2.9e-2). Hence 3e-2, not the MoE suite's 2e-2. A step moves a response by at
 * most a few 1e-3, so a margin of 1e-2 at rank K keeps the winners fixed (and the loss function
 * verifies it). */
#define GC_STEP 1e-2
#define GC_MARGIN 1e-2
#define GC_TOL 3e-2

/* The whole competition step for every gate x router, with all three loss coefficients
 * non-zero and the winner weight beta 0 and 1.5. */
START_TEST(test_gradcheck_all_gates_and_routers) {
    const int gi = _i / 6, ri = _i / 2 % 3;
    FmMoeConfig cfg = small_config(GATES[gi], ROUTERS[ri]);
    Layer L;
    const int T = 7 + _i % 5;
    layer_build_away_from_ties(&L, &cfg, T, 100u * (unsigned)_i + 1u, GC_MARGIN);
    L.beta = _i % 2 ? 1.5f : 0.0f;
    char what[128];
    snprintf(what, sizeof what, "%s/%s/beta=%g", GATE_NAMES[gi], ROUTER_NAMES[ri], (double)L.beta);
    FmCompeteAux aux = layer_forward(&L);
    ck_assert_msg(aux.router > 1e-5f && fabsf(aux.diversity) > 1e-3f && aux.balance > 1e-3f,
                  "%s: losses too small to test (%g %g %g)", what, (double)aux.router, (double)aux.diversity,
                  (double)aux.balance);
    check_all_gradients(&L, GC_STEP, GC_TOL, what);
    layer_free(&L);
}
END_TEST

/* Each loss alone (dout = 0, one coefficient 1), so that no term hides behind the output's. */
START_TEST(test_gradcheck_each_loss_alone) {
    const int loss = _i % 3, gi = _i / 3;
    FmMoeConfig cfg = small_config(GATES[gi], ROUTERS[(_i + gi) % 3]);
    Layer L;
    layer_build_away_from_ties(&L, &cfg, 9, 7000u + 31u * (unsigned)_i, GC_MARGIN);
    memset(L.dout, 0, (size_t)L.T * cfg.D * sizeof(float));
    L.router_coef = loss == 0 ? 50.0f : 0.0f; /* L_R is small (squared differences of probabilities) */
    L.diversity_coef = loss == 1 ? 1.0f : 0.0f;
    L.balance_coef = loss == 2 ? 1.0f : 0.0f;
    L.beta = 0.7f;
    const char *names[3] = {"router", "diversity", "balance"};
    char what[128];
    snprintf(what, sizeof what, "%s only, %s/%s", names[loss], GATE_NAMES[gi], ROUTER_NAMES[(_i + gi) % 3]);
    layer_backward(&L);
    /* the loss's gradient is there: on the router for L_R, on the experts otherwise */
    const int id = loss == 0 ? L.moe.router_w[0] : L.moe.fc2_w;
    double norm = 0.0;
    const float *g = fm_params_grad(&L.params, id);
    for (size_t i = 0; i < L.params.tensors[id].count; i++)
        norm += (double)g[i] * g[i];
    ck_assert_msg(norm > 1e-8, "%s: no gradient", what);
    check_all_gradients(&L, GC_STEP, GC_TOL, what);
    layer_free(&L);
}
END_TEST

/* Dropout on the experts' hidden activations: drawn from the stream the layer is given, so
 * replaying the rng state repeats the masks, and the backward's recomputation of the winners'
 * activations draws the same masks as the forward. */
START_TEST(test_gradcheck_with_dropout) {
    FmMoeConfig cfg = small_config(FM_GATE_LAPLACE, FM_ROUTER_PER_MODALITY);
    cfg.dropout = 0.3f;
    Layer L;
    layer_build_away_from_ties(&L, &cfg, 9, 4242, GC_MARGIN);
    layer_forward(&L);
    float first[MAX_T * 6];
    memcpy(first, L.out, (size_t)L.T * cfg.D * sizeof(float));
    fm_rng_seed(&L.rng, 999);
    layer_forward(&L);
    ck_assert_int_ne(memcmp(first, L.out, (size_t)L.T * cfg.D * sizeof(float)), 0);
    check_all_gradients(&L, GC_STEP, GC_TOL, "dropout");
    layer_free(&L);
}
END_TEST

/* ---- PyTorch reference ---- */

static void set_tensor(FmParams *p, int id, const FmFixture *fx, const char *name) {
    const FmFixtureTensor *t = fm_fixture_get(fx, name, p->tensors[id].count);
    memcpy(fm_params_data(p, id), t->data, t->count * sizeof(float));
}

/* The largest magnitude in a tensor: tolerances are relative to the tensor's scale, so that the
 * router's gradients (which come from L_R alone and are small) are checked as tightly as the
 * experts'. */
static double max_abs(const float *v, size_t n) {
    double m = 0.0;
    for (size_t i = 0; i < n; i++)
        m = fmax(m, fabs((double)v[i]));
    return m;
}

/* The fixture holds float64 results; the layer runs in float32. Observed worst difference over
 * the 9 cases and every tensor: 1.0e-6 of the tensor's largest magnitude (a router gradient,
 * gaussian/per_modality); the losses agree to a few 1e-8 relative. */
#define REF_TOL 1e-5

static void assert_ref(const float *got, const float *want, size_t n, const char *what) {
    fm_assert_close(got, want, n, REF_TOL * fmax(max_abs(want, n), 1e-3), REF_TOL, what);
}

START_TEST(test_pytorch_reference) {
    const int gi = _i / 3, ri = _i % 3;
    FmFixture fx;
    fm_fixture_load(&fx, "tests/fixtures/compete_reference.txt");
    const int T = 10, D = 6;
    FmMoeConfig cfg = small_config(GATES[gi], ROUTERS[ri]);
    cfg.noisy = 0;
    FmMoe moe;
    FmParams params;
    FmMoeCache *cache;
    fm_params_init(&params);
    ck_assert_int_eq(fm_moe_declare(&moe, &cfg, &params, "moe", NULL), FM_OK);
    ck_assert_int_eq(fm_params_allocate(&params, 0, NULL), FM_OK);
    ck_assert_int_eq(fm_moe_cache_create_compete(&cache, &cfg, T, NULL), FM_OK);
    const int Er = moe.experts_per_router, K = cfg.K;
    char p[64], name[128], what[192];
    snprintf(p, sizeof p, "%s.%s.", GATE_NAMES[gi], ROUTER_NAMES[ri]);
#define FX(suffix, count)                                                                                    \
    (snprintf(name, sizeof name, "%s%s", p, suffix), fm_fixture_get(&fx, name, count)->data)
    set_tensor(&params, moe.fc1_w, &fx, "fc1_w");
    set_tensor(&params, moe.fc1_b, &fx, "fc1_b");
    set_tensor(&params, moe.fc2_w, &fx, "fc2_w");
    set_tensor(&params, moe.fc2_b, &fx, "fc2_b");
    for (int r = 0; r < moe.n_routers; r++) {
        snprintf(name, sizeof name, "%sw%d", p, r);
        set_tensor(&params, moe.router_w[r], &fx, name);
    }
    const float *x = FX("x", (size_t)T * D), *dout = FX("dout", (size_t)T * D);
    const float *modf = FX("modality", (size_t)T), beta = FX("beta", 1)[0];
    int modality[10];
    for (int t = 0; t < T; t++)
        modality[t] = (int)modf[t];
    float out[60], dx[60] = {0};
    FmCompeteAux aux;
    fm_moe_compete_forward(&moe, &params, cache, out, x, modality, T, 1, NULL, beta, &aux);
    fm_moe_compete_backward(&moe, &params, cache, dx, dout, 2.0f, 0.5f, 0.3f);
    FmCompeteView v;
    fm_moe_compete_view(cache, &v);
    snprintf(what, sizeof what, "%sresponse", p);
    assert_ref(v.response, FX("response", (size_t)T * Er), (size_t)T * Er, what);
    const float *win = FX("winners", (size_t)T * K);
    for (int i = 0; i < T * K; i++)
        ck_assert_msg(v.winners[i] == (int)win[i], "%swinners[%d]: %d, want %d", p, i, v.winners[i],
                      (int)win[i]);
    snprintf(what, sizeof what, "%sout", p);
    assert_ref(out, FX("out", (size_t)T * D), (size_t)T * D, what);
    const float got_losses[3] = {aux.router, aux.diversity, aux.balance};
    const float *want_losses = FX("losses", 3);
    const char *loss_names[3] = {"router", "diversity", "balance"};
    for (int i = 0; i < 3; i++) {
        snprintf(what, sizeof what, "%s%s loss", p, loss_names[i]);
        fm_assert_close(got_losses + i, want_losses + i, 1, REF_TOL * fabs(want_losses[i]), REF_TOL, what);
        ck_assert_msg(fabs(want_losses[i]) > 1e-3, "%s: too small to test", what);
    }
    snprintf(what, sizeof what, "%sdx", p);
    assert_ref(dx, FX("dx", (size_t)T * D), (size_t)T * D, what);
    char label[192];
    for (int r = 0; r < moe.n_routers; r++) {
        snprintf(what, sizeof what, "dw%d", r);
        snprintf(label, sizeof label, "%s%s", p, what);
        const size_t n = params.tensors[moe.router_w[r]].count;
        assert_ref(fm_params_grad(&params, moe.router_w[r]), FX(what, n), n, label);
    }
    const int ids[4] = {moe.fc1_w, moe.fc1_b, moe.fc2_w, moe.fc2_b};
    const char *names[4] = {"dfc1_w", "dfc1_b", "dfc2_w", "dfc2_b"};
    for (int i = 0; i < 4; i++) {
        const size_t n = params.tensors[ids[i]].count;
        snprintf(label, sizeof label, "%s%s", p, names[i]);
        assert_ref(fm_params_grad(&params, ids[i]), FX(names[i], n), n, label);
    }
#undef FX
    fm_moe_cache_free(cache);
    fm_params_free(&params);
    fm_fixture_free(&fx);
}
END_TEST

/* ---- behaviour ---- */

/* One expert's output on one token, computed here in double from the parameters. */
static void expert_in_double(double *o, const Layer *L, int e, const float *x) {
    const int D = L->cfg.D, H = L->cfg.hidden;
    const float *W1 = fm_params_data(&L->params, L->moe.fc1_w) + (size_t)e * H * D;
    const float *B1 = fm_params_data(&L->params, L->moe.fc1_b) + (size_t)e * H;
    const float *W2 = fm_params_data(&L->params, L->moe.fc2_w) + (size_t)e * D * H;
    const float *B2 = fm_params_data(&L->params, L->moe.fc2_b) + (size_t)e * D;
    double h[64];
    for (int j = 0; j < H; j++) {
        double a = B1[j];
        for (int d = 0; d < D; d++)
            a += (double)W1[j * D + d] * x[d];
        h[j] = 0.5 * a * (1.0 + erf(a / sqrt(2.0)));
    }
    for (int d = 0; d < D; d++) {
        double a = B2[d];
        for (int j = 0; j < H; j++)
            a += (double)W2[d * H + j] * h[j];
        o[d] = a;
    }
}

/* Every expert of a token's router ran on it; the winners are the top K by response, their
 * weights are s / sum s and sum to 1, and the output is the weighted sum of their outputs. The
 * routing view describes the winners. */
START_TEST(test_winners_weights_and_output) {
    for (int ri = 0; ri < 3; ri++) {
        FmMoeConfig cfg = small_config(FM_GATE_LAPLACE, ROUTERS[ri]);
        cfg.M = 3;
        cfg.E = 12;
        Layer L;
        layer_build(&L, &cfg, 20, 300 + (unsigned)ri);
        for (int t = 0; t < L.T; t++)
            L.modality[t] = (t * t + 1) % 3;
        layer_forward(&L);
        FmCompeteView v;
        fm_moe_compete_view(L.cache, &v);
        FmMoeRouting rv;
        fm_moe_routing(L.cache, &rv);
        ck_assert_int_eq(rv.competition, 1);
        ck_assert_int_eq(v.E_r, ri == 2 ? 4 : 12);
        const int K = v.K, Er = v.E_r, D = cfg.D;
        for (int t = 0; t < L.T; t++) {
            const float *s = v.response + (size_t)t * Er;
            const int base = ri == 2 ? L.modality[t] * Er : 0;
            double wsum = 0.0, ssum = 0.0, qsum = 0.0;
            for (int j = 0; j < Er; j++) {
                /* the dense outputs and the responses, against a plain double computation */
                double o[16], r = 0.0;
                expert_in_double(o, &L, base + j, L.x + (size_t)t * D);
                const float *got = fm_moe_compete_expert_output(L.cache, t, j);
                for (int d = 0; d < D; d++) {
                    /* float GEMMs against double: observed differences up to 1.2e-7 */
                    ck_assert_double_eq_tol(got[d], o[d], 1e-5);
                    r += log1p(exp(o[d])) / D;
                }
                ck_assert_double_eq_tol(s[j], r, 1e-6);
                qsum += v.target[(size_t)t * Er + j];
            }
            ck_assert_double_eq_tol(qsum, 1.0, 1e-6);
            for (int k = 0; k < K; k++)
                ssum += s[v.winners[t * K + k]];
            for (int k = 0; k < K; k++) {
                const int e = v.winners[t * K + k];
                /* largest first, and no loser beats a winner */
                if (k > 0) ck_assert(s[e] <= s[v.winners[t * K + k - 1]]);
                for (int j = 0; j < Er; j++) {
                    int won = 0;
                    for (int kk = 0; kk < K; kk++)
                        won |= v.winners[t * K + kk] == j;
                    if (!won) ck_assert(s[j] <= s[e]);
                }
                ck_assert_double_eq_tol(v.weights[t * K + k], s[e] / ssum, 1e-6);
                wsum += v.weights[t * K + k];
                ck_assert_int_eq(rv.selected[t * K + k], base + e);
                ck_assert_float_eq(rv.gates[t * K + k], v.weights[t * K + k]);
            }
            ck_assert_double_eq_tol(wsum, 1.0, 1e-6);
            for (int d = 0; d < D; d++) {
                double y = 0.0;
                for (int k = 0; k < K; k++)
                    y += (double)v.weights[t * K + k] *
                         fm_moe_compete_expert_output(L.cache, t, v.winners[t * K + k])[d];
                ck_assert_double_eq_tol(L.out[t * D + d], y, 1e-6);
            }
        }
        /* counts: the winners, K per token */
        int total = 0;
        for (int i = 0; i < cfg.M * cfg.E; i++)
            total += rv.counts[i];
        ck_assert_int_eq(total, L.T * K);
        layer_free(&L);
    }
}
END_TEST

/* Ties in the responses go to the lowest expert id (identical experts give identical
 * responses). */
START_TEST(test_response_ties_lowest_id) {
    FmMoeConfig cfg = small_config(FM_GATE_SOFTMAX, FM_ROUTER_JOINT);
    Layer L;
    layer_build(&L, &cfg, 5, 11);
    /* experts 0..7 all copies of expert 5 */
    const int ids[4] = {L.moe.fc1_w, L.moe.fc1_b, L.moe.fc2_w, L.moe.fc2_b};
    for (int i = 0; i < 4; i++) {
        float *p = fm_params_data(&L.params, ids[i]);
        const size_t per = L.params.tensors[ids[i]].count / (size_t)cfg.E;
        for (int e = 0; e < cfg.E; e++)
            memcpy(p + e * per, p + 5 * per, per * sizeof(float));
    }
    layer_forward(&L);
    FmCompeteView v;
    fm_moe_compete_view(L.cache, &v);
    for (int t = 0; t < L.T; t++)
        for (int k = 0; k < cfg.K; k++) {
            ck_assert_int_eq(v.winners[t * cfg.K + k], k);
            ck_assert_float_eq_tol(v.weights[t * cfg.K + k], 1.0f / 3.0f, 1e-7f);
        }
    layer_free(&L);
}
END_TEST

/* L_R is 0 when the router's softmax equals softmax(s): with the softmax gate and tokens
 * x_t = a_t u_t (u_t the t-th unit vector), router weights w_e[t] = s_te / a_t give logits
 * l_te = s_te exactly (up to float rounding). The router then gets no gradient. */
START_TEST(test_router_loss_zero_when_router_matches) {
    FmMoeConfig cfg = small_config(FM_GATE_SOFTMAX, FM_ROUTER_JOINT);
    Layer L;
    layer_build(&L, &cfg, 6, 21);
    for (int t = 0; t < L.T; t++)
        for (int d = 0; d < cfg.D; d++)
            L.x[t * cfg.D + d] = d == t ? 0.5f + 0.25f * (float)t : 0.0f;
    layer_forward(&L);
    FmCompeteView v;
    fm_moe_compete_view(L.cache, &v);
    float *w = fm_params_data(&L.params, L.moe.router_w[0]);
    for (int e = 0; e < cfg.E; e++)
        for (int t = 0; t < L.T; t++)
            w[e * cfg.D + t] = v.response[t * cfg.E + e] / L.x[t * cfg.D + t];
    L.beta = 2.0f;
    FmCompeteAux aux = layer_forward(&L);
    /* observed 2.6e-16 (float rounding of a_t (s / a_t)) */
    ck_assert_double_lt(aux.router, 1e-12);
    L.router_coef = 1.0f;
    L.diversity_coef = L.balance_coef = 0.0f;
    memset(L.dout, 0, (size_t)L.T * cfg.D * sizeof(float));
    layer_backward(&L);
    const float *g = fm_params_grad(&L.params, L.moe.router_w[0]);
    ck_assert_double_lt(max_abs(g, (size_t)cfg.E * cfg.D), 1e-7);
    /* a different router is penalised */
    w[3] += 0.5f;
    aux = layer_forward(&L);
    ck_assert_double_gt(aux.router, 1e-6);
    layer_free(&L);
}
END_TEST

/* The three losses by hand. */
START_TEST(test_losses_by_hand) {
    /* router loss: T = 1, Er = 3, K = 1, winner 2; (p - q) = (0.1, -0.3, 0.2);
     * beta 0: (0.01 + 0.09 + 0.04) / 3;  beta 1: (0.01 + 0.09 + 2 * 0.04) / 3 */
    const float p[3] = {0.3f, 0.2f, 0.5f}, q[3] = {0.2f, 0.5f, 0.3f};
    const int sel[1] = {2};
    ck_assert_double_eq_tol(fm_moe_compete_router_loss(p, q, sel, 1, 3, 1, 0.0f), 0.14 / 3, 1e-7);
    ck_assert_double_eq_tol(fm_moe_compete_router_loss(p, q, sel, 1, 3, 1, 1.0f), 0.18 / 3, 1e-7);
    float dp[3];
    fm_moe_compete_router_loss_backward(dp, p, q, sel, 1, 3, 1, 1.0f, 3.0f);
    /* coef 2 weight (p - q) / (T Er) = 2 weight (p - q) for coef 3 */
    ck_assert_float_eq_tol(dp[0], 0.2f, 1e-6f);
    ck_assert_float_eq_tol(dp[1], -0.6f, 1e-6f);
    ck_assert_float_eq_tol(dp[2], 0.8f, 1e-6f);
    ck_assert_double_eq(fm_moe_compete_router_loss(p, q, sel, 0, 3, 1, 0.0f), 0.0);
    /* diversity: u1, u2, u1 + u2: cosines 0, 1/sqrt 2, 1/sqrt 2, mean sqrt(2) / 3 */
    const float a[3] = {1, 0, 0}, b[3] = {0, 1, 0}, c[3] = {1, 1, 0}, z[3] = {0, 0, 0};
    const float *o[3] = {a, b, c};
    float norm[3], cosine[9];
    ck_assert_double_eq_tol(fm_moe_compete_diversity(o, 3, 3, norm, cosine), sqrt(2.0) / 3.0, 1e-7);
    ck_assert_float_eq_tol(norm[2], (float)sqrt(2.0), 1e-7f);
    ck_assert_double_eq(fm_moe_compete_diversity(o, 1, 3, norm, cosine), 0.0); /* K = 1 */
    /* a zero output has cosine 0 with anything, not NaN */
    ck_assert_double_eq(fm_moe_compete_cosine(z, a, 3), 0.0);
    /* the response: softplus(0) = log 2 */
    float scratch[3];
    ck_assert_float_eq_tol(fm_moe_compete_response(z, 3, scratch), (float)log(2.0), 1e-7f);
}
END_TEST

/* The balance loss on the competition assignment by hand: 4 tokens, K = 1, Er = 4 with expert
 * 0 copied to expert 1 .. 3 except that expert 0's output bias is raised, so expert 0 wins
 * every token: importance = load = (4, 0, 0, 0), each CV^2 = Var / mean^2 = 3 / 1 = 3. */
START_TEST(test_balance_by_hand) {
    FmMoeConfig cfg = small_config(FM_GATE_LAPLACE, FM_ROUTER_JOINT);
    cfg.E = 4;
    cfg.K = 1;
    Layer L;
    layer_build(&L, &cfg, 4, 5);
    const int ids[4] = {L.moe.fc1_w, L.moe.fc1_b, L.moe.fc2_w, L.moe.fc2_b};
    for (int i = 0; i < 4; i++) {
        float *p = fm_params_data(&L.params, ids[i]);
        const size_t per = L.params.tensors[ids[i]].count / 4;
        for (int e = 1; e < 4; e++)
            memcpy(p + e * per, p, per * sizeof(float));
    }
    float *b2 = fm_params_data(&L.params, L.moe.fc2_b);
    for (int d = 0; d < cfg.D; d++)
        b2[d] += 1.0f;
    FmCompeteAux aux = layer_forward(&L);
    ck_assert_float_eq_tol(aux.balance, 6.0f, 1e-5f);
    ck_assert_float_eq(aux.diversity, 0.0f); /* K = 1 */
    FmMoeRouting rv;
    fm_moe_routing(L.cache, &rv);
    ck_assert_double_eq(rv.load[0], 4.0);
    ck_assert_double_eq_tol(rv.importance[0], 4.0, 1e-6);
    layer_free(&L);
}
END_TEST

/* A competition-capable cache changes nothing in normal use: fm_moe_forward and fm_moe_backward
 * give the same bits as on an ordinary cache, also right after a competition step. */
START_TEST(test_normal_steps_unchanged) {
    FmMoeConfig cfg = small_config(FM_GATE_LAPLACE, FM_ROUTER_PER_MODALITY);
    cfg.dropout = 0.2f;
    Layer L;
    layer_build(&L, &cfg, 12, 8);
    FmMoeCache *plain;
    ck_assert_int_eq(fm_moe_cache_create(&plain, &cfg, L.T, NULL), FM_OK);
    ck_assert_int_eq(fm_moe_cache_can_compete(plain), 0);
    ck_assert_int_eq(fm_moe_cache_can_compete(L.cache), 1);
    const size_t n = (size_t)L.T * cfg.D, np = fm_params_count(&L.params);
    float *out_a = malloc(n * sizeof(float)), *dx_a = calloc(n, sizeof(float)),
          *g_a = malloc(np * sizeof(float));
    for (int training = 0; training < 2; training++) {
        FmRng r1 = L.rng, r2 = L.rng;
        FmMoeAux a1, a2;
        fm_params_zero_grad(&L.params);
        memset(dx_a, 0, n * sizeof(float));
        fm_moe_forward(&L.moe, &L.params, plain, out_a, L.x, L.modality, L.T, training, &r1, &a1);
        fm_moe_backward(&L.moe, &L.params, plain, dx_a, L.dout, 0.01f, 0.02f);
        memcpy(g_a, L.params.grad, np * sizeof(float));
        /* a competition step first, then the same normal step on the competition-capable cache */
        layer_backward(&L);
        fm_params_zero_grad(&L.params);
        memset(L.dx, 0, n * sizeof(float));
        fm_moe_forward(&L.moe, &L.params, L.cache, L.out, L.x, L.modality, L.T, training, &r2, &a2);
        FmMoeRouting rv;
        fm_moe_routing(L.cache, &rv);
        ck_assert_int_eq(rv.competition, 0);
        fm_moe_backward(&L.moe, &L.params, L.cache, L.dx, L.dout, 0.01f, 0.02f);
        ck_assert_mem_eq(out_a, L.out, n * sizeof(float));
        ck_assert_mem_eq(dx_a, L.dx, n * sizeof(float));
        ck_assert_mem_eq(g_a, L.params.grad, np * sizeof(float));
        ck_assert_float_eq(a1.balance, a2.balance);
    }
    free(out_a);
    free(dx_a);
    free(g_a);
    fm_moe_cache_free(plain);
    layer_free(&L);
}
END_TEST

/* With dropout, a (token, expert) pair sees the same mask in a competition forward as in a
 * routed forward from the same rng state: with K = E every pair is routed, and the routed
 * layer's expert rows equal the competition's dense outputs. The caller's rng advances by one
 * draw, as in fm_moe_forward. */
START_TEST(test_dropout_masks_shared_with_routed_forward) {
    FmMoeConfig cfg = small_config(FM_GATE_GAUSSIAN, FM_ROUTER_JOINT);
    cfg.E = 4;
    cfg.K = 4;
    cfg.dropout = 0.4f;
    cfg.noisy = 0;
    Layer L;
    layer_build(&L, &cfg, 10, 3);
    FmMoeCache *routed;
    ck_assert_int_eq(fm_moe_cache_create(&routed, &cfg, L.T, NULL), FM_OK);
    FmRng r1 = L.rng, r2 = L.rng, before = L.rng;
    float out[60];
    fm_moe_forward(&L.moe, &L.params, routed, out, L.x, L.modality, L.T, 1, &r1, NULL);
    fm_moe_compete_forward(&L.moe, &L.params, L.cache, L.out, L.x, L.modality, L.T, 1, &r2, 0.0f, NULL);
    ck_assert_mem_eq(&r1, &r2, sizeof r1);
    ck_assert_int_ne(memcmp(&before, &r2, sizeof before), 0);
    int dropped_differs = 0;
    for (int t = 0; t < L.T; t++)
        for (int k = 0; k < cfg.K; k++) {
            const int pair = t * cfg.K + k, e = routed->selected[pair];
            const float *o_routed = routed->eo + (size_t)routed->row_of[pair] * cfg.D;
            const float *o_compete = fm_moe_compete_expert_output(L.cache, t, e);
            /* same GEMM shapes (every expert on all 10 tokens): observed identical */
            fm_assert_close(o_compete, o_routed, (size_t)cfg.D, 1e-6, 1e-6, "dense vs routed expert output");
            double o[16];
            expert_in_double(o, &L, e, L.x + (size_t)t * cfg.D);
            for (int d = 0; d < cfg.D; d++)
                dropped_differs += fabs(o[d] - o_compete[d]) > 1e-4;
        }
    ck_assert_int_gt(dropped_differs, 0); /* the masks did drop something */
    fm_moe_cache_free(routed);
    layer_free(&L);
}
END_TEST

/* Forward and backward allocate nothing; an empty batch is allowed and has zero losses. */
START_TEST(test_no_allocation_and_empty_batch) {
    FmMoeConfig cfg = small_config(FM_GATE_LAPLACE, FM_ROUTER_DISJOINT);
    cfg.dropout = 0.2f;
    Layer L;
    layer_build(&L, &cfg, 12, 9);
    fm_alloc_fail_reset();
    layer_backward(&L);
    ck_assert_int_eq(fm_alloc_calls(), 0);
    FmMoeProbe probe;
    fm_moe_diag_probe(&L.moe, &L.params, L.cache, L.out, L.x, L.modality, L.T, &probe);
    ck_assert_int_eq(fm_alloc_calls(), 0);
    L.T = 0;
    FmCompeteAux aux = layer_forward(&L);
    fm_moe_compete_backward(&L.moe, &L.params, L.cache, L.dx, L.dout, 1.0f, 1.0f, 1.0f);
    ck_assert_float_eq(aux.router, 0.0f);
    ck_assert_float_eq(aux.diversity, 0.0f);
    ck_assert_float_eq(aux.balance, 0.0f);
    ck_assert_int_eq(fm_alloc_calls(), 0);
    L.T = 12;
    layer_free(&L);
}
END_TEST

START_TEST(test_alloc_failure) {
    for (int dropout = 0; dropout < 2; dropout++) {
        FmMoeConfig cfg = small_config(FM_GATE_LAPLACE, FM_ROUTER_PER_MODALITY);
        cfg.dropout = dropout ? 0.1f : 0.0f;
        FmError err;
        fm_alloc_fail_reset();
        FmMoeCache *cache;
        ck_assert_int_eq(fm_moe_cache_create_compete(&cache, &cfg, 16, &err), FM_OK);
        const long calls = fm_alloc_calls();
        fm_moe_cache_free(cache);
        fm_alloc_fail_reset();
        ck_assert_int_eq(fm_moe_cache_create(&cache, &cfg, 16, &err), FM_OK);
        const long plain_calls = fm_alloc_calls();
        fm_moe_cache_free(cache);
        ck_assert_int_eq(calls, plain_calls + 11); /* the competition buffers */
        for (long n = 1; n <= calls; n++) {
            fm_alloc_fail_after(n);
            FmStatus st = fm_moe_cache_create_compete(&cache, &cfg, 16, &err);
            fm_alloc_fail_reset();
            ck_assert_int_eq(st, FM_ERR_NOMEM);
            ck_assert_ptr_null(cache);
        }
    }
}
END_TEST

/* ---- schedule ---- */

START_TEST(test_schedule_warmup) {
    FmCompeteSchedule s;
    ck_assert_int_eq(fm_compete_schedule_init(&s, 0.05, 1.0, 3, 1000, 7, NULL), FM_OK);
    ck_assert_int_eq(s.warmup_steps, 50);
    uint8_t mask[3];
    for (long step = 0; step < 50; step++) {
        ck_assert_int_eq(fm_compete_schedule_draw(&s, step, 3, mask), 0);
        ck_assert(!mask[0] && !mask[1] && !mask[2]);
    }
    /* omega = 1: every layer competes from the first step after the warm-up */
    ck_assert_int_eq(fm_compete_schedule_draw(&s, 50, 3, mask), 3);
    ck_assert(mask[0] && mask[1] && mask[2]);
    /* rounding: 0.05 * 30 = 1.5 steps of warm-up round up to 2; 0 gives none */
    ck_assert_int_eq(fm_compete_schedule_init(&s, 0.05, 1.0, 3, 30, 7, NULL), FM_OK);
    ck_assert_int_eq(s.warmup_steps, 2);
    ck_assert_int_eq(fm_compete_schedule_init(&s, 0.0, 1.0, 3, 30, 7, NULL), FM_OK);
    ck_assert_int_eq(fm_compete_schedule_draw(&s, 0, 3, mask), 3);
    /* omega = 0: never */
    ck_assert_int_eq(fm_compete_schedule_init(&s, 0.0, 0.0, 3, 30, 7, NULL), FM_OK);
    for (long step = 0; step < 1000; step++)
        ck_assert_int_eq(fm_compete_schedule_draw(&s, step, 3, mask), 0);
}
END_TEST

/* The competition rate per layer is omega and layers draw independently (no cap reached):
 * over N = 40000 steps each layer's count is Binomial(N, omega), sd sqrt(N omega (1 - omega))
 * = 43.6 around 2000 for omega = 0.05; the test allows 5 sd (a correct schedule fails with
 * probability below 1e-6 per check; the seed is fixed, so the outcome is too). Joint
 * competition of layers 0 and 1 has rate omega^2 (mean 5, sd 2.2 over N): allowed 5 sd. */
START_TEST(test_schedule_rate) {
    const long N = 40000;
    const double omega = 0.05;
    FmCompeteSchedule s;
    ck_assert_int_eq(fm_compete_schedule_init(&s, 0.0, omega, 4, N, 12345, NULL), FM_OK);
    long count[4] = {0}, both = 0;
    uint8_t mask[4];
    for (long step = 0; step < N; step++) {
        fm_compete_schedule_draw(&s, step, 4, mask);
        for (int l = 0; l < 4; l++)
            count[l] += mask[l];
        both += mask[0] && mask[1];
    }
    const double sd = sqrt(N * omega * (1 - omega)), sd2 = sqrt(N * omega * omega * (1 - omega * omega));
    for (int l = 0; l < 4; l++)
        ck_assert_msg(fabs(count[l] - N * omega) < 5 * sd, "layer %d: %ld competitions, expected %g +- %g", l,
                      count[l], N * omega, 5 * sd);
    ck_assert_msg(fabs(both - N * omega * omega) < 5 * sd2, "layers 0 and 1 together: %ld, expected %g", both,
                  N * omega * omega);
}
END_TEST

/* The cap: 8 layers, omega 0.5, at most 3 per step. The number per step is min(X, 3) with
 * X ~ Binomial(8, 1/2), mean 721 / 256 = 2.81640625 (from the binomial probabilities below); over 20000
 * steps the mean is checked within 5 sd of the per-step sd / sqrt(N). The kept subset is
 * uniform, so each layer's rate is that mean / 8 (checked within 5 sd of its binomial
 * spread). */
START_TEST(test_schedule_max_layers) {
    const long N = 20000;
    FmCompeteSchedule s;
    ck_assert_int_eq(fm_compete_schedule_init(&s, 0.0, 0.5, 3, N, 99, NULL), FM_OK);
    double pmf[9], mean = 0.0, var = 0.0;
    for (int k = 0; k <= 8; k++) {
        double c = 1.0;
        for (int j = 0; j < k; j++)
            c = c * (8 - j) / (j + 1);
        pmf[k] = c / 256.0;
    }
    for (int k = 0; k <= 8; k++)
        mean += pmf[k] * (k < 3 ? k : 3);
    for (int k = 0; k <= 8; k++)
        var += pmf[k] * ((k < 3 ? k : 3) - mean) * ((k < 3 ? k : 3) - mean);
    ck_assert_double_eq_tol(mean, 721.0 / 256.0, 1e-12);
    long total = 0, per[8] = {0};
    uint8_t mask[8];
    for (long step = 0; step < N; step++) {
        const int n = fm_compete_schedule_draw(&s, step, 8, mask);
        int m = 0;
        for (int l = 0; l < 8; l++) {
            m += mask[l];
            per[l] += mask[l];
        }
        ck_assert_int_eq(m, n);
        ck_assert_int_le(n, 3);
        total += n;
    }
    ck_assert_msg(fabs((double)total / N - mean) < 5 * sqrt(var / N), "mean %g per step, expected %g",
                  (double)total / N, mean);
    const double p = mean / 8, sd = sqrt(N * p * (1 - p));
    for (int l = 0; l < 8; l++)
        ck_assert_msg(fabs(per[l] - N * p) < 5 * sd, "layer %d kept %ld times, expected %g +- %g", l, per[l],
                      N * p, 5 * sd);
}
END_TEST

/* Deterministic: a step's mask depends on the seed and the step only (not on which steps were
 * drawn before, nor in what order); another seed gives other masks. */
START_TEST(test_schedule_deterministic) {
    FmCompeteSchedule a, b, c;
    ck_assert_int_eq(fm_compete_schedule_init(&a, 0.1, 0.3, 2, 500, 42, NULL), FM_OK);
    ck_assert_int_eq(fm_compete_schedule_init(&b, 0.1, 0.3, 2, 500, 42, NULL), FM_OK);
    ck_assert_int_eq(fm_compete_schedule_init(&c, 0.1, 0.3, 2, 500, 43, NULL), FM_OK);
    uint8_t forward[500][5], ma[5], mc[5];
    int differ = 0;
    for (long step = 0; step < 500; step++)
        fm_compete_schedule_draw(&a, step, 5, forward[step]);
    for (long step = 499; step >= 0; step--) {
        fm_compete_schedule_draw(&b, step, 5, ma);
        ck_assert_mem_eq(ma, forward[step], 5);
        fm_compete_schedule_draw(&c, step, 5, mc);
        differ += memcmp(ma, mc, 5) != 0;
    }
    ck_assert_int_gt(differ, 100);
}
END_TEST

START_TEST(test_schedule_bad_config) {
    FmCompeteSchedule s;
    FmError err;
    ck_assert_int_eq(fm_compete_schedule_init(&s, -0.1, 0.05, 3, 10, 1, &err), FM_ERR_CONFIG);
    ck_assert_str_eq(err.where, "competition.warmup_fraction");
    ck_assert_int_eq(fm_compete_schedule_init(&s, 0.05, 1.5, 3, 10, 1, &err), FM_ERR_CONFIG);
    ck_assert_str_eq(err.where, "competition.omega");
    ck_assert_int_eq(fm_compete_schedule_init(&s, 0.05, NAN, 3, 10, 1, &err), FM_ERR_CONFIG);
    ck_assert_int_eq(fm_compete_schedule_init(&s, 0.05, 0.05, 0, 10, 1, &err), FM_ERR_CONFIG);
    ck_assert_str_eq(err.where, "competition.max_layers");
    ck_assert_int_eq(fm_compete_schedule_init(&s, 0.05, 0.05, 3, 0, 1, &err), FM_ERR_ARG);
}
END_TEST

/* ---- diagnostics ---- */

START_TEST(test_diag_utilisation_and_dead) {
    const long long even[4] = {5, 5, 5, 5}, one[4] = {0, 20, 0, 0}, mixed[4] = {2, 1, 1, 0}, none[4] = {0};
    ck_assert_double_eq_tol(fm_moe_diag_utilisation_entropy(even, 4), 1.0, 1e-12);
    ck_assert_double_eq(fm_moe_diag_utilisation_entropy(one, 4), 0.0);
    /* p = (1/2, 1/4, 1/4, 0): H = 1.5 log 2, over log 4 = 0.75 */
    ck_assert_double_eq_tol(fm_moe_diag_utilisation_entropy(mixed, 4), 0.75, 1e-12);
    ck_assert(isnan(fm_moe_diag_utilisation_entropy(none, 4)));
    ck_assert_double_eq(fm_moe_diag_utilisation_entropy(even, 1), 1.0);
    ck_assert_int_eq(fm_moe_diag_dead_experts(even, 4), 0);
    ck_assert_int_eq(fm_moe_diag_dead_experts(one, 4), 3);
    ck_assert_int_eq(fm_moe_diag_dead_experts(mixed, 4), 1);
    ck_assert_int_eq(fm_moe_diag_dead_experts(none, 4), 4);
}
END_TEST

START_TEST(test_diag_cosine_and_agreement) {
    const float a[3] = {1, 0, 0}, b[3] = {0, 2, 0}, c[3] = {3, 3, 0}, d[3] = {-1, 0, 0};
    const float *rows[4] = {a, b, c, d};
    /* pairs: ab 0, ac 1/sqrt2, bc 1/sqrt2, ad -1, bd 0, cd -1/sqrt2: sum -1 + 1/sqrt2, over 6 */
    ck_assert_double_eq_tol(fm_moe_diag_mean_pairwise_cosine(rows, 4, 3), (-1.0 + 1.0 / sqrt(2.0)) / 6.0,
                            1e-7);
    ck_assert_double_eq_tol(fm_moe_diag_mean_pairwise_cosine(rows, 2, 3), 0.0, 1e-12);
    ck_assert(isnan(fm_moe_diag_mean_pairwise_cosine(rows, 1, 3)));
    /* token 0: {0, 1} vs {1, 2}: 1 of 2; token 1: {3, 0} vs {0, 3}: 2 of 2; mean 0.75 */
    const int r[4] = {0, 1, 3, 0}, s[4] = {1, 2, 0, 3};
    ck_assert_double_eq(fm_moe_diag_topk_agreement(r, s, 2, 2), 0.75);
    ck_assert_double_eq(fm_moe_diag_topk_agreement(r, s, 1, 2), 0.5);
    ck_assert(isnan(fm_moe_diag_topk_agreement(r, s, 0, 2)));
}
END_TEST

/* The probe on layers whose answers are known: identical experts have similarity 1; a softmax
 * router built to equal the responses (as in test_router_loss_zero_when_router_matches) agrees
 * fully; usage counts accumulate over forwards. */
START_TEST(test_diag_probe) {
    FmMoeConfig cfg = small_config(FM_GATE_SOFTMAX, FM_ROUTER_JOINT);
    Layer L;
    layer_build(&L, &cfg, 6, 41);
    for (int t = 0; t < L.T; t++)
        for (int d = 0; d < cfg.D; d++)
            L.x[t * cfg.D + d] = d == t ? 0.6f + 0.3f * (float)t : 0.0f;
    FmMoeProbe probe;
    fm_moe_diag_probe(&L.moe, &L.params, L.cache, L.out, L.x, NULL, L.T, &probe);
    ck_assert(probe.similarity > -1.0 && probe.similarity < 0.99);
    ck_assert(probe.agreement >= 0.0 && probe.agreement <= 1.0);
    FmCompeteView v;
    fm_moe_compete_view(L.cache, &v);
    float *w = fm_params_data(&L.params, L.moe.router_w[0]);
    for (int e = 0; e < cfg.E; e++)
        for (int t = 0; t < L.T; t++)
            w[e * cfg.D + t] = v.response[t * cfg.E + e] / L.x[t * cfg.D + t];
    fm_moe_diag_probe(&L.moe, &L.params, L.cache, L.out, L.x, NULL, L.T, &probe);
    ck_assert_double_eq(probe.agreement, 1.0);
    /* the router's top K is not the competition's: agreement 1/3 per token when the router
     * prefers the three experts the competition ranks lowest */
    for (int e = 0; e < cfg.E; e++)
        for (int t = 0; t < L.T; t++)
            w[e * cfg.D + t] = -w[e * cfg.D + t];
    fm_moe_diag_probe(&L.moe, &L.params, L.cache, L.out, L.x, NULL, L.T, &probe);
    ck_assert_double_eq(probe.agreement, 0.0); /* 8 experts, K = 3: bottom 3 and top 3 are disjoint */
    const int ids[4] = {L.moe.fc1_w, L.moe.fc1_b, L.moe.fc2_w, L.moe.fc2_b};
    for (int i = 0; i < 4; i++) {
        float *p = fm_params_data(&L.params, ids[i]);
        const size_t per = L.params.tensors[ids[i]].count / (size_t)cfg.E;
        for (int e = 1; e < cfg.E; e++)
            memcpy(p + e * per, p, per * sizeof(float));
    }
    fm_moe_diag_probe(&L.moe, &L.params, L.cache, L.out, L.x, NULL, L.T, &probe);
    ck_assert_double_eq_tol(probe.similarity, 1.0, 1e-6);
    /* usage: two routed forwards of 6 tokens, K = 3 each */
    FmMoeUsage u;
    fm_moe_usage_reset(&u, cfg.E);
    for (int i = 0; i < 2; i++) {
        fm_moe_forward(&L.moe, &L.params, L.cache, L.out, L.x, NULL, L.T, 0, NULL, NULL);
        fm_moe_usage_add(&u, &L.moe, L.cache);
    }
    long long total = 0;
    for (int e = 0; e < cfg.E; e++)
        total += u.counts[e];
    ck_assert_int_eq(total, 2 * L.T * cfg.K);
    layer_free(&L);
}
END_TEST

/* ---- the model ---- */

/* A small model (tests/support/model_support.h) on a competition-capable workspace with layer 0
 * of 2 competing. */
typedef struct {
    FmModel *m;
    FmModelWorkspace *ws;
    FmTestBatch tb;
    uint64_t seed;
    int counts[FM_MODEL_MAX_LAYERS][FM_MODEL_MAX_MODALITIES * 16]; /* expert counts at the checked point */
} ModelCtx;

static void model_setup(ModelCtx *c, FmGate gate, FmRouter router, const FmCompeteSettings *cs,
                        uint64_t seed) {
    memset(c, 0, sizeof *c);
    FmModelConfig cfg;
    fm_test_small_config(&cfg, 0);
    cfg.gate = gate;
    cfg.router = router;
    cfg.E = router == FM_ROUTER_DISJOINT ? 9 : 6; /* disjoint: 3 experts per modality, K = 2 */
    cfg.balance_coef = 0.3f;
    cfg.entropy_coef = 0.3f;
    FmError err;
    ck_assert_msg(fm_model_create(&c->m, &cfg, 0, &err) == FM_OK, "%s", err.message);
    fm_model_init(c->m, seed);
    fm_test_small_batch(&c->tb, &cfg, seed + 1);
    FmModelShape shape = {.B = c->tb.batch.B};
    for (int i = 0; i < cfg.M; i++)
        shape.max_L[i] = c->tb.mod[i].max_L;
    ck_assert_msg(fm_model_workspace_create_compete(&c->ws, c->m, &shape, &err) == FM_OK, "%s", err.message);
    const uint8_t mask[2] = {1, 0};
    ck_assert_int_eq(fm_model_set_competition(c->ws, c->m, mask, cs, &err), FM_OK);
    c->seed = seed + 2;
}

static void model_free(ModelCtx *c) {
    fm_model_workspace_free(c->ws);
    fm_model_free(c->m);
    fm_test_batch_free(&c->tb);
}

static double model_total(void *ctx) {
    ModelCtx *c = ctx;
    FmRng rng;
    fm_rng_seed(&rng, c->seed);
    FmModelLoss loss;
    FmError err;
    ck_assert_msg(fm_model_forward(c->m, c->ws, &c->tb.batch, 1, &rng, &loss, &err) == FM_OK, "%s",
                  err.message);
    return loss.total;
}

/* Every token of every layer went to the same experts (the winners, on the competing layer) as
 * at the checked point. */
static int model_same_routing(void *ctx) {
    ModelCtx *c = ctx;
    const FmModelConfig *k = &c->m->cfg;
    for (int l = 0; l < k->layers; l++)
        if (memcmp(fm_model_expert_counts(c->ws, l), c->counts[l], (size_t)k->M * k->E * sizeof(int)) != 0)
            return 0;
    return 1;
}

static void model_gradients(ModelCtx *c) {
    const FmModelConfig *k = &c->m->cfg;
    model_total(c);
    for (int l = 0; l < k->layers; l++)
        memcpy(c->counts[l], fm_model_expert_counts(c->ws, l), (size_t)k->M * k->E * sizeof(int));
    fm_params_zero_grad(&c->m->params);
    fm_model_backward(c->m, c->ws);
}

/* The whole model with its first layer competing, by central differences, with the reference
 * GEMM and the model suite's piecewise checker and step (1e-3, floor 1e-2; see
 * tests/test_model.c). First every parameter with the router loss off (its stop-gradient target
 * depends on the expert outputs, which central differences would differentiate through), the
 * diversity and competition-balance losses on; then the competing layer's router alone with
 * the router loss on: its target does not depend on those weights, so the check is exact. */
START_TEST(test_model_gradcheck_with_competition) {
    const FmGate gates[3] = {FM_GATE_LAPLACE, FM_GATE_GAUSSIAN, FM_GATE_SOFTMAX};
    const FmRouter routers[3] = {FM_ROUTER_JOINT, FM_ROUTER_PER_MODALITY, FM_ROUTER_DISJOINT};
    FmCompeteSettings cs = {
        .router_coef = 0.0f, .diversity_coef = 0.5f, .balance_coef = 0.3f, .winner_weight = 1.0f};
    fm_gemm_use_reference(1);
    ModelCtx c;
    model_setup(&c, gates[_i], routers[_i], &cs, 900 + (uint64_t)_i);
    model_gradients(&c);
    FmRng rng;
    fm_rng_seed(&rng, c.seed);
    FmModelLoss loss;
    ck_assert_int_eq(fm_model_forward(c.m, c.ws, &c.tb.batch, 1, &rng, &loss, NULL), FM_OK);
    ck_assert_int_eq(loss.competed, 1);
    ck_assert(loss.compete_diversity != 0.0 && loss.compete_balance > 1e-3 && loss.compete_router > 0.0);
    /* observed worst relative errors at step h, per case: 9.8e-3 (24 of 3,323 elements agree
     * only at a smaller step: ReLU of the UTDE gate and column maxima, as in the model suite),
     * 2.1e-2, 1.0e-2; none changed routing. The router alone: 8.4e-5, 1.7e-3, 2.0e-3. */
    fm_test_gradcheck_piecewise(&c.m->params, "", model_total, model_same_routing, &c, 1e-3, 8e-2, 1e-2,
                                0.02);
    cs.router_coef = 5.0f;
    ck_assert_int_eq(fm_model_set_competition(c.ws, c.m, (const uint8_t[2]){1, 0}, &cs, NULL), FM_OK);
    model_gradients(&c);
    const float *g = fm_params_grad(&c.m->params, c.m->layer[0].moe.router_w[0]);
    ck_assert_double_gt(max_abs(g, (size_t)c.m->layer[0].moe.experts_per_router * c.m->cfg.D), 1e-5);
    fm_test_gradcheck_piecewise(&c.m->params, "fusion.0.moe.router", model_total, model_same_routing, &c,
                                1e-3, 8e-2, 1e-2, 0.02);
    fm_gemm_use_reference(0);
    model_free(&c);
}
END_TEST

/* Without a mask, or at evaluation, a competition-capable workspace computes exactly what an
 * ordinary one does; with a mask, the loss adds the weighted competition losses of the competing
 * layers in place of their balance and entropy terms. */
START_TEST(test_model_competition_switch) {
    ModelCtx c;
    FmCompeteSettings cs = {
        .router_coef = 0.7f, .diversity_coef = 0.2f, .balance_coef = 0.1f, .winner_weight = 0.0f};
    model_setup(&c, FM_GATE_LAPLACE, FM_ROUTER_PER_MODALITY, &cs, 77);
    FmModelShape shape = {.B = c.tb.batch.B};
    for (int i = 0; i < c.m->cfg.M; i++)
        shape.max_L[i] = c.tb.mod[i].max_L;
    FmModelWorkspace *plain;
    ck_assert_int_eq(fm_model_workspace_create(&plain, c.m, &shape, NULL), FM_OK);
    FmError err;
    ck_assert_int_eq(fm_model_set_competition(plain, c.m, (const uint8_t[2]){0, 1}, NULL, &err), FM_ERR_ARG);
    ck_assert_int_eq(fm_model_set_competition(plain, c.m, NULL, NULL, &err), FM_OK);
    const size_t np = fm_params_count(&c.m->params), nb = (size_t)c.tb.batch.B * c.m->cfg.n_labels;
    float *grad = malloc(np * sizeof(float)), *pred = malloc(nb * sizeof(float));
    FmModelLoss lp, lc;
    FmRng r1, r2;
    /* evaluation with the mask set: no competition */
    ck_assert_int_eq(fm_model_forward(c.m, plain, &c.tb.batch, 0, NULL, &lp, NULL), FM_OK);
    memcpy(pred, fm_model_predictions(plain), nb * sizeof(float));
    ck_assert_int_eq(fm_model_forward(c.m, c.ws, &c.tb.batch, 0, NULL, &lc, NULL), FM_OK);
    ck_assert_int_eq(lc.competed, 0);
    ck_assert_mem_eq(pred, fm_model_predictions(c.ws), nb * sizeof(float));
    ck_assert_double_eq(lp.total, lc.total);
    /* training without a mask: the same bits as the ordinary workspace */
    ck_assert_int_eq(fm_model_set_competition(c.ws, c.m, NULL, &cs, NULL), FM_OK);
    fm_rng_seed(&r1, 5);
    fm_rng_seed(&r2, 5);
    ck_assert_int_eq(fm_model_forward(c.m, plain, &c.tb.batch, 1, &r1, &lp, NULL), FM_OK);
    fm_params_zero_grad(&c.m->params);
    fm_model_backward(c.m, plain);
    memcpy(grad, c.m->params.grad, np * sizeof(float));
    ck_assert_int_eq(fm_model_forward(c.m, c.ws, &c.tb.batch, 1, &r2, &lc, NULL), FM_OK);
    fm_params_zero_grad(&c.m->params);
    fm_model_backward(c.m, c.ws);
    ck_assert_mem_eq(grad, c.m->params.grad, np * sizeof(float));
    ck_assert_double_eq(lp.total, lc.total);
    /* training with layer 1 competing */
    ck_assert_int_eq(fm_model_set_competition(c.ws, c.m, (const uint8_t[2]){0, 1}, &cs, NULL), FM_OK);
    fm_rng_seed(&r2, 5);
    ck_assert_int_eq(fm_model_forward(c.m, c.ws, &c.tb.batch, 1, &r2, &lc, NULL), FM_OK);
    ck_assert_int_eq(lc.competed, 1);
    ck_assert(lc.compete_router > 0.0 && lc.compete_balance > 0.0);
    /* layer 0 is routed as before (same rng stream), layer 1's balance and entropy are gone */
    const double want = lc.task + c.m->cfg.balance_coef * lc.balance + c.m->cfg.entropy_coef * lc.entropy +
                        cs.router_coef * lc.compete_router + cs.diversity_coef * lc.compete_diversity +
                        cs.balance_coef * lc.compete_balance;
    ck_assert_double_eq_tol(lc.total, want, 1e-9 * fabs(want));
    ck_assert_double_lt(lc.balance, lp.balance); /* one layer's term instead of two */
    free(grad);
    free(pred);
    fm_model_workspace_free(plain);
    model_free(&c);
}
END_TEST

/* The model's probe: per layer, similarity in [-1, 1] and agreement in [0, 1], deterministic,
 * refused on an ordinary workspace; a forward and backward with competition and the probe
 * allocate nothing; the evaluation probe (src/evaluate_experts.h) agrees with it. */
START_TEST(test_model_probe_and_no_allocation) {
    ModelCtx c;
    model_setup(&c, FM_GATE_SOFTMAX, FM_ROUTER_DISJOINT, NULL, 31);
    FmMoeProbe a[2], b[2];
    FmError err;
    fm_alloc_fail_reset();
    ck_assert_msg(fm_model_probe_experts(c.m, c.ws, &c.tb.batch, a, &err) == FM_OK, "%s", err.message);
    ck_assert_int_eq(fm_model_probe_experts(c.m, c.ws, &c.tb.batch, b, &err), FM_OK);
    for (int l = 0; l < 2; l++) {
        ck_assert(a[l].similarity >= -1.0 && a[l].similarity <= 1.0);
        ck_assert(a[l].agreement >= 0.0 && a[l].agreement <= 1.0);
        ck_assert_double_eq(a[l].similarity, b[l].similarity);
        ck_assert_double_eq(a[l].agreement, b[l].agreement);
    }
    model_gradients(&c);
    ck_assert_int_eq(fm_alloc_calls(), 0);
    FmModelShape shape = {.B = c.tb.batch.B};
    for (int i = 0; i < c.m->cfg.M; i++)
        shape.max_L[i] = c.tb.mod[i].max_L;
    FmModelWorkspace *plain;
    ck_assert_int_eq(fm_model_workspace_create(&plain, c.m, &shape, NULL), FM_OK);
    ck_assert_int_eq(fm_model_probe_experts(c.m, plain, &c.tb.batch, a, &err), FM_ERR_ARG);
    /* The evaluation probe on an ordinary workspace, 7 tokens at a time, measures the same. */
    FmExpertProbe probe;
    ck_assert_int_eq(fm_evaluate_experts_create(&probe, c.m, 7, &err), FM_OK);
    ck_assert_int_eq(fm_model_forward(c.m, plain, &c.tb.batch, 0, NULL, NULL, &err), FM_OK);
    fm_alloc_fail_reset();
    fm_evaluate_experts_add(&probe, c.m, plain);
    ck_assert_int_eq(fm_alloc_calls(), 0);
    for (int l = 0; l < 2; l++) {
        ck_assert_double_eq_tol(fm_evaluate_experts_similarity(&probe, l, -1), a[l].similarity, 1e-5);
        ck_assert_double_eq_tol(fm_evaluate_experts_agreement(&probe, l, -1), a[l].agreement, 1e-9);
    }
    fm_evaluate_experts_free(&probe);
    fm_model_workspace_free(plain);
    model_free(&c);
}
END_TEST

START_TEST(test_model_workspace_alloc_failure) {
    ModelCtx c;
    model_setup(&c, FM_GATE_LAPLACE, FM_ROUTER_JOINT, NULL, 5);
    FmModelShape shape = {.B = c.tb.batch.B};
    for (int i = 0; i < c.m->cfg.M; i++)
        shape.max_L[i] = c.tb.mod[i].max_L;
    FmModelWorkspace *ws;
    fm_alloc_fail_reset();
    ck_assert_int_eq(fm_model_workspace_create_compete(&ws, c.m, &shape, NULL), FM_OK);
    const long calls = fm_alloc_calls();
    fm_model_workspace_free(ws);
    ck_assert_int_gt(calls, 2);
    for (long k = 1; k <= calls; k++) {
        fm_alloc_fail_after(k);
        FmStatus st = fm_model_workspace_create_compete(&ws, c.m, &shape, NULL);
        fm_alloc_fail_reset();
        ck_assert_int_eq(st, FM_ERR_NOMEM);
        ck_assert_ptr_null(ws);
    }
    model_free(&c);
}
END_TEST

static Suite *compete_suite(void) {
    Suite *s = suite_create("compete");
    TCase *tc = tcase_create("compete");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_gradcheck_all_gates_and_routers, 0, 18);
    tcase_add_loop_test(tc, test_gradcheck_each_loss_alone, 0, 9);
    tcase_add_test(tc, test_gradcheck_with_dropout);
    tcase_add_loop_test(tc, test_pytorch_reference, 0, 9);
    tcase_add_test(tc, test_winners_weights_and_output);
    tcase_add_test(tc, test_response_ties_lowest_id);
    tcase_add_test(tc, test_router_loss_zero_when_router_matches);
    tcase_add_test(tc, test_losses_by_hand);
    tcase_add_test(tc, test_balance_by_hand);
    tcase_add_test(tc, test_normal_steps_unchanged);
    tcase_add_test(tc, test_dropout_masks_shared_with_routed_forward);
    tcase_add_test(tc, test_no_allocation_and_empty_batch);
    tcase_add_test(tc, test_alloc_failure);
    tcase_add_test(tc, test_schedule_warmup);
    tcase_add_test(tc, test_schedule_rate);
    tcase_add_test(tc, test_schedule_max_layers);
    tcase_add_test(tc, test_schedule_deterministic);
    tcase_add_test(tc, test_schedule_bad_config);
    tcase_add_test(tc, test_diag_utilisation_and_dead);
    tcase_add_test(tc, test_diag_cosine_and_agreement);
    tcase_add_test(tc, test_diag_probe);
    tcase_add_loop_test(tc, test_model_gradcheck_with_competition, 0, 3);
    tcase_add_test(tc, test_model_competition_switch);
    tcase_add_test(tc, test_model_probe_and_no_allocation);
    tcase_add_test(tc, test_model_workspace_alloc_failure);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) {
    fm_blas_select_kernel(argv);
    return fm_test_run_suite(compete_suite());
}
