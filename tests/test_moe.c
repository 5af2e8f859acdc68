/* The sparse MoE layer: gradient checks of the whole layer for every gate and router, the
 * PyTorch reference (tests/fixtures/generate_moe.py), routing behaviour, and allocation failure. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "models/moe.h"
#include "models/moe_balance.h"
#include "models/moe_gate.h"
#include "src/alloc.h"
#include "src/blas_kernel.h"
#include "tests/support/testutil.h"

static const FmGate GATES[] = {FM_GATE_LAPLACE, FM_GATE_GAUSSIAN, FM_GATE_SOFTMAX};
static const FmRouter ROUTERS[] = {FM_ROUTER_JOINT, FM_ROUTER_PER_MODALITY, FM_ROUTER_DISJOINT};
static const char *GATE_NAMES[] = {"laplace", "gaussian", "softmax"};
static const char *ROUTER_NAMES[] = {"joint", "per_modality", "disjoint"};

/* A layer with its parameters, cache, inputs and a fixed loss:
 *   loss = sum(out * dout) + balance_coef * balance + entropy_coef * entropy. */
typedef struct {
    FmMoeConfig cfg;
    FmMoe moe;
    FmParams params;
    FmMoeCache *cache;
    int T;
    float *x, *out, *dout, *dx, *eps;
    int *modality;
    int training;
    FmRng rng; /* copied before every forward, so dropout masks repeat */
    float balance_coef, entropy_coef;
    int base_sig[64 * 8]; /* routing decisions at the unperturbed point (gradient checks) */
    int base_sig_n;       /* 0: not checked */
} Layer;

static FmMoeConfig small_config(FmGate gate, FmRouter router, int noisy) {
    FmMoeConfig c = {.D = 6,
                     .hidden = 5,
                     .E = 6,
                     .K = 2,
                     .M = 2,
                     .gate = gate,
                     .router = router,
                     .dropout = 0.0f,
                     .noisy = noisy};
    return c;
}

/* Declares, allocates and initialises the layer, then sets inputs from `seed`: x ~ U(-1, 1),
 * modalities interleaved, noise weights ~ U(-0.5, 0.5) (so the noise scale varies), fixed noise
 * draws injected when cfg.noisy. */
static void layer_build(Layer *L, const FmMoeConfig *cfg, int T, unsigned seed) {
    memset(L, 0, sizeof *L);
    L->cfg = *cfg;
    L->T = T;
    L->training = 1;
    L->balance_coef = 0.7f;
    L->entropy_coef = 0.4f;
    FmError err;
    fm_params_init(&L->params);
    ck_assert_int_eq(fm_moe_declare(&L->moe, cfg, &L->params, "moe", &err), FM_OK);
    ck_assert_int_eq(fm_params_allocate(&L->params, 0, &err), FM_OK);
    ck_assert_int_eq(fm_moe_cache_create(&L->cache, cfg, T, &err), FM_OK);
    FmRng rng;
    fm_rng_seed(&rng, seed);
    fm_moe_init(&L->moe, &L->params, &rng);
    for (int r = 0; r < L->moe.n_routers; r++)
        if (L->moe.noise_w[r] >= 0)
            fm_fill_uniform(&rng, fm_params_data(&L->params, L->moe.noise_w[r]),
                            (size_t)L->moe.experts_per_router * cfg->D, -0.5f, 0.5f);
    const size_t n = (size_t)T * cfg->D, ne = (size_t)T * L->moe.experts_per_router;
    L->x = malloc(n * sizeof(float));
    L->out = malloc(n * sizeof(float));
    L->dout = malloc(n * sizeof(float));
    L->dx = calloc(n, sizeof(float));
    L->eps = malloc(ne * sizeof(float));
    L->modality = malloc((size_t)T * sizeof(int));
    fm_fill_uniform(&rng, L->x, n, -1.0f, 1.0f);
    fm_fill_uniform(&rng, L->dout, n, -1.0f, 1.0f);
    for (size_t i = 0; i < ne; i++)
        L->eps[i] = (float)fm_rng_normal(&rng);
    for (int t = 0; t < T; t++)
        L->modality[t] = (t * 5 + 1) % 3 % cfg->M;
    fm_rng_seed(&L->rng, seed + 17);
    if (cfg->noisy) fm_moe_inject_noise(L->cache, L->eps, T);
}

static void layer_free(Layer *L) {
    fm_moe_cache_free(L->cache);
    fm_params_free(&L->params);
    free(L->x);
    free(L->out);
    free(L->dout);
    free(L->dx);
    free(L->eps);
    free(L->modality);
}

static FmMoeAux layer_forward(Layer *L) {
    FmRng rng = L->rng;
    FmMoeAux aux;
    fm_moe_forward(&L->moe, &L->params, L->cache, L->out, L->x, L->modality, L->T, L->training, &rng, &aux);
    return aux;
}

static int routing_signature(const FmMoeCache *cache, int *sig);

