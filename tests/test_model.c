/* The whole model: configuration checks, gradient checks of one fusion layer and of the whole
 * model for every gate and router, behaviour (determinism, missing modalities, batch
 * independence, expert counts, accumulation), allocation failures, and the PyTorch reference
 * of the whole model (tests/fixtures/generate_model.py).
 *
 * Gradient checks use the reference GEMM (double accumulation) and run in training mode with
 * dropout and routing noise drawn from a fixed seed at every evaluation, so the loss is a
 * deterministic function of the parameters. Steps are 1e-3: small enough that no top-k
 * selection changes within a step for these seeds (a change would show as an error of order
 * 1), large enough that float rounding noise stays near 1e-2 relative on gradients of 1e-3. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "models/model.h"
#include "src/alloc.h"
#include "src/gemm.h"
#include "tests/support/model_support.h"

static FmModel *make_model(const FmModelConfig *cfg, uint64_t seed) {
    FmModel *m = NULL;
    FmError err;
    FmStatus st = fm_model_create(&m, cfg, 0, &err);
    ck_assert_msg(st == FM_OK, "fm_model_create: %s", err.message);
    fm_model_init(m, seed);
    return m;
}

static FmModelWorkspace *make_ws(const FmModel *m, const FmTestBatch *tb) {
    FmModelShape shape = {.B = tb->batch.B};
    for (int i = 0; i < tb->batch.M; i++) shape.max_L[i] = tb->mod[i].max_L;
    FmModelWorkspace *ws = NULL;
    FmError err;
    FmStatus st = fm_model_workspace_create(&ws, m, &shape, &err);
    ck_assert_msg(st == FM_OK, "fm_model_workspace_create: %s", err.message);
    return ws;
}

static void forward_ok(FmModel *m, FmModelWorkspace *ws, const FmBatch *b, int training, FmRng *rng,
                       FmModelLoss *loss) {
    FmError err;
    FmStatus st = fm_model_forward(m, ws, b, training, rng, loss, &err);
    ck_assert_msg(st == FM_OK, "fm_model_forward: %s", err.message);
}

/* ================================ configuration ================================ */

START_TEST(test_config_checks) {
    FmModelConfig cfg;
    fm_test_small_config(&cfg, 0);
    FmError err;
    ck_assert_int_eq(fm_model_config_check(&cfg, &err), FM_OK);
    FmModelConfig bad = cfg;
    bad.DT = 5; /* not divisible by H = 2 */
    ck_assert_int_eq(fm_model_config_check(&bad, &err), FM_ERR_CONFIG);
    bad = cfg;
    bad.router = FM_ROUTER_DISJOINT;
    bad.E = 7;
    ck_assert_int_eq(fm_model_config_check(&bad, &err), FM_ERR_CONFIG);
    ck_assert_str_eq(err.message, "disjoint routers need E divisible by the 3 modalities and K <= E/M (E 7, K 2)");
    bad = cfg;
    bad.static_tokens = 3;
    ck_assert_int_eq(fm_model_config_check(&bad, &err), FM_ERR_CONFIG);
    ck_assert_str_eq(err.message, "static_tokens 3 must be 1 or Q (4)");
    bad = cfg;
    snprintf(bad.mod[1].name, sizeof bad.mod[1].name, "vitals");
    ck_assert_int_eq(fm_model_config_check(&bad, &err), FM_ERR_CONFIG);
    ck_assert_str_eq(err.message, "modality name used twice");
    bad = cfg;
    bad.task[1].label0 = 4;
    ck_assert_int_eq(fm_model_config_check(&bad, &err), FM_ERR_CONFIG);
    ck_assert_int_eq(fm_model_config_add_modality(&bad, "a.b", FM_MODALITY_SERIES, 2, NULL, &err), FM_ERR_CONFIG);
    int first[8], count[8];
    ck_assert_int_eq(fm_model_config_tokens(&cfg, first, count), 4 + 4 + 1);
    ck_assert_int_eq(first[2], 8);
    cfg.static_tokens = cfg.Q;
    ck_assert_int_eq(fm_model_config_tokens(&cfg, first, count), 12);
    /* names round trip */
    FmGate g;
    FmRouter r;
    ck_assert_int_eq(fm_model_gate_parse(fm_model_gate_name(FM_GATE_GAUSSIAN), &g), 0);
    ck_assert_int_eq(g, FM_GATE_GAUSSIAN);
    ck_assert_int_eq(fm_model_router_parse("per_modality", &r), 0);
    ck_assert_int_eq(r, FM_ROUTER_PER_MODALITY);
    ck_assert_int_eq(fm_model_router_parse("shared", &r), -1);
}
END_TEST

START_TEST(test_parameter_names_and_shapes) {
    FmModelConfig cfg;
    fm_test_small_config(&cfg, 1);
    FmModel *m = make_model(&cfg, 1);
    const FmParams *p = &m->params;
    struct {
        const char *name;
        int ndim, d0, d1;
    } want[] = {
        {"time2vec.w", 1, 4, 0},
        {"encoder.vitals.mtand.w_q", 2, 4, 4},
        {"encoder.vitals.mtand.w_o", 2, 8, 2 * 6},   /* H * 2C */
        {"encoder.vitals.utde.imp.weight", 2, 8, 6}, /* D, 2C */
        {"encoder.vitals.utde.gate.fc1.weight", 2, 8, 16},
        {"encoder.notes.mtand.w_o", 2, 8, 2 * 5},
        {"encoder.static.static.weight", 2, 8, 4},
        {"encoder.images.patch.weight", 2, 3, 4},
        {"encoder.images.mtand.w_o", 2, 8, 2 * 3},
        {"embedding.type", 2, 4, 8},
        {"embedding.missing", 2, 4, 8},
        {"embedding.position", 2, 4, 8},
        {"fusion.0.ln1.weight", 1, 8, 0},
        {"fusion.1.attn.in_proj_weight", 2, 24, 8},
        {"fusion.1.attn.out_proj.weight", 2, 8, 8},
        {"fusion.norm.bias", 1, 8, 0},
        {"head.mlp.fc1.weight", 2, 6, 8},
        {"head.phenotype.weight", 2, 2, 8},
    };
    for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
        int id = fm_params_find(p, want[i].name);
        ck_assert_msg(id >= 0, "missing %s", want[i].name);
        ck_assert_int_eq(p->tensors[id].ndim, want[i].ndim);
        ck_assert_int_eq(p->tensors[id].shape[0], want[i].d0);
        if (want[i].ndim == 2) ck_assert_int_eq(p->tensors[id].shape[1], want[i].d1);
    }
    /* the MoE declares its tensors under fusion.<l>.moe */
    int moe = 0;
    for (int i = 0; i < p->n_tensors; i++) moe += strncmp(p->tensors[i].name, "fusion.1.moe.", 13) == 0;
    ck_assert_int_gt(moe, 4);
    fm_model_free(m);
}
END_TEST

/* ================================ gradient checks ================================ */

typedef struct {
    FmModel *m;
    FmModelWorkspace *ws;
    FmTestBatch tb;
    int training;
    uint64_t seed;
    int counts[FM_MODEL_MAX_LAYERS][FM_MODEL_MAX_MODALITIES * 16]; /* expert counts at the checked point */
} GradCtx;

/* The routing of the last evaluation equals that of the checked point (same expert counts per
 * layer and modality; a swap between two tokens in opposite directions would escape this, but
 * then also shows as a failure at every step). */
static int same_routing(void *ctx) {
    GradCtx *c = ctx;
    const FmModelConfig *k = &c->m->cfg;
    for (int l = 0; l < k->layers; l++)
        if (memcmp(fm_model_expert_counts(c->ws, l), c->counts[l], (size_t)k->M * k->E * sizeof(int)) != 0) return 0;
    return 1;
}

static double model_loss(void *ctx) {
    GradCtx *c = ctx;
    FmRng rng;
    fm_rng_seed(&rng, c->seed);
    FmModelLoss loss;
    forward_ok(c->m, c->ws, &c->tb.batch, c->training, &rng, &loss);
    return loss.total;
}

static void grad_setup(GradCtx *c, const FmModelConfig *cfg, uint64_t seed) {
    memset(c, 0, sizeof *c);
    c->m = make_model(cfg, seed);
    fm_test_small_batch(&c->tb, cfg, seed + 1);
    c->ws = make_ws(c->m, &c->tb);
    c->training = 1;
    c->seed = seed + 2;
    model_loss(c);
    const FmModelConfig *k = &c->m->cfg;
    ck_assert(k->M * k->E <= FM_MODEL_MAX_MODALITIES * 16);
    for (int l = 0; l < k->layers; l++)
        memcpy(c->counts[l], fm_model_expert_counts(c->ws, l), (size_t)k->M * k->E * sizeof(int));
    fm_params_zero_grad(&c->m->params);
    fm_model_backward(c->m, c->ws);
}

static void grad_free(GradCtx *c) {
    fm_model_workspace_free(c->ws);
    fm_model_free(c->m);
    fm_test_batch_free(&c->tb);
}

/* One fusion layer alone: X (B, T, D) -> LN, attention, residual, LN, MoE, residual. */
#include "models/fusion.h"

typedef struct {
    FmFusionLayer layer;
    FmParams p;
    FmFusionCache cache;
    FmFusionScratch scratch;
    void *arena;
    int B, T, tokmod[12];
    float x[2 * 6 * 8], out[2 * 6 * 8], R[2 * 6 * 8], dx[2 * 6 * 8];
    int counts[3 * 6];
    uint64_t seed;
} FusionCtx;

static void fusion_layout(FmLayout *l, void *ctx) {
    FusionCtx *c = ctx;
    fm_fusion_cache_layout(&c->cache, l, c->B, c->T, 8, 2);
    fm_fusion_scratch_layout(&c->scratch, l, c->B, c->T, 8, 2);
}