static double layer_loss(void *ctx) {
    Layer *L = ctx;
    FmMoeAux aux = layer_forward(L);
    if (L->base_sig_n > 0) {
        /* A central difference across a routing decision would compare two different smooth
         * functions: refuse rather than report a misleading mismatch. */
        int sig[64 * 8];
        const int n = routing_signature(L->cache, sig);
        ck_assert_msg(n == L->base_sig_n && memcmp(sig, L->base_sig, (size_t)n * sizeof *sig) == 0,
                      "a finite-difference step changed the routing: the margin is too small for the step");
    }
    return fm_dot_double(L->out, L->dout, (size_t)L->T * L->cfg.D) + (double)L->balance_coef * aux.balance +
           (double)L->entropy_coef * aux.entropy;
}

static void layer_backward(Layer *L) {
    fm_params_zero_grad(&L->params);
    memset(L->dx, 0, (size_t)L->T * L->cfg.D * sizeof(float));
    layer_forward(L);
    fm_moe_backward(&L->moe, &L->params, L->cache, L->dx, L->dout, L->balance_coef, L->entropy_coef);
}

/* Expert ids of one token's noisy logits, largest first (ties: lowest id first). */
static void rank_experts(int *ids, const float *noisy, int Er) {
    for (int e = 0; e < Er; e++)
        ids[e] = e;
    for (int i = 1; i < Er; i++) /* insertion sort: stable, Er is tiny */
        for (int j = i; j > 0 && noisy[ids[j]] > noisy[ids[j - 1]]; j--) {
            int tmp = ids[j];
            ids[j] = ids[j - 1];
            ids[j - 1] = tmp;
        }
}

/* The ranks (0-based) whose neighbours' gaps decide routing: between ranks K-1 and K (the
 * selection) and, with noise, also K-2/K-1 and K/K+1, which decide which logit is each
 * expert's load threshold (the smallest selected one and the largest unselected one). */
static void decisive_gaps(int K, int Er, int noisy, int *lo, int *hi) {
    *lo = noisy ? K - 2 : K - 1;
    *hi = noisy ? K + 1 : K; /* gaps (a, a + 1) for lo <= a < hi */
    if (*lo < 0) *lo = 0;
    if (*hi > Er - 1) *hi = Er - 1;
}

/* The smallest decisive gap over the tokens of the last forward. A perturbation that moves no
 * logit by half this much cannot change any discrete routing decision. */
static double routing_margin(const FmMoeCache *cache) {
    FmMoeRouting v;
    fm_moe_routing(cache, &v);
    double best = INFINITY;
    int ids[FM_MOE_MAX_EXPERTS], lo, hi;
    decisive_gaps(v.K, v.E_r, v.noisy, &lo, &hi);
    for (int t = 0; t < v.T; t++) {
        const float *nt = v.noisy_logits + (size_t)t * v.E_r;
        rank_experts(ids, nt, v.E_r);
        for (int a = lo; a < hi; a++)
            best = fmin(best, (double)nt[ids[a]] - nt[ids[a + 1]]);
    }
    return best;
}

/* The discrete routing decisions of the last forward, per token: a bit mask of the selected
 * experts and, with noise, the ids of the smallest selected and the largest unselected noisy
 * logit (the load thresholds). Equal signatures mean the loss is one smooth function between
 * the two points. Returns the number of ints written. */
static int routing_signature(const FmMoeCache *cache, int *sig) {
    FmMoeRouting v;
    fm_moe_routing(cache, &v);
    int ids[FM_MOE_MAX_EXPERTS], n = 0;
    for (int t = 0; t < v.T; t++) {
        rank_experts(ids, v.noisy_logits + (size_t)t * v.E_r, v.E_r);
        int mask = 0;
        for (int k = 0; k < v.K; k++)
            mask |= 1 << ids[k];
        sig[n++] = mask;
        sig[n++] = v.noisy ? ids[v.K - 1] : -1;
        sig[n++] = v.noisy && v.K < v.E_r ? ids[v.K] : -1;
    }
    return n;
}

/* Builds the layer for the first seed from `seed` whose routing margin exceeds `margin`. */
static unsigned layer_build_away_from_ties(Layer *L, const FmMoeConfig *cfg, int T, unsigned seed,
                                           double margin) {
    for (int tries = 0; tries < 1000; tries++, seed++) {
        layer_build(L, cfg, T, seed);
        layer_forward(L);
        if (routing_margin(L->cache) > margin) return seed;
        layer_free(L);
    }
    ck_abort_msg("no seed with a routing margin above %g", margin);
    return 0;
}

/* Central differences of the whole loss for the input and every parameter tensor. */
static void check_all_gradients(Layer *L, double h, double tol, const char *what) {
    layer_backward(L);
    L->base_sig_n = routing_signature(L->cache, L->base_sig);
    char name[256];
    snprintf(name, sizeof name, "%s dx", what);
    fm_assert_gradcheck(layer_loss, L, L->x, L->dx, (size_t)L->T * L->cfg.D, h, tol, name);
    for (int i = 0; i < L->params.n_tensors; i++) {
        const FmTensorInfo *info = &L->params.tensors[i];
        snprintf(name, sizeof name, "%s %s", what, info->name);
        fm_assert_gradcheck(layer_loss, L, fm_params_data(&L->params, i), fm_params_grad(&L->params, i),
                            info->count, h, tol, name);
    }
}