static double fusion_loss(void *ctx) {
    FusionCtx *c = ctx;
    FmRng r;
    fm_rng_seed(&r, c->seed);
    FmMoeAux aux;
    fm_fusion_forward(&c->layer, &c->p, &c->cache, c->out, c->x, c->tokmod, c->B, c->T, 1, &r, &aux);
    return fm_dot_double(c->out, c->R, (size_t)c->B * c->T * 8) + 0.3 * aux.balance + 0.3 * aux.entropy;
}

static int fusion_same_routing(void *ctx) {
    FusionCtx *c = ctx;
    return memcmp(fm_moe_expert_counts(c->cache.moe), c->counts, sizeof c->counts) == 0;
}

START_TEST(test_fusion_layer_gradcheck) {
    /* _i: the router */
    FusionCtx c;
    memset(&c, 0, sizeof c);
    c.B = 2;
    c.T = 6;
    c.seed = 71;
    FmMoeConfig mc = {.D = 8, .hidden = 8, .E = 6, .K = 2, .M = 3, .gate = FM_GATE_LAPLACE, .router = (FmRouter)_i,
                      .dropout = 0.2f, .noisy = 1};
    fm_params_init(&c.p);
    ck_assert_int_eq(fm_fusion_declare(&c.layer, 8, 2, 0.2f, &mc, &c.p, "fusion.0", NULL), FM_OK);
    ck_assert_int_eq(fm_params_allocate(&c.p, 0, NULL), FM_OK);
    FmRng rng;
    fm_rng_seed(&rng, 72 + (uint64_t)_i);
    fm_fusion_init(&c.layer, &c.p, &rng);
    /* LayerNorm parameters away from their identity start, so their gradients are tested */
    fm_fill_uniform(&rng, fm_params_data(&c.p, c.layer.ln1_w), 8, 0.5f, 1.5f);
    fm_fill_uniform(&rng, fm_params_data(&c.p, c.layer.ln2_b), 8, -0.5f, 0.5f);
    fm_fill_uniform(&rng, c.x, sizeof c.x / sizeof *c.x, -1.0f, 1.0f);
    fm_fill_uniform(&rng, c.R, sizeof c.R / sizeof *c.R, -1.0f, 1.0f);
    for (int t = 0; t < 12; t++) c.tokmod[t] = (t % 6) / 2; /* two tokens of each modality per stay */
    c.arena = fm_test_layout_alloc(fusion_layout, &c);
    ck_assert_int_eq(fm_moe_cache_create(&c.cache.moe, &mc, c.B * c.T, NULL), FM_OK);
    fm_gemm_use_reference(1);
    fusion_loss(&c);
    memcpy(c.counts, fm_moe_expert_counts(c.cache.moe), sizeof c.counts);
    fm_params_zero_grad(&c.p);
    memcpy(c.dx, c.R, sizeof c.dx); /* dx holds d(loss)/d(out) on entry */
    fm_fusion_backward(&c.layer, &c.p, &c.cache, &c.scratch, c.dx, c.x, c.B, c.T, 0.3f, 0.3f);
    /* observed worst relative error (h 1e-3, floor 1e-2) over the three routers: params 2.9e-2, dx
     * 1.4e-2 */
    fm_test_gradcheck_piecewise(&c.p, "", fusion_loss, fusion_same_routing, &c, 1e-3, 5e-2, 1e-2, 0.02);
    fm_test_gradcheck_piecewise_buffer("fusion dx", c.x, c.dx, sizeof c.x / sizeof *c.x, fusion_loss,
                                       fusion_same_routing, &c, 1e-3, 5e-2, 1e-2, 0.02);
    fm_gemm_use_reference(0);
    fm_moe_cache_free(c.cache.moe);
    fm_params_free(&c.p);
    free(c.arena);
}
END_TEST

/* gate, router, noisy, pooling, static tokens Q, images */
static const int WHOLE_CASES[][6] = {
    {FM_GATE_LAPLACE, FM_ROUTER_JOINT, 1, FM_POOL_MEAN, 0, 0},
    {FM_GATE_LAPLACE, FM_ROUTER_PER_MODALITY, 1, FM_POOL_MEAN, 0, 1},
    {FM_GATE_LAPLACE, FM_ROUTER_DISJOINT, 0, FM_POOL_LAST, 1, 0},
    {FM_GATE_GAUSSIAN, FM_ROUTER_JOINT, 0, FM_POOL_LAST, 0, 0},
    {FM_GATE_GAUSSIAN, FM_ROUTER_PER_MODALITY, 1, FM_POOL_MEAN, 1, 0},
    {FM_GATE_GAUSSIAN, FM_ROUTER_DISJOINT, 1, FM_POOL_MEAN, 0, 0},
    {FM_GATE_SOFTMAX, FM_ROUTER_JOINT, 1, FM_POOL_MEAN, 0, 1},
    {FM_GATE_SOFTMAX, FM_ROUTER_PER_MODALITY, 0, FM_POOL_LAST, 0, 0},
    {FM_GATE_SOFTMAX, FM_ROUTER_DISJOINT, 1, FM_POOL_MEAN, 1, 0},
};

START_TEST(test_whole_model_gradcheck) {
    const int *k = WHOLE_CASES[_i];
    FmModelConfig cfg;
    fm_test_small_config(&cfg, k[5]);
    cfg.gate = (FmGate)k[0];
    cfg.router = (FmRouter)k[1];
    cfg.noisy = k[2];
    cfg.pooling = (FmPooling)k[3];
    if (k[4]) cfg.static_tokens = cfg.Q;
    if (k[5] && cfg.router == FM_ROUTER_DISJOINT) cfg.E = 8;
    /* large enough to matter in the loss */
    cfg.balance_coef = 0.3f;
    cfg.entropy_coef = 0.3f;
    fm_gemm_use_reference(1);
    GradCtx c;
    grad_setup(&c, &cfg, 300 + (uint64_t)_i);
    /* Floor 1e-2: the loss (2 to 5) carries float rounding noise of ~2e-4 in a numeric gradient
     * at h = 1e-3, which a smaller floor would turn into large relative errors. Observed worst
     * relative error per case at step h: 1.6e-2, 1.4e-2, 5.1e-2, 2.4e-2, 5.4e-2, 1.4e-2, 1.2e-2,
     * 2.7e-2, 1.4e-2; 0 to 24 of ~3,500 elements per case agree only at a smaller step (ReLU
     * of the UTDE gate and column maxima within the step), none changed routing. Larger steps
     * meet the LayerNorm curvature of the small initial embeddings (errors of 1e-1 at 1e-2). */
    fm_test_gradcheck_piecewise(&c.m->params, "", model_loss, same_routing, &c, 1e-3, 8e-2, 1e-2, 0.02);
    fm_gemm_use_reference(0);
    grad_free(&c);
}
END_TEST

/* ================================ behaviour ================================ */

START_TEST(test_eval_is_deterministic_and_training_is_seeded) {
    FmModelConfig cfg;
    fm_test_small_config(&cfg, 0);
    FmModel *m = make_model(&cfg, 5);
    FmTestBatch tb;
    fm_test_small_batch(&tb, &cfg, 6);
    FmModelWorkspace *ws = make_ws(m, &tb);
    const size_t n = (size_t)3 * cfg.n_labels;
    float a[12], b[12];
    FmModelLoss la, lb;
    forward_ok(m, ws, &tb.batch, 0, NULL, &la);
    memcpy(a, fm_model_predictions(ws), n * sizeof(float));
    FmRng r;
    fm_rng_seed(&r, 99);
    forward_ok(m, ws, &tb.batch, 1, &r, NULL); /* a training step in between changes nothing */
    forward_ok(m, ws, &tb.batch, 0, &r, &lb);
    memcpy(b, fm_model_predictions(ws), n * sizeof(float));
    ck_assert_mem_eq(a, b, n * sizeof(float));
    ck_assert(la.total == lb.total);
    /* training: the same generator state gives the same result, another one a different one */
    fm_rng_seed(&r, 7);
    forward_ok(m, ws, &tb.batch, 1, &r, &la);
    memcpy(a, fm_model_predictions(ws), n * sizeof(float));
    fm_rng_seed(&r, 7);
    forward_ok(m, ws, &tb.batch, 1, &r, &lb);
    ck_assert_mem_eq(a, fm_model_predictions(ws), n * sizeof(float));
    fm_rng_seed(&r, 8);
    forward_ok(m, ws, &tb.batch, 1, &r, &lb);
    ck_assert(memcmp(a, fm_model_predictions(ws), n * sizeof(float)) != 0);
    /* predictions are probabilities for the binary and multi-label columns */
    for (int s = 0; s < 3; s++)
        for (int j = 0; j < 4; j++)
            if (j != 1) ck_assert(a[s * 4 + j] > 0.0f && a[s * 4 + j] < 1.0f);
    fm_model_workspace_free(ws);
    fm_model_free(m);
    fm_test_batch_free(&tb);
}
END_TEST