/* The step trades float noise (the forward runs in float: ~1e-7 noise in the loss, divided by
 * 2h) against truncation (which grows as h^2 with the curvature of the gates): at h = 3e-3 the
 * worst relative error was 2.5e-2 (noise), at 2e-2 it was 2.8e-2 (truncation), at 1e-2 it is
 * 6.4e-3 over the 19 checks (floor 1e-3). A step moves a logit by at most a few hundredths,
 * so a margin of 0.1 keeps every perturbation on one side of every routing decision, and the
 * loss function verifies it (routing_signature). */
#define GC_STEP 1e-2
#define GC_MARGIN 0.1
#define GC_TOL 2e-2

START_TEST(test_gradcheck_all_gates_and_routers) {
    const int gi = _i / 6, ri = _i / 2 % 3, noisy = _i % 2 == 0;
    FmMoeConfig cfg = small_config(GATES[gi], ROUTERS[ri], noisy);
    Layer L;
    const int T = 7 + _i % 6; /* 7 .. 12 tokens */
    layer_build_away_from_ties(&L, &cfg, T, 100u * (unsigned)_i + 1u, GC_MARGIN);
    char what[128];
    snprintf(what, sizeof what, "%s/%s/%s", GATE_NAMES[gi], ROUTER_NAMES[ri], noisy ? "noisy" : "clean");
    /* Both auxiliary losses are present and matter. */
    FmMoeAux aux = layer_forward(&L);
    ck_assert_msg(aux.balance > 1e-3f, "%s: balance %g", what, (double)aux.balance);
    check_all_gradients(&L, GC_STEP, GC_TOL, what);
    layer_free(&L);
}
END_TEST

/* Dropout on the hidden activations: the mask is drawn from the stream the layer is given, so
 * replaying the same rng state gives the same mask and the layer is differentiable. */
START_TEST(test_gradcheck_with_dropout) {
    FmMoeConfig cfg = small_config(FM_GATE_LAPLACE, FM_ROUTER_PER_MODALITY, 1);
    cfg.dropout = 0.3f;
    Layer L;
    layer_build_away_from_ties(&L, &cfg, 9, 4242, GC_MARGIN);
    /* the mask really drops something: a different stream changes the output */
    layer_forward(&L);
    float *first = malloc((size_t)L.T * cfg.D * sizeof(float));
    memcpy(first, L.out, (size_t)L.T * cfg.D * sizeof(float));
    fm_rng_seed(&L.rng, 999);
    layer_forward(&L);
    int differ = 0;
    for (int i = 0; i < L.T * cfg.D; i++)
        differ += first[i] != L.out[i];
    ck_assert_int_gt(differ, 0);
    free(first);
    check_all_gradients(&L, GC_STEP, GC_TOL, "dropout");
    layer_free(&L);
}
END_TEST

/* ---- PyTorch reference ---- */

static void set_tensor(FmParams *p, int id, const FmFixture *fx, const char *name) {
    const FmFixtureTensor *t = fm_fixture_get(fx, name, p->tensors[id].count);
    memcpy(fm_params_data(p, id), t->data, t->count * sizeof(float));
}

/* The fixture holds float64 results; the layer runs in float32. Observed worst difference over
 * the 18 cases and every tensor: 9.5e-7 absolute (a router gradient of magnitude 1.25). */
#define REF_ATOL 1e-5
#define REF_RTOL 1e-5

START_TEST(test_pytorch_reference) {
    const int gi = _i / 6, ri = _i / 2 % 3, noisy = _i % 2 == 0;
    FmFixture fx;
    fm_fixture_load(&fx, "tests/fixtures/moe_reference.txt");
    const int T = 10, D = 6, H = 4, E = 6;
    FmMoeConfig cfg = {.D = D,
                       .hidden = H,
                       .E = E,
                       .K = 2,
                       .M = 2,
                       .gate = GATES[gi],
                       .router = ROUTERS[ri],
                       .dropout = 0.0f,
                       .noisy = noisy};
    FmMoe moe;
    FmParams params;
    FmMoeCache *cache;
    fm_params_init(&params);
    ck_assert_int_eq(fm_moe_declare(&moe, &cfg, &params, "moe", NULL), FM_OK);
    ck_assert_int_eq(fm_params_allocate(&params, 0, NULL), FM_OK);
    ck_assert_int_eq(fm_moe_cache_create(&cache, &cfg, T, NULL), FM_OK);
    char p[64], name[128];
    snprintf(p, sizeof p, "%s.%s.%s.", GATE_NAMES[gi], ROUTER_NAMES[ri], noisy ? "noisy" : "clean");
#define FX(suffix, count)                                                                                    \
    (snprintf(name, sizeof name, "%s%s", p, suffix), fm_fixture_get(&fx, name, count)->data)
    set_tensor(&params, moe.fc1_w, &fx, "fc1_w");
    set_tensor(&params, moe.fc1_b, &fx, "fc1_b");
    set_tensor(&params, moe.fc2_w, &fx, "fc2_w");
    set_tensor(&params, moe.fc2_b, &fx, "fc2_b");
    for (int r = 0; r < moe.n_routers; r++) {
        snprintf(name, sizeof name, "%sw%d", p, r);
        set_tensor(&params, moe.router_w[r], &fx, name);
        if (noisy) {
            snprintf(name, sizeof name, "%swn%d", p, r);
            set_tensor(&params, moe.noise_w[r], &fx, name);
        }
    }
    const float *x = FX("x", (size_t)T * D), *dout = FX("dout", (size_t)T * D);
    const float *modf = FX("modality", (size_t)T);
    int modality[10];
    for (int t = 0; t < T; t++)
        modality[t] = (int)modf[t];
    if (noisy) fm_moe_inject_noise(cache, FX("eps", (size_t)T * moe.experts_per_router), T);
    float out[60], dx[60] = {0};
    FmMoeAux aux;
    fm_moe_forward(&moe, &params, cache, out, x, modality, T, 1, NULL, &aux);
    fm_moe_backward(&moe, &params, cache, dx, dout, 0.5f, 0.5f);
    char what[192];
    snprintf(what, sizeof what, "%sout", p);
    fm_assert_close(out, FX("out", (size_t)T * D), (size_t)T * D, REF_ATOL, REF_RTOL, what);
    const float got_aux[2] = {aux.balance, aux.entropy};
    snprintf(what, sizeof what, "%saux", p);
    fm_assert_close(got_aux, FX("aux", 2), 2, REF_ATOL, REF_RTOL, what);
    ck_assert_msg(got_aux[0] > 1e-2f && got_aux[1] != 0.0f, "%s: aux losses too small to test", p);
    snprintf(what, sizeof what, "%sdx", p);
    fm_assert_close(dx, FX("dx", (size_t)T * D), (size_t)T * D, REF_ATOL, REF_RTOL, what);
    char label[192];
    for (int r = 0; r < moe.n_routers; r++) {
        snprintf(what, sizeof what, "dw%d", r);
        snprintf(label, sizeof label, "%s%s", p, what);
        const size_t n = params.tensors[moe.router_w[r]].count;
        fm_assert_close(fm_params_grad(&params, moe.router_w[r]), FX(what, n), n, REF_ATOL, REF_RTOL, label);
        if (noisy) {
            snprintf(what, sizeof what, "dwn%d", r);
            snprintf(label, sizeof label, "%s%s", p, what);
            fm_assert_close(fm_params_grad(&params, moe.noise_w[r]), FX(what, n), n, REF_ATOL, REF_RTOL,
                            label);
        }
    }
    const int ids[4] = {moe.fc1_w, moe.fc1_b, moe.fc2_w, moe.fc2_b};
    const char *names[4] = {"dfc1_w", "dfc1_b", "dfc2_w", "dfc2_b"};
    for (int i = 0; i < 4; i++) {
        const size_t n = params.tensors[ids[i]].count;
        snprintf(label, sizeof label, "%s%s", p, names[i]);
        fm_assert_close(fm_params_grad(&params, ids[i]), FX(names[i], n), n, REF_ATOL, REF_RTOL, label);
    }
#undef FX
    fm_moe_cache_free(cache);
    fm_params_free(&params);
    fm_fixture_free(&fx);
}
END_TEST

/* ---- behaviour ---- */