START_TEST(test_missing_modality_acts_only_through_its_embedding) {
    FmModelConfig cfg;
    fm_test_small_config(&cfg, 1);
    FmModel *m = make_model(&cfg, 11);
    FmTestBatch tb;
    fm_test_small_batch(&tb, &cfg, 12);
    FmModelWorkspace *ws = make_ws(m, &tb);
    const size_t n = (size_t)3 * cfg.n_labels;
    float before[12];
    forward_ok(m, ws, &tb.batch, 0, NULL, NULL);
    memcpy(before, fm_model_predictions(ws), sizeof before);
    /* Stay 1 lacks notes: whatever its notes arrays hold (NaN, other counts) changes nothing. */
    FmBatchModality *notes = &tb.mod[1];
    for (int l = 0; l < notes->max_L; l++) {
        notes->time[1 * notes->max_L + l] = NAN;
        notes->mask[1 * notes->max_L + l] = 1;
        for (int c = 0; c < notes->C; c++) notes->value[(1 * notes->max_L + l) * notes->C + c] = NAN;
    }
    notes->count[1] = notes->max_L;
    forward_ok(m, ws, &tb.batch, 0, NULL, NULL);
    ck_assert_mem_eq(before, fm_model_predictions(ws), n * sizeof(float));
    /* The missing embedding does act: changing notes' row changes stay 1 only (eval mode has
     * no coupling between stays) */
    float *miss = fm_params_data(&m->params, m->emb_missing) + 1 * cfg.D;
    for (int d = 0; d < cfg.D; d++) miss[d] += 0.5f;
    forward_ok(m, ws, &tb.batch, 0, NULL, NULL);
    const float *after = fm_model_predictions(ws);
    ck_assert(memcmp(before + 4, after + 4, 4 * sizeof(float)) != 0);
    ck_assert_mem_eq(before, after, 4 * sizeof(float)); /* stays 0 and 2 have notes */
    ck_assert_mem_eq(before + 8, after + 8, 4 * sizeof(float));
    for (int d = 0; d < cfg.D; d++) miss[d] -= 0.5f;
    /* Flipping a present modality to missing changes the stay's output, and then its values no
     * longer matter (stay 0's vitals). */
    tb.mod[0].present[0] = 0;
    forward_ok(m, ws, &tb.batch, 0, NULL, NULL);
    float flipped[12];
    memcpy(flipped, fm_model_predictions(ws), sizeof flipped);
    ck_assert(memcmp(before, flipped, 4 * sizeof(float)) != 0);
    for (size_t i = 0; i < (size_t)tb.mod[0].max_L * tb.mod[0].C; i++) tb.mod[0].value[i] = 1e30f;
    forward_ok(m, ws, &tb.batch, 0, NULL, NULL);
    ck_assert_mem_eq(flipped, fm_model_predictions(ws), 4 * sizeof(float));
    fm_model_workspace_free(ws);
    fm_model_free(m);
    fm_test_batch_free(&tb);
}
END_TEST

START_TEST(test_stays_do_not_interact) {
    /* A stay's evaluation output does not depend on the other stays of its batch. */
    FmModelConfig cfg;
    fm_test_small_config(&cfg, 0);
    FmModel *m = make_model(&cfg, 21);
    FmTestBatch tb;
    fm_test_small_batch(&tb, &cfg, 22);
    FmModelWorkspace *ws = make_ws(m, &tb);
    forward_ok(m, ws, &tb.batch, 0, NULL, NULL);
    float all[12];
    memcpy(all, fm_model_predictions(ws), sizeof all);
    tb.batch.B = 1; /* stay 0 alone: the arrays' first rows */
    forward_ok(m, ws, &tb.batch, 0, NULL, NULL);
    /* observed difference 0 (GEMM blocking may differ with the row count: allow 1e-6) */
    fm_test_expect_close(fm_model_predictions(ws), all, 4, 1e-6, 1e-6, "stay 0 alone");
    tb.batch.B = 3;
    fm_model_workspace_free(ws);
    fm_model_free(m);
    fm_test_batch_free(&tb);
}
END_TEST

START_TEST(test_expert_counts_add_up) {
    for (int router = 0; router < 3; router++) {
        FmModelConfig cfg;
        fm_test_small_config(&cfg, 0);
        cfg.router = (FmRouter)router;
        FmModel *m = make_model(&cfg, 31);
        FmTestBatch tb;
        fm_test_small_batch(&tb, &cfg, 32);
        FmModelWorkspace *ws = make_ws(m, &tb);
        FmRng r;
        fm_rng_seed(&r, 33);
        forward_ok(m, ws, &tb.batch, 1, &r, NULL);
        for (int l = 0; l < cfg.layers; l++) {
            const int *counts = fm_model_expert_counts(ws, l);
            for (int mod = 0; mod < cfg.M; mod++) {
                int sum = 0;
                for (int e = 0; e < cfg.E; e++) {
                    sum += counts[mod * cfg.E + e];
                    if (router == FM_ROUTER_DISJOINT && e / (cfg.E / cfg.M) != mod)
                        ck_assert_int_eq(counts[mod * cfg.E + e], 0);
                }
                /* every token of the modality, absent or not, goes to K experts */
                ck_assert_int_eq(sum, tb.batch.B * m->tok_count[mod] * cfg.K);
            }
        }
        fm_model_workspace_free(ws);
        fm_model_free(m);
        fm_test_batch_free(&tb);
    }
}
END_TEST

START_TEST(test_backward_accumulates) {
    FmModelConfig cfg;
    fm_test_small_config(&cfg, 0);
    FmModel *m = make_model(&cfg, 41);
    FmTestBatch tb;
    fm_test_small_batch(&tb, &cfg, 42);
    FmModelWorkspace *ws = make_ws(m, &tb);
    FmRng r;
    fm_rng_seed(&r, 43);
    forward_ok(m, ws, &tb.batch, 1, &r, NULL);
    fm_params_zero_grad(&m->params);
    fm_model_backward(m, ws);
    const size_t n = m->params.total;
    float *once = malloc(n * sizeof(float));
    memcpy(once, m->params.grad, n * sizeof(float));
    fm_model_backward(m, ws);
    double worst = 0.0;
    size_t nonzero = 0;
    for (size_t i = 0; i < n; i++) {
        worst = fmax(worst, fabs(m->params.grad[i] - 2.0 * once[i]) / fmax(fabs(2.0 * once[i]), 1e-3));
        nonzero += once[i] != 0.0f;
    }
    /* a tensor that gathers several contributions rounds differently the second time:
     * observed max relative difference 3e-7 */
    ck_assert_msg(worst <= 1e-5, "second backward: max relative |g2 - 2 g1| = %g", worst);
    ck_assert_int_gt(nonzero, n / 2);
    free(once);
    fm_model_workspace_free(ws);
    fm_model_free(m);
    fm_test_batch_free(&tb);
}
END_TEST

START_TEST(test_forward_rejects_bad_batches) {
    FmModelConfig cfg;
    fm_test_small_config(&cfg, 0);
    FmModel *m = make_model(&cfg, 51);
    FmTestBatch tb;
    fm_test_small_batch(&tb, &cfg, 52);
    FmModelWorkspace *ws = make_ws(m, &tb);
    FmError err;
    tb.batch.M = 2;
    ck_assert_int_eq(fm_model_forward(m, ws, &tb.batch, 0, NULL, NULL, &err), FM_ERR_ARG);
    ck_assert_str_eq(err.message, "batch has 2 modalities, the model 3");
    tb.batch.M = 3;
    tb.batch.B = 4;
    ck_assert_int_eq(fm_model_forward(m, ws, &tb.batch, 0, NULL, NULL, &err), FM_ERR_ARG);
    tb.batch.B = 3;
    tb.batch.n_labels = 3;
    ck_assert_int_eq(fm_model_forward(m, ws, &tb.batch, 0, NULL, NULL, &err), FM_ERR_ARG);
    tb.batch.n_labels = 4;
    ck_assert_int_eq(fm_model_forward(m, ws, &tb.batch, 1, NULL, NULL, &err), FM_ERR_ARG); /* no rng */
    {
        /* nothing random in the configuration: training without a generator is allowed */
        FmModelConfig plain = cfg;
        plain.dropout = 0.0f;
        plain.noisy = 0;
        FmModel *m2 = make_model(&plain, 53);
        FmModelWorkspace *ws2 = make_ws(m2, &tb);
        ck_assert_int_eq(fm_model_forward(m2, ws2, &tb.batch, 1, NULL, NULL, &err), FM_OK);
        fm_model_workspace_free(ws2);
        fm_model_free(m2);
    }
    tb.mod[1].C = 6;
    ck_assert_int_eq(fm_model_forward(m, ws, &tb.batch, 0, NULL, NULL, &err), FM_ERR_ARG);
    ck_assert_str_eq(err.message, "modality notes: the model expects events data with 5 channels, got events with 6");
    tb.mod[1].C = 5;
    tb.batch.label[0] = NAN; /* a known label that is not a number */
    ck_assert_int_eq(fm_model_forward(m, ws, &tb.batch, 0, NULL, NULL, &err), FM_ERR_NUMERIC);
    tb.batch.label_mask[0] = 0; /* unknown: ignored */
    ck_assert_int_eq(fm_model_forward(m, ws, &tb.batch, 0, NULL, NULL, &err), FM_OK);
    fm_model_workspace_free(ws);
    fm_model_free(m);
    fm_test_batch_free(&tb);
}
END_TEST

/* ================================ PyTorch reference ================================ */

/* The configurations of tests/fixtures/generate_model.py's CASES. */
static void reference_config(FmModelConfig *cfg, int which) {
    *cfg = fm_model_config_default();
    FmModalityConfig *mc;
    const int images = which < 2;
    ck_assert_int_eq(fm_model_config_add_modality(cfg, "vitals", FM_MODALITY_SERIES, 3, &mc, NULL), FM_OK);
    mc->imputation = which != 1;
    ck_assert_int_eq(fm_model_config_add_modality(cfg, "notes", FM_MODALITY_EVENTS, 5, NULL, NULL), FM_OK);
    if (images) {
        ck_assert_int_eq(fm_model_config_add_modality(cfg, "images", FM_MODALITY_IMAGES, 16, &mc, NULL), FM_OK);
        mc->patch = 2;
        mc->patch_dim = 3;
        mc->patch_gelu = which == 0;
    }
    ck_assert_int_eq(fm_model_config_add_modality(cfg, "static", FM_MODALITY_STATIC, 2, NULL, NULL), FM_OK);
    cfg->D = 8;
    cfg->Q = 4;
    cfg->H = 2;
    cfg->DT = 4;
    cfg->layers = which == 2 ? 1 : 2;
    cfg->attn_heads = 2;
    cfg->E = which == 2 ? 6 : 8;
    cfg->K = which == 0 ? 2 : which == 1 ? 1 : 3;
    cfg->hidden = 8;
    cfg->gate = which == 0 ? FM_GATE_LAPLACE : which == 1 ? FM_GATE_GAUSSIAN : FM_GATE_SOFTMAX;
    cfg->router = which == 0 ? FM_ROUTER_PER_MODALITY : which == 1 ? FM_ROUTER_DISJOINT : FM_ROUTER_JOINT;
    cfg->dropout = 0.0f;
    cfg->balance_coef = 0.3f;
    cfg->entropy_coef = 0.2f;
    cfg->static_tokens = which == 1 ? 4 : 1;
    cfg->pooling = which == 1 ? FM_POOL_LAST : FM_POOL_MEAN;
    cfg->head_hidden = 6;
    cfg->n_labels = 4;
    FmTaskConfig *t;
    ck_assert_int_eq(fm_model_config_add_task(cfg, "mortality", FM_TASK_BINARY, 0, 1, &t, NULL), FM_OK);
    t->pos_weight = 2.0f;
    ck_assert_int_eq(fm_model_config_add_task(cfg, "los", FM_TASK_REGRESSION, 1, 1, &t, NULL), FM_OK);
    if (which == 1) t->huber_delta = 0.5f;
    ck_assert_int_eq(fm_model_config_add_task(cfg, "phenotype", FM_TASK_MULTILABEL, 2, 2, &t, NULL), FM_OK);
    t->weight = 0.5f;
}