START_TEST(test_noise_off_is_deterministic_and_matches_eval) {
    FmMoeConfig cfg = small_config(FM_GATE_LAPLACE, FM_ROUTER_JOINT, 0);
    Layer L;
    layer_build(&L, &cfg, 12, 5);
    const size_t n = (size_t)L.T * cfg.D;
    float *a = malloc(n * sizeof(float)), *b = malloc(n * sizeof(float));
    FmMoeAux aux_train = layer_forward(&L);
    memcpy(a, L.out, n * sizeof(float));
    fm_moe_forward(&L.moe, &L.params, L.cache, b, L.x, L.modality, L.T, 0, NULL, NULL);
    FmMoeAux aux_eval = layer_forward(&L);
    ck_assert_mem_eq(a, b, n * sizeof(float));
    ck_assert_mem_eq(a, L.out, n * sizeof(float));
    ck_assert_float_eq(aux_train.balance, aux_eval.balance);
    /* A noisy layer at evaluation: deterministic, no rng needed, equal to its noise-free twin. */
    FmMoeConfig ncfg = cfg;
    ncfg.noisy = 1;
    ncfg.dropout = 0.2f;
    FmMoe nm;
    FmParams np;
    FmMoeCache *nc;
    fm_params_init(&np);
    ck_assert_int_eq(fm_moe_declare(&nm, &ncfg, &np, "moe", NULL), FM_OK);
    ck_assert_int_eq(fm_params_allocate(&np, 0, NULL), FM_OK);
    ck_assert_int_eq(fm_moe_cache_create(&nc, &ncfg, L.T, NULL), FM_OK);
    const int pairs[][2] = {{L.moe.router_w[0], nm.router_w[0]},
                            {L.moe.fc1_w, nm.fc1_w},
                            {L.moe.fc1_b, nm.fc1_b},
                            {L.moe.fc2_w, nm.fc2_w},
                            {L.moe.fc2_b, nm.fc2_b}};
    for (int i = 0; i < 5; i++)
        memcpy(fm_params_data(&np, pairs[i][1]), fm_params_data(&L.params, pairs[i][0]),
               L.params.tensors[pairs[i][0]].count * sizeof(float));
    fm_fill_uniform(&L.rng, fm_params_data(&np, nm.noise_w[0]), (size_t)cfg.E * cfg.D, -1, 1);
    fm_moe_forward(&nm, &np, nc, b, L.x, L.modality, L.T, 0, NULL, NULL);
    ck_assert_mem_eq(a, b, n * sizeof(float));
    /* and in training the noise and dropout do change it */
    FmRng rng;
    fm_rng_seed(&rng, 3);
    fm_moe_forward(&nm, &np, nc, b, L.x, L.modality, L.T, 1, &rng, NULL);
    ck_assert_int_ne(memcmp(a, b, n * sizeof(float)), 0);
    fm_moe_cache_free(nc);
    fm_params_free(&np);
    free(a);
    free(b);
    layer_free(&L);
}
END_TEST

/* The noise a token sees depends on the rng state and its index only: a batch's first tokens
 * get the same draws whether the batch is cut short or not. */
START_TEST(test_noise_streams_per_token) {
    FmMoeConfig cfg = small_config(FM_GATE_LAPLACE, FM_ROUTER_JOINT, 1);
    Layer L;
    layer_build(&L, &cfg, 12, 8);
    fm_moe_inject_noise(L.cache, NULL, 0);
    layer_forward(&L);
    FmMoeRouting v;
    fm_moe_routing(L.cache, &v);
    ck_assert_int_eq(v.noisy, 1);
    float noise12[12 * 6];
    for (int i = 0; i < 12 * 6; i++)
        noise12[i] = v.noisy_logits[i] - v.logits[i];
    L.T = 5;
    layer_forward(&L);
    fm_moe_routing(L.cache, &v);
    int nonzero = 0;
    for (int i = 0; i < 5 * 6; i++) {
        ck_assert_float_eq(v.noisy_logits[i] - v.logits[i], noise12[i]);
        nonzero += noise12[i] != 0.0f;
    }
    ck_assert_int_eq(nonzero, 30);
    /* the caller's stream advances: the next forward draws other noise */
    FmRng before = L.rng;
    FmMoeAux aux;
    fm_moe_forward(&L.moe, &L.params, L.cache, L.out, L.x, L.modality, 5, 1, &L.rng, &aux);
    ck_assert_int_ne(memcmp(&before, &L.rng, sizeof before), 0);
    fm_moe_routing(L.cache, &v);
    ck_assert_float_eq(v.noisy_logits[0] - v.logits[0], noise12[0]); /* drawn from `before` */
    fm_moe_forward(&L.moe, &L.params, L.cache, L.out, L.x, L.modality, 5, 1, &L.rng, &aux);
    fm_moe_routing(L.cache, &v);
    ck_assert_float_ne(v.noisy_logits[0] - v.logits[0], noise12[0]);
    L.T = 12;
    layer_free(&L);
}
END_TEST

/* Laplace routing depends on distances only: shifting every input and every centre by the same
 * vector leaves the selected experts and the gates unchanged. */
START_TEST(test_laplace_shift_invariance) {
    FmMoeConfig cfg = small_config(FM_GATE_LAPLACE, FM_ROUTER_PER_MODALITY, 0);
    Layer L;
    layer_build_away_from_ties(&L, &cfg, 12, 77, 0.01);
    FmMoeRouting v;
    fm_moe_routing(L.cache, &v);
    int sel[12 * 2];
    float gates[12 * 2];
    memcpy(sel, v.selected, sizeof sel);
    memcpy(gates, v.gates, sizeof gates);
    const float shift[6] = {3.0f, -2.5f, 1.25f, 0.5f, -4.0f, 2.0f};
    for (int t = 0; t < L.T; t++)
        for (int d = 0; d < cfg.D; d++)
            L.x[t * cfg.D + d] += shift[d];
    for (int r = 0; r < L.moe.n_routers; r++) {
        float *w = fm_params_data(&L.params, L.moe.router_w[r]);
        for (int e = 0; e < cfg.E; e++)
            for (int d = 0; d < cfg.D; d++)
                w[e * cfg.D + d] += shift[d];
    }
    layer_forward(&L);
    fm_moe_routing(L.cache, &v);
    ck_assert_mem_eq(v.selected, sel, sizeof sel);
    /* float rounding of the shifted coordinates: observed differences up to 3e-7 */
    fm_assert_close(v.gates, gates, 24, 2e-6, 0, "shifted gates");
    layer_free(&L);
}
END_TEST