static const FmFixtureTensor *fixture_tensor(const FmFixture *fx, int which, const char *what, const char *name,
                                             size_t count) {
    char full[256];
    snprintf(full, sizeof full, "c%d.%s%s", which, what, name);
    return fm_fixture_get(fx, full, count);
}

START_TEST(test_pytorch_reference) {
    const int which = _i;
    FmFixture fx;
    fm_fixture_load(&fx, "tests/fixtures/model_reference.txt");
    FmModelConfig cfg;
    reference_config(&cfg, which);
    FmModel *m = make_model(&cfg, 1);
    FmParams *p = &m->params;
    /* every tensor by name, with its shape; and no tensor the model does not have */
    int n_fixture = 0;
    char prefix[32];
    snprintf(prefix, sizeof prefix, "c%d.param.", which);
    for (int i = 0; i < fx.n; i++) n_fixture += strncmp(fx.tensors[i].name, prefix, strlen(prefix)) == 0;
    ck_assert_int_eq(n_fixture, p->n_tensors);
    for (int i = 0; i < p->n_tensors; i++) {
        const FmTensorInfo *t = &p->tensors[i];
        const FmFixtureTensor *ft = fixture_tensor(&fx, which, "param.", t->name, t->count);
        ck_assert_int_eq(ft->ndim, t->ndim);
        for (int d = 0; d < t->ndim; d++) ck_assert_int_eq(ft->shape[d], t->shape[d]);
        memcpy(p->data + t->offset, ft->data, t->count * sizeof(float));
    }
    /* the batch */
    FmTestBatch tb;
    memset(&tb, 0, sizeof tb);
    tb.batch.B = 3;
    tb.batch.M = cfg.M;
    for (int mi = 0; mi < cfg.M; mi++) {
        const FmModalityConfig *mc = &cfg.mod[mi];
        char name[64];
        snprintf(name, sizeof name, "%s.value", mc->name);
        const FmFixtureTensor *v = fixture_tensor(&fx, which, "batch.", name, 0);
        const int L = v->shape[1];
        fm_test_batch_modality(&tb, mi, mc->kind, mc->C, L);
        FmBatchModality *bm = &tb.mod[mi];
        memcpy(bm->value, v->data, v->count * sizeof(float));
        snprintf(name, sizeof name, "%s.time", mc->name);
        const FmFixtureTensor *t = fixture_tensor(&fx, which, "batch.", name, (size_t)3 * L);
        if (bm->time) memcpy(bm->time, t->data, t->count * sizeof(float));
        snprintf(name, sizeof name, "%s.mask", mc->name);
        const FmFixtureTensor *mk = fixture_tensor(&fx, which, "batch.", name, 0);
        for (size_t j = 0; j < mk->count; j++) bm->mask[j] = mk->data[j] != 0.0f;
        snprintf(name, sizeof name, "%s.count", mc->name);
        const FmFixtureTensor *cn = fixture_tensor(&fx, which, "batch.", name, 3);
        snprintf(name, sizeof name, "%s.present", mc->name);
        const FmFixtureTensor *pr = fixture_tensor(&fx, which, "batch.", name, 3);
        for (int b = 0; b < 3; b++) {
            bm->count[b] = (int)cn->data[b];
            bm->present[b] = pr->data[b] != 0.0f;
        }
    }
    fm_test_batch_labels(&tb, 4);
    const FmFixtureTensor *lab = fixture_tensor(&fx, which, "batch.", "label", 12);
    const FmFixtureTensor *known = fixture_tensor(&fx, which, "batch.", "label_mask", 12);
    memcpy(tb.batch.label, lab->data, 12 * sizeof(float));
    for (int j = 0; j < 12; j++) tb.batch.label_mask[j] = known->data[j] != 0.0f;
    /* forward (evaluation: no noise, no dropout), losses, backward */
    FmModelWorkspace *ws = make_ws(m, &tb);
    FmModelLoss loss;
    forward_ok(m, ws, &tb.batch, 0, NULL, &loss);
    char what[64];
    snprintf(what, sizeof what, "case %d predictions", which);
    /* float32 against float64: observed max abs difference over the three cases 9e-8 */
    fm_test_expect_close(fm_model_predictions(ws), fixture_tensor(&fx, which, "", "pred", 12)->data, 12, 1e-6, 1e-5,
                         what);
    const float *want = fixture_tensor(&fx, which, "", "loss", 7)->data;
    const float got[7] = {(float)loss.total, (float)loss.task, (float)loss.balance, (float)loss.entropy,
                          (float)loss.task_loss[0], (float)loss.task_loss[1], (float)loss.task_loss[2]};
    snprintf(what, sizeof what, "case %d losses", which);
    /* observed max abs difference 4.8e-7 (total of case 1), max relative 1.1e-7 */
    fm_test_expect_close(got, want, 7, 1e-6, 1e-5, what);
    fm_params_zero_grad(p);
    fm_model_backward(m, ws);
    for (int i = 0; i < p->n_tensors; i++) {
        const FmTensorInfo *t = &p->tensors[i];
        const FmFixtureTensor *g = fixture_tensor(&fx, which, "grad.", t->name, t->count);
        snprintf(what, sizeof what, "case %d grad %s", which, t->name);
        /* observed max abs difference over every tensor of the three cases 3.6e-7 */
        fm_test_expect_close(p->grad + t->offset, g->data, t->count, 1e-6, 1e-4, what);
    }
    fm_model_workspace_free(ws);
    fm_model_free(m);
    fm_test_batch_free(&tb);
    fm_fixture_free(&fx);
}
END_TEST