/* Top-k ties go to the lowest expert id; the K-th and (K+1)-th ranks are reported. */
START_TEST(test_topk_ties) {
    const float v[6] = {0.5f, 2.0f, 0.5f, 2.0f, -1.0f, 0.5f};
    int sel[3], kth[2];
    fm_moe_gate_select(sel, kth, v, 6, 3);
    ck_assert_int_eq(sel[0], 1);
    ck_assert_int_eq(sel[1], 3);
    ck_assert_int_eq(sel[2], 0);
    ck_assert_int_eq(kth[0], 0);
    ck_assert_int_eq(kth[1], 2);
    fm_moe_gate_select(sel, kth, v, 6, 1);
    ck_assert_int_eq(sel[0], 1);
    ck_assert_int_eq(kth[1], 3);
    fm_moe_gate_select(sel, kth, v, 2, 2); /* K == Er: no (K+1)-th */
    ck_assert_int_eq(sel[0], 1);
    ck_assert_int_eq(sel[1], 0);
    ck_assert_int_eq(kth[1], -1);
}
END_TEST

/* Balance loss: 0 for exactly uniform routing, positive otherwise. Four tokens sit on four
 * Laplace centres with K = 1: each expert gets one token with gate 1. */
START_TEST(test_balance_uniform_is_zero) {
    FmMoeConfig cfg = {.D = 3,
                       .hidden = 4,
                       .E = 4,
                       .K = 1,
                       .M = 1,
                       .gate = FM_GATE_LAPLACE,
                       .router = FM_ROUTER_JOINT,
                       .dropout = 0.0f,
                       .noisy = 0};
    FmMoe moe;
    FmParams params;
    FmMoeCache *cache;
    fm_params_init(&params);
    ck_assert_int_eq(fm_moe_declare(&moe, &cfg, &params, "moe", NULL), FM_OK);
    ck_assert_int_eq(fm_params_allocate(&params, 0, NULL), FM_OK);
    ck_assert_int_eq(fm_moe_cache_create(&cache, &cfg, 4, NULL), FM_OK);
    FmRng rng;
    fm_rng_seed(&rng, 1);
    fm_moe_init(&moe, &params, &rng);
    const float *w = fm_params_data(&params, moe.router_w[0]);
    float x[12], out[12];
    memcpy(x, w, sizeof x); /* token t at centre t */
    FmMoeAux aux;
    fm_moe_forward(&moe, &params, cache, out, x, NULL, 4, 0, NULL, &aux);
    FmMoeRouting v;
    fm_moe_routing(cache, &v);
    for (int t = 0; t < 4; t++)
        ck_assert_int_eq(v.selected[t], t);
    ck_assert_float_eq(aux.balance, 0.0f);
    ck_assert_float_eq(aux.entropy, 0.0f); /* one modality: the regulariser is 0 */
    /* token 0 moves to centre 1: expert 0 idles, expert 1 gets two tokens */
    memcpy(x, w + 3, 3 * sizeof(float));
    fm_moe_forward(&moe, &params, cache, out, x, NULL, 4, 0, NULL, &aux);
    /* importance = load = (0, 2, 1, 1): mean 1, variance 0.5, so 0.5 + 0.5 */
    ck_assert_float_eq_tol(aux.balance, 1.0f, 1e-6f);
    /* CV^2 itself: population variance over the mean squared */
    const double v1[4] = {1, 1, 1, 1}, v2[4] = {0, 2, 1, 1}, v0[4] = {0, 0, 0, 0};
    ck_assert_double_eq(fm_moe_cv_squared(v1, 4), 0.0);
    ck_assert_double_eq_tol(fm_moe_cv_squared(v2, 4), 0.5, 1e-9); /* 0.5 / (1 + 1e-10) */
    ck_assert_double_eq(fm_moe_cv_squared(v0, 4), 0.0);           /* no tokens: 0, not NaN */
    fm_moe_cache_free(cache);
    fm_params_free(&params);
}
END_TEST

/* Expert counts per modality add up to T * K, and each modality's row to its tokens * K;
 * disjoint routing never leaves the modality's own experts. */
START_TEST(test_counts_and_disjoint_experts) {
    for (int ri = 0; ri < 3; ri++) {
        FmMoeConfig cfg = {.D = 8,
                           .hidden = 6,
                           .E = 12,
                           .K = 3,
                           .M = 3,
                           .gate = FM_GATE_LAPLACE,
                           .router = ROUTERS[ri],
                           .dropout = 0.1f,
                           .noisy = 1};
        Layer L;
        layer_build(&L, &cfg, 40, 31 + (unsigned)ri);
        fm_moe_inject_noise(L.cache, NULL, 0);
        for (int t = 0; t < L.T; t++)
            L.modality[t] = (t * t) % 3;
        layer_forward(&L);
        const int *counts = fm_moe_expert_counts(L.cache);
        int total = 0, per_mod[3] = {0}, tokens[3] = {0};
        for (int m = 0; m < 3; m++)
            for (int e = 0; e < cfg.E; e++) {
                total += counts[m * cfg.E + e];
                per_mod[m] += counts[m * cfg.E + e];
                if (cfg.router == FM_ROUTER_DISJOINT && e / 4 != m)
                    ck_assert_int_eq(counts[m * cfg.E + e], 0);
            }
        for (int t = 0; t < L.T; t++)
            tokens[L.modality[t]]++;
        ck_assert_int_eq(total, L.T * cfg.K);
        for (int m = 0; m < 3; m++)
            ck_assert_int_eq(per_mod[m], tokens[m] * cfg.K);
        FmMoeRouting v;
        fm_moe_routing(L.cache, &v);
        for (int t = 0; t < L.T; t++)
            for (int k = 0; k < cfg.K; k++) {
                const int e = v.selected[t * cfg.K + k];
                ck_assert(e >= 0 && e < cfg.E);
                if (cfg.router == FM_ROUTER_DISJOINT) ck_assert_int_eq(e / 4, L.modality[t]);
            }
        layer_free(&L);
    }
}
END_TEST

/* Every router of a per-modality or disjoint layer receives a gradient, on its centres and on
 * its noise weights, from the output loss alone and from each auxiliary loss alone. */
START_TEST(test_every_router_gets_gradients) {
    for (int ri = 1; ri < 3; ri++) {
        FmMoeConfig cfg = {.D = 8,
                           .hidden = 6,
                           .E = 9,
                           .K = 2,
                           .M = 3,
                           .gate = FM_GATE_LAPLACE,
                           .router = ROUTERS[ri],
                           .dropout = 0.0f,
                           .noisy = 1};
        Layer L;
        layer_build(&L, &cfg, 30, 50 + (unsigned)ri);
        const float coefs[3][2] = {{0, 0}, {1, 0}, {0, 1}};
        for (int c = 0; c < 3; c++) {
            L.balance_coef = coefs[c][0];
            L.entropy_coef = coefs[c][1];
            if (c > 0) memset(L.dout, 0, (size_t)L.T * cfg.D * sizeof(float));
            layer_backward(&L);
            for (int r = 0; r < L.moe.n_routers; r++) {
                const int ids[2] = {L.moe.router_w[r], L.moe.noise_w[r]};
                for (int j = 0; j < 2; j++) {
                    if (c == 2 && j == 1) continue;  /* the entropy uses clean logits only */
                    if (c == 2 && ri == 2) continue; /* disjoint: E is constant, see below */
                    const float *g = fm_params_grad(&L.params, ids[j]);
                    double norm = 0;
                    for (size_t i = 0; i < L.params.tensors[ids[j]].count; i++)
                        norm += (double)g[i] * g[i];
                    ck_assert_msg(norm > 1e-12, "%s router %d %s, loss %d: zero gradient", ROUTER_NAMES[ri],
                                  r, j ? "noise" : "centres", c);
                }
            }
        }
        /* Disjoint routers have disjoint supports, so E = -log M' whatever the logits. */
        if (ri == 2) {
            FmMoeAux aux = layer_forward(&L);
            ck_assert_float_eq_tol(aux.entropy, (float)-log(3.0), 1e-6f);
        }
        layer_free(&L);
    }
}
END_TEST

/* Forward and backward allocate nothing (the cache holds every buffer); an empty batch is
 * allowed and has zero losses. */
START_TEST(test_no_allocation_and_empty_batch) {
    FmMoeConfig cfg = small_config(FM_GATE_LAPLACE, FM_ROUTER_DISJOINT, 1);
    cfg.dropout = 0.2f;
    Layer L;
    layer_build(&L, &cfg, 12, 9);
    fm_moe_inject_noise(L.cache, NULL, 0);
    fm_alloc_fail_reset();
    layer_backward(&L);
    ck_assert_int_eq(fm_alloc_calls(), 0);
    L.T = 0;
    FmMoeAux aux = layer_forward(&L);
    fm_moe_backward(&L.moe, &L.params, L.cache, L.dx, L.dout, 1.0f, 1.0f);
    ck_assert_float_eq(aux.balance, 0.0f);
    ck_assert_float_eq(aux.entropy, 0.0f);
    ck_assert_int_eq(fm_alloc_calls(), 0);
    L.T = 12;
    layer_free(&L);
}
END_TEST

/* ---- configuration and allocation failure ---- */