/* ================================ allocation failures ================================ */

START_TEST(test_allocation_failures) {
    FmModelConfig cfg;
    fm_test_small_config(&cfg, 1);
    FmTestBatch tb;
    fm_test_small_batch(&tb, &cfg, 61);
    FmModelShape shape = {.B = 3};
    for (int i = 0; i < cfg.M; i++) shape.max_L[i] = tb.mod[i].max_L;
    /* model: count the allocations, then fail each in turn */
    FmModel *m = NULL;
    fm_alloc_fail_after(0);
    fm_alloc_fail_reset();
    ck_assert_int_eq(fm_model_create(&m, &cfg, 1, NULL), FM_OK);
    long n_model = fm_alloc_calls();
    fm_model_free(m);
    ck_assert_int_gt(n_model, 2);
    for (long k = 1; k <= n_model; k++) {
        fm_alloc_fail_after(k);
        FmError err;
        FmStatus st = fm_model_create(&m, &cfg, 1, &err);
        fm_alloc_fail_reset();
        ck_assert_int_eq(st, FM_ERR_NOMEM);
        ck_assert_ptr_null(m);
    }
    m = make_model(&cfg, 62);
    FmModelWorkspace *ws = NULL;
    fm_alloc_fail_reset();
    ck_assert_int_eq(fm_model_workspace_create(&ws, m, &shape, NULL), FM_OK);
    long n_ws = fm_alloc_calls();
    fm_model_workspace_free(ws);
    ck_assert_int_gt(n_ws, 2);
    for (long k = 1; k <= n_ws; k++) {
        fm_alloc_fail_after(k);
        FmStatus st = fm_model_workspace_create(&ws, m, &shape, NULL);
        fm_alloc_fail_reset();
        ck_assert_int_eq(st, FM_ERR_NOMEM);
        ck_assert_ptr_null(ws);
    }
    /* a forward and backward allocate nothing */
    ws = make_ws(m, &tb);
    FmRng r;
    fm_rng_seed(&r, 63);
    fm_alloc_fail_reset();
    forward_ok(m, ws, &tb.batch, 1, &r, NULL);
    fm_model_backward(m, ws);
    ck_assert_int_eq(fm_alloc_calls(), 0);
    fm_model_workspace_free(ws);
    fm_model_free(m);
    fm_test_batch_free(&tb);
}
END_TEST

static Suite *model_suite(void) {
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("model");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, test_config_checks);
    tcase_add_test(tc, test_parameter_names_and_shapes);
    tcase_add_loop_test(tc, test_fusion_layer_gradcheck, 0, 3);
    tcase_add_loop_test(tc, test_whole_model_gradcheck, 0, (int)(sizeof WHOLE_CASES / sizeof *WHOLE_CASES));
    tcase_add_test(tc, test_eval_is_deterministic_and_training_is_seeded);
    tcase_add_test(tc, test_missing_modality_acts_only_through_its_embedding);
    tcase_add_test(tc, test_stays_do_not_interact);
    tcase_add_test(tc, test_expert_counts_add_up);
    tcase_add_test(tc, test_backward_accumulates);
    tcase_add_test(tc, test_forward_rejects_bad_batches);
    tcase_add_loop_test(tc, test_pytorch_reference, 0, 3);
    tcase_add_test(tc, test_allocation_failures);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return fm_test_run_suite(model_suite()); }