START_TEST(test_bad_config) {
    FmParams params;
    fm_params_init(&params);
    FmMoe moe;
    FmError err;
    FmMoeConfig good = small_config(FM_GATE_LAPLACE, FM_ROUTER_DISJOINT, 1);
    struct {
        FmMoeConfig cfg;
        const char *where;
    } bad[] = {
        {good, "moe.K"}, {good, "moe.E"}, {good, "moe.dropout"}, {good, "moe.M"}, {good, "moe.D"},
    };
    bad[0].cfg.K = 4; /* > E / M = 3 */
    bad[1].cfg.E = 7; /* not divisible by M = 2 */
    bad[2].cfg.dropout = 1.0f;
    bad[3].cfg.M = FM_MOE_MAX_MODALITIES + 1;
    bad[4].cfg.D = 0;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        ck_assert_int_eq(fm_moe_declare(&moe, &bad[i].cfg, &params, "moe", &err), FM_ERR_CONFIG);
        ck_assert_str_eq(err.where, bad[i].where);
        ck_assert_int_eq(params.n_tensors, 0);
        static char sentinel;
        FmMoeCache *cache = (FmMoeCache *)(void *)&sentinel; /* must come back NULL */
        ck_assert_int_eq(fm_moe_cache_create(&cache, &bad[i].cfg, 4, &err), FM_ERR_CONFIG);
        ck_assert_ptr_null(cache);
    }
    FmMoeCache *cache;
    ck_assert_int_eq(fm_moe_cache_create(&cache, &good, 0, &err), FM_ERR_ARG);
    /* a name that does not fit the table leaves params as it was */
    char prefix[FM_PARAM_NAME_MAX];
    memset(prefix, 'p', sizeof prefix - 20);
    prefix[sizeof prefix - 20] = '\0';
    ck_assert_int_eq(fm_moe_declare(&moe, &good, &params, prefix, &err), FM_ERR_ARG);
    ck_assert_int_eq(params.n_tensors, 0);
    ck_assert_uint_eq(params.total, 0);
    fm_params_free(&params);
}
END_TEST

START_TEST(test_alloc_failure) {
    FmMoeConfig cfg = small_config(FM_GATE_LAPLACE, FM_ROUTER_PER_MODALITY, 1);
    cfg.dropout = 0.1f;
    FmError err;
    /* fm_moe_cache_create */
    fm_alloc_fail_reset();
    FmMoeCache *cache;
    ck_assert_int_eq(fm_moe_cache_create(&cache, &cfg, 16, &err), FM_OK);
    long calls = fm_alloc_calls();
    fm_moe_cache_free(cache);
    ck_assert_int_ge(calls, 30);
    for (long n = 1; n <= calls; n++) {
        fm_alloc_fail_after(n);
        FmStatus st = fm_moe_cache_create(&cache, &cfg, 16, &err);
        fm_alloc_fail_reset();
        ck_assert_int_eq(st, FM_ERR_NOMEM);
        ck_assert_ptr_null(cache);
    }
    /* fm_moe_declare into a table that already holds tensors and must grow */
    FmParams params;
    FmMoe moe;
    for (long n = 1;; n++) {
        fm_params_init(&params);
        for (int i = 0; i < 31; i++) {
            char name[32];
            snprintf(name, sizeof name, "other.%d", i);
            ck_assert_int_eq(fm_params_declare(&params, name, 1, (int[]){3}, 0, NULL, NULL), FM_OK);
        }
        const size_t total = params.total;
        fm_alloc_fail_after(n);
        FmStatus st = fm_moe_declare(&moe, &cfg, &params, "moe", &err);
        const long used = fm_alloc_calls();
        fm_alloc_fail_reset();
        if (st == FM_OK) {
            ck_assert_int_eq(params.n_tensors, 31 + 2 * 2 + 4);
            ck_assert_int_ge(n, 2); /* at least one failure was exercised */
            fm_params_free(&params);
            break;
        }
        ck_assert_int_eq(st, FM_ERR_NOMEM);
        ck_assert_int_le(n, used);
        ck_assert_int_eq(params.n_tensors, 31);
        ck_assert_uint_eq(params.total, total);
        fm_params_free(&params);
    }
}
END_TEST

static Suite *moe_suite(void) {
    Suite *s = suite_create("moe");
    TCase *tc = tcase_create("moe");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_gradcheck_all_gates_and_routers, 0, 18);
    tcase_add_test(tc, test_gradcheck_with_dropout);
    tcase_add_loop_test(tc, test_pytorch_reference, 0, 18);
    tcase_add_test(tc, test_noise_off_is_deterministic_and_matches_eval);
    tcase_add_test(tc, test_noise_streams_per_token);
    tcase_add_test(tc, test_laplace_shift_invariance);
    tcase_add_test(tc, test_topk_ties);
    tcase_add_test(tc, test_balance_uniform_is_zero);
    tcase_add_test(tc, test_counts_and_disjoint_experts);
    tcase_add_test(tc, test_every_router_gets_gradients);
    tcase_add_test(tc, test_no_allocation_and_empty_batch);
    tcase_add_test(tc, test_bad_config);
    tcase_add_test(tc, test_alloc_failure);
    suite_add_tcase(s, tc);
    return s;
}

int main(int argc, char **argv) {
    fm_blas_select_kernel(argv);
    return fm_test_run_suite(moe_suite());
}
