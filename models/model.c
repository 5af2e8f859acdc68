#include "models/model.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "models/init.h"
#include "models/layout.h"
#include "src/alloc.h"
#include "src/layernorm.h"
#include "src/time2vec.h"

/* Streams split off the initialisation seed and off a forward's generator: each part draws
 * from its own, so adding draws to one part never changes another's numbers. */
enum {
    INIT_TIME2VEC = 1,
    INIT_EMBEDDING = 2,
    INIT_HEADS = 3,
    INIT_ENCODER = 100,  /* + modality */
    INIT_FUSION = 200,   /* + layer */
    STEP_HEADS = 1,
    STEP_FUSION = 100    /* + layer */
};

struct FmModelWorkspace {
    FmModelShape max;
    void *arena;
    float *ref_t;    /* (Q) reference times r / (Q - 1) */
    float *phi_ref;  /* (Q, DT) */
    float *dphi_ref; /* (Q, DT) */
    FmEncoderBuffers enc[FM_MODEL_MAX_MODALITIES];
    int *slot;           /* (M, B): slot of stay b in modality m's encoder, -1 when absent */
    int *token_modality; /* (B * T) */
    float *x[FM_MODEL_MAX_LAYERS + 1]; /* (B, T, D): x[0] the embedded tokens, x[l+1] after layer l */
    FmFusionCache fc[FM_MODEL_MAX_LAYERS];
    FmFusionScratch fs;
    FmMoeAux aux[FM_MODEL_MAX_LAYERS];
    float *xf, *fmean, *frstd; /* (B, T, D), (B*T), (B*T): final LayerNorm */
    float *pooled;             /* (B, P) */
    float *dpooled;            /* (B, P) */
    float *dx, *dxf;           /* (B, T, D) */
    float *dz;                 /* (B, Q, D) one modality's encoder-output gradient */
    FmHeadsBuffers hb;
    /* the last forward */
    const FmBatch *batch;
    int B, training, have_labels;
    /* competition (fm_model_set_competition) */
    int can_compete;                        /* the MoE caches can compete */
    uint8_t compete_mask[FM_MODEL_MAX_LAYERS]; /* layers that compete in training forwards */
    FmCompeteSettings compete;
    FmCompeteAux caux[FM_MODEL_MAX_LAYERS]; /* competition losses of the last forward */
    uint8_t competed[FM_MODEL_MAX_LAYERS];  /* layers that competed in the last forward */
};

static FmStatus declare(FmParams *p, const char *name, int ndim, int d0, int d1, int decay, int *id, FmError *err) {
    int shape[2] = {d0, d1};
    return fm_params_declare(p, name, ndim, shape, decay, id, err);
}

FmStatus fm_model_create(FmModel **out, const FmModelConfig *cfg, int with_optimizer, FmError *err) {
    *out = NULL;
    FmStatus st = fm_model_config_check(cfg, err);
    if (st) return st;
    FmModel *m = fm_calloc(1, sizeof *m);
    if (!m) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory creating the model");
    m->cfg = *cfg;
    fm_params_init(&m->params);
    FmParams *p = &m->params;
    const int D = cfg->D, M = cfg->M;
    m->T = fm_model_config_tokens(cfg, m->tok_first, m->tok_count);
    m->pooled = cfg->pooling == FM_POOL_LAST ? M * D : D;
    if ((st = declare(p, "time2vec.w", 1, cfg->DT, 0, 0, &m->t2v_w, err)) ||
        (st = declare(p, "time2vec.b", 1, cfg->DT, 0, 0, &m->t2v_b, err)))
        goto fail;
    for (int i = 0; i < M; i++) {
        const FmModalityConfig *mc = &cfg->mod[i];
        FmEncoderConfig ec = {.kind = mc->kind, .C = mc->C, .Q = cfg->Q, .D = D, .H = cfg->H, .DT = cfg->DT,
                              .imputation = mc->imputation, .patch = mc->patch, .patch_dim = mc->patch_dim,
                              .patch_gelu = mc->patch_gelu};
        char prefix[FM_PARAM_NAME_MAX];
        snprintf(prefix, sizeof prefix, "encoder.%s", mc->name);
        if ((st = fm_encoder_declare(&m->enc[i], &ec, p, prefix, err))) goto fail;
    }
    if ((st = declare(p, "embedding.type", 2, M, D, 0, &m->emb_type, err)) ||
        (st = declare(p, "embedding.missing", 2, M, D, 0, &m->emb_missing, err)) ||
        (st = declare(p, "embedding.position", 2, cfg->Q, D, 0, &m->emb_pos, err)))
        goto fail;
    FmMoeConfig mc = {.D = D, .hidden = cfg->hidden, .E = cfg->E, .K = cfg->K, .M = M, .gate = cfg->gate,
                      .router = cfg->router, .dropout = cfg->dropout, .noisy = cfg->noisy};
    for (int l = 0; l < cfg->layers; l++) {
        char prefix[FM_PARAM_NAME_MAX];
        snprintf(prefix, sizeof prefix, "fusion.%d", l);
        if ((st = fm_fusion_declare(&m->layer[l], D, cfg->attn_heads, cfg->dropout, &mc, p, prefix, err))) goto fail;
    }
    if ((st = declare(p, "fusion.norm.weight", 1, D, 0, 0, &m->norm_w, err)) ||
        (st = declare(p, "fusion.norm.bias", 1, D, 0, 0, &m->norm_b, err)))
        goto fail;
    if ((st = fm_heads_declare(&m->heads, m->pooled, cfg->head_hidden, cfg->dropout, cfg->n_labels, cfg->n_tasks,
                               cfg->task, p, err)))
        goto fail;
    if ((st = fm_params_allocate(p, with_optimizer, err))) goto fail;
    *out = m;
    return FM_OK;
fail:
    fm_params_free(p);
    fm_free(m);
    return st;
}

void fm_model_free(FmModel *model) {
    if (!model) return;
    fm_params_free(&model->params);
    fm_free(model);
}

void fm_model_init(FmModel *model, uint64_t seed) {
    const FmModelConfig *c = &model->cfg;
    FmParams *p = &model->params;
    FmRng root;
    fm_rng_seed(&root, seed);
    /* Time2Vec: the linear term starts as the identity; the periodic terms get frequencies
     * spread log-uniformly from half a cycle to Q/2 cycles per window (so neighbouring
     * reference times are told apart) and uniform phases. */
    FmRng r = fm_rng_split(&root, INIT_TIME2VEC);
    float *w = fm_params_data(p, model->t2v_w), *b = fm_params_data(p, model->t2v_b);
    w[0] = 1.0f;
    b[0] = 0.0f;
    const double lo = log(0.5), hi = log(0.5 * c->Q);
    for (int i = 1; i < c->DT; i++) {
        w[i] = (float)(2.0 * M_PI * exp(lo + (hi - lo) * fm_rng_uniform(&r)));
        b[i] = (float)(2.0 * M_PI * fm_rng_uniform(&r));
    }
    for (int m = 0; m < c->M; m++) {
        r = fm_rng_split(&root, INIT_ENCODER + (uint64_t)m);
        fm_encoder_init(&model->enc[m], p, &r);
    }
    r = fm_rng_split(&root, INIT_EMBEDDING);
    fm_init_normal(p, model->emb_type, 0.02f, &r);
    fm_init_normal(p, model->emb_missing, 0.02f, &r);
    fm_init_normal(p, model->emb_pos, 0.02f, &r);
    for (int l = 0; l < c->layers; l++) {
        r = fm_rng_split(&root, INIT_FUSION + (uint64_t)l);
        fm_fusion_init(&model->layer[l], p, &r);
    }
    fm_init_const(p, model->norm_w, 1.0f);
    fm_init_const(p, model->norm_b, 0.0f);
    r = fm_rng_split(&root, INIT_HEADS);
    fm_heads_init(&model->heads, p, &r);
}

/* Carves every buffer of the workspace out of l (sizing when l->base is NULL). */
static void workspace_layout(FmModelWorkspace *ws, FmLayout *l, const FmModel *model) {
    const FmModelConfig *c = &model->cfg;
    const int B = ws->max.B, T = model->T, D = c->D, L = c->layers;
    const size_t ND = (size_t)B * T * D;
    ws->ref_t = fm_layout_floats(l, (size_t)c->Q);
    ws->phi_ref = fm_layout_floats(l, (size_t)c->Q * c->DT);
    ws->dphi_ref = fm_layout_floats(l, (size_t)c->Q * c->DT);
    for (int m = 0; m < c->M; m++) fm_encoder_layout(&ws->enc[m], l, &model->enc[m], B, ws->max.max_L[m]);
    ws->slot = fm_layout_ints(l, (size_t)c->M * B);
    ws->token_modality = fm_layout_ints(l, (size_t)B * T);
    for (int i = 0; i <= L; i++) ws->x[i] = fm_layout_floats(l, ND);
    for (int i = 0; i < L; i++) {
        FmMoeCache *keep = ws->fc[i].moe; /* the MoE caches are not in the arena */
        fm_fusion_cache_layout(&ws->fc[i], l, B, T, D, c->attn_heads);
        ws->fc[i].moe = keep;
    }
    fm_fusion_scratch_layout(&ws->fs, l, B, T, D, c->attn_heads);
    ws->xf = fm_layout_floats(l, ND);
    ws->fmean = fm_layout_floats(l, (size_t)B * T);
    ws->frstd = fm_layout_floats(l, (size_t)B * T);
    ws->pooled = fm_layout_floats(l, (size_t)B * model->pooled);
    ws->dpooled = fm_layout_floats(l, (size_t)B * model->pooled);
    ws->dx = fm_layout_floats(l, ND);
    ws->dxf = fm_layout_floats(l, ND);
    ws->dz = fm_layout_floats(l, (size_t)B * c->Q * D);
    fm_heads_layout(&ws->hb, l, &model->heads, B);
}

static FmStatus workspace_create(FmModelWorkspace **out, const FmModel *model, const FmModelShape *max,
                                 int can_compete, FmError *err) {
    *out = NULL;
    const FmModelConfig *c = &model->cfg;
    if (max->B < 1) return FM_FAIL(err, FM_ERR_ARG, NULL, "workspace for %d stays", max->B);
    for (int m = 0; m < c->M; m++) {
        int L = max->max_L[m];
        if (L < (c->mod[m].kind == FM_MODALITY_STATIC ? 1 : 0) || (c->mod[m].kind == FM_MODALITY_STATIC && L != 1))
            return FM_FAIL(err, FM_ERR_ARG, NULL, "workspace: modality %s: %d observations per stay", c->mod[m].name, L);
    }
    FmModelWorkspace *ws = fm_calloc(1, sizeof *ws);
    if (!ws) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory creating the workspace");
    ws->max = *max;
    ws->can_compete = can_compete;
    ws->compete = fm_compete_settings_default();
    FmLayout l = {NULL, 0};
    workspace_layout(ws, &l, model);
    ws->arena = fm_malloc(l.used + 64);
    FmStatus st = FM_OK;
    if (!ws->arena) {
        st = FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory: workspace of %zu bytes", l.used);
        goto fail;
    }
    l.base = (char *)(((uintptr_t)ws->arena + 63) / 64 * 64);
    l.used = 0;
    workspace_layout(ws, &l, model);
    for (int i = 0; i < c->layers; i++) {
        FmMoeConfig mc = model->layer[i].moe.cfg;
        st = can_compete ? fm_moe_cache_create_compete(&ws->fc[i].moe, &mc, max->B * model->T, err)
                         : fm_moe_cache_create(&ws->fc[i].moe, &mc, max->B * model->T, err);
        if (st) goto fail;
    }
    for (int r = 0; r < c->Q; r++) ws->ref_t[r] = (float)r / (float)(c->Q - 1);
    for (int b = 0; b < max->B; b++)
        for (int m = 0; m < c->M; m++)
            for (int k = 0; k < model->tok_count[m]; k++) ws->token_modality[(size_t)b * model->T + model->tok_first[m] + k] = m;
    *out = ws;
    return FM_OK;
fail:
    fm_model_workspace_free(ws);
    return st;
}

FmStatus fm_model_workspace_create(FmModelWorkspace **out, const FmModel *model, const FmModelShape *max,
                                   FmError *err) {
    return workspace_create(out, model, max, 0, err);
}

FmStatus fm_model_workspace_create_compete(FmModelWorkspace **out, const FmModel *model, const FmModelShape *max,
                                           FmError *err) {
    return workspace_create(out, model, max, 1, err);
}

FmStatus fm_model_set_competition(FmModelWorkspace *ws, const FmModel *model, const uint8_t *mask,
                                  const FmCompeteSettings *settings, FmError *err) {
    const int L = model->cfg.layers;
    for (int l = 0; mask && l < L; l++)
        if (mask[l] && !ws->can_compete)
            return FM_FAIL(err, FM_ERR_ARG, NULL,
                           "layer %d cannot compete: the workspace was not made by "
                           "fm_model_workspace_create_compete",
                           l);
    memset(ws->compete_mask, 0, sizeof ws->compete_mask);
    for (int l = 0; mask && l < L; l++) ws->compete_mask[l] = mask[l] != 0;
    ws->compete = settings ? *settings : fm_compete_settings_default();
    return FM_OK;
}

void fm_model_workspace_free(FmModelWorkspace *ws) {
    if (!ws) return;
    for (int i = 0; i < FM_MODEL_MAX_LAYERS; i++) fm_moe_cache_free(ws->fc[i].moe);
    fm_free(ws->arena);
    fm_free(ws);
}

/* X0 = (present ? Z : missing) + type + position */
static void embed_tokens(const FmModel *model, FmModelWorkspace *ws, const FmBatch *batch) {
    const FmModelConfig *c = &model->cfg;
    const FmParams *p = &model->params;
    const int B = batch->B, T = model->T, D = c->D;
    const float *type = fm_params_data(p, model->emb_type), *missing = fm_params_data(p, model->emb_missing);
    const float *pos = fm_params_data(p, model->emb_pos);
    for (int m = 0; m < c->M; m++) {
        const FmEncoderBuffers *eb = &ws->enc[m];
        int *slot = ws->slot + (size_t)m * B;
        for (int b = 0; b < B; b++) slot[b] = -1;
        for (int s = 0; s < eb->S; s++) slot[eb->slot_stay[s]] = s;
        const int n = model->tok_count[m], per_token = c->mod[m].kind != FM_MODALITY_STATIC;
        for (int b = 0; b < B; b++) {
            for (int k = 0; k < n; k++) {
                float *x = ws->x[0] + ((size_t)b * T + model->tok_first[m] + k) * D;
                const float *src = slot[b] < 0 ? missing + (size_t)m * D
                                   : per_token ? eb->z + ((size_t)slot[b] * c->Q + k) * D
                                               : eb->z + (size_t)slot[b] * D;
                const float *pr = n == c->Q ? pos + (size_t)k * D : NULL;
                for (int d = 0; d < D; d++) x[d] = src[d] + type[(size_t)m * D + d] + (pr ? pr[d] : 0.0f);
            }
        }
    }
}

/* Tokens that mean pooling averages for stay b: those of its present modalities, or all. */
static int pool_includes(const FmModel *model, const FmModelWorkspace *ws, int B, int b, int m, int any) {
    return !any || ws->slot[(size_t)m * B + b] >= 0;
}

static void pool_forward(const FmModel *model, FmModelWorkspace *ws, int B) {
    const FmModelConfig *c = &model->cfg;
    const int T = model->T, D = c->D, P = model->pooled;
    for (int b = 0; b < B; b++) {
        float *out = ws->pooled + (size_t)b * P;
        const float *xb = ws->xf + (size_t)b * T * D;
        if (c->pooling == FM_POOL_LAST) {
            for (int m = 0; m < c->M; m++)
                memcpy(out + (size_t)m * D, xb + (size_t)(model->tok_first[m] + model->tok_count[m] - 1) * D,
                       (size_t)D * sizeof *out);
            continue;
        }
        int any = 0, n = 0;
        for (int m = 0; m < c->M; m++) any |= ws->slot[(size_t)m * B + b] >= 0;
        memset(out, 0, (size_t)D * sizeof *out);
        for (int m = 0; m < c->M; m++) {
            if (!pool_includes(model, ws, B, b, m, any)) continue;
            for (int k = 0; k < model->tok_count[m]; k++) {
                const float *x = xb + (size_t)(model->tok_first[m] + k) * D;
                for (int d = 0; d < D; d++) out[d] += x[d];
            }
            n += model->tok_count[m];
        }
        for (int d = 0; d < D; d++) out[d] /= (float)n;
    }
}

static void pool_backward(const FmModel *model, FmModelWorkspace *ws, int B) {
    const FmModelConfig *c = &model->cfg;
    const int T = model->T, D = c->D, P = model->pooled;
    memset(ws->dxf, 0, (size_t)B * T * D * sizeof(float));
    for (int b = 0; b < B; b++) {
        const float *g = ws->dpooled + (size_t)b * P;
        float *dxb = ws->dxf + (size_t)b * T * D;
        if (c->pooling == FM_POOL_LAST) {
            for (int m = 0; m < c->M; m++)
                memcpy(dxb + (size_t)(model->tok_first[m] + model->tok_count[m] - 1) * D, g + (size_t)m * D,
                       (size_t)D * sizeof *g);
            continue;
        }
        int any = 0, n = 0;
        for (int m = 0; m < c->M; m++) any |= ws->slot[(size_t)m * B + b] >= 0;
        for (int m = 0; m < c->M; m++)
            if (pool_includes(model, ws, B, b, m, any)) n += model->tok_count[m];
        for (int m = 0; m < c->M; m++) {
            if (!pool_includes(model, ws, B, b, m, any)) continue;
            for (int k = 0; k < model->tok_count[m]; k++) {
                float *dx = dxb + (size_t)(model->tok_first[m] + k) * D;
                for (int d = 0; d < D; d++) dx[d] = g[d] / (float)n;
            }
        }
    }
}

FmStatus fm_model_forward(const FmModel *model, FmModelWorkspace *ws, const FmBatch *batch, int training,
                          FmRng *rng, FmModelLoss *loss, FmError *err) {
    const FmModelConfig *c = &model->cfg;
    const FmParams *p = &model->params;
    ws->batch = NULL;
    if (loss) memset(loss, 0, sizeof *loss);
    if (batch->M != c->M)
        return FM_FAIL(err, FM_ERR_ARG, NULL, "batch has %d modalities, the model %d", batch->M, c->M);
    if (batch->B < 1 || batch->B > ws->max.B)
        return FM_FAIL(err, FM_ERR_ARG, NULL, "batch of %d stays, the workspace takes 1 to %d", batch->B, ws->max.B);
    if (training && rng == NULL && (c->dropout > 0.0f || c->noisy))
        return FM_FAIL(err, FM_ERR_ARG, NULL, "training forward needs a random generator");
    FmRng unused; /* training without dropout or noise draws nothing that matters */
    if (training && rng == NULL) {
        fm_rng_seed(&unused, 0);
        rng = &unused;
    }
    const int have_labels = batch->label != NULL && batch->label_mask != NULL;
    if (have_labels && batch->n_labels != c->n_labels)
        return FM_FAIL(err, FM_ERR_ARG, NULL, "batch has %d label columns, the model %d", batch->n_labels, c->n_labels);
    const int B = batch->B, T = model->T, D = c->D;
    for (int m = 0; m < c->M; m++) {
        FmStatus st = fm_encoder_pack(&model->enc[m], &ws->enc[m], &batch->mod[m], B, c->mod[m].name, err);
        if (st) return st;
    }
    /* Encoders, with the reference times' embedding shared by all */
    fm_time2vec_forward(ws->phi_ref, ws->ref_t, fm_params_data(p, model->t2v_w), fm_params_data(p, model->t2v_b),
                        c->Q, c->DT);
    for (int m = 0; m < c->M; m++)
        fm_encoder_forward(&model->enc[m], p, &ws->enc[m], ws->phi_ref, model->t2v_w, model->t2v_b);
    embed_tokens(model, ws, batch);
    /* Fusion stack and final LayerNorm */
    for (int l = 0; l < c->layers; l++) {
        FmRng lr;
        if (training) lr = fm_rng_split(rng, STEP_FUSION + (uint64_t)l);
        ws->competed[l] = training && ws->compete_mask[l];
        if (ws->competed[l]) {
            ws->aux[l] = (FmMoeAux){0.0f, 0.0f};
            fm_fusion_forward_compete(&model->layer[l], p, &ws->fc[l], ws->x[l + 1], ws->x[l], ws->token_modality,
                                      B, T, &lr, &ws->compete, &ws->caux[l]);
        } else {
            ws->caux[l] = (FmCompeteAux){0.0f, 0.0f, 0.0f};
            fm_fusion_forward(&model->layer[l], p, &ws->fc[l], ws->x[l + 1], ws->x[l], ws->token_modality, B, T,
                              training, training ? &lr : NULL, &ws->aux[l]);
        }
    }
    fm_layernorm_forward(ws->xf, ws->fmean, ws->frstd, ws->x[c->layers], fm_params_data(p, model->norm_w),
                         fm_params_data(p, model->norm_b), B * T, D);
    pool_forward(model, ws, B);
    FmRng hr;
    if (training) hr = fm_rng_split(rng, STEP_HEADS);
    fm_heads_forward(&model->heads, p, &ws->hb, ws->pooled, B, training, training ? &hr : NULL);
    ws->batch = batch;
    ws->B = B;
    ws->training = training;
    ws->have_labels = have_labels;
    if (!have_labels) return FM_OK;
    FmTaskLosses tl;
    fm_heads_loss(&model->heads, &ws->hb, batch->label, batch->label_mask, B, &tl);
    double bal = 0.0, ent = 0.0, c_router = 0.0, c_div = 0.0, c_bal = 0.0;
    int competed = 0;
    for (int l = 0; l < c->layers; l++) {
        bal += ws->aux[l].balance;
        ent += ws->aux[l].entropy;
        competed += ws->competed[l];
        c_router += ws->caux[l].router;
        c_div += ws->caux[l].diversity;
        c_bal += ws->caux[l].balance;
    }
    const FmCompeteSettings *cs = &ws->compete;
    double total = tl.total + c->balance_coef * bal + c->entropy_coef * ent;
    if (competed)
        total += cs->router_coef * c_router + cs->diversity_coef * c_div + cs->balance_coef * c_bal;
    if (loss) {
        loss->total = total;
        loss->task = tl.total;
        for (int t = 0; t < c->n_tasks; t++) {
            loss->task_loss[t] = tl.loss[t];
            loss->task_known[t] = tl.known[t];
        }
        loss->balance = bal;
        loss->entropy = ent;
        loss->competed = competed;
        loss->compete_router = c_router;
        loss->compete_diversity = c_div;
        loss->compete_balance = c_bal;
    }
    if (!isfinite(total)) {
        ws->have_labels = 0;
        return FM_FAIL(err, FM_ERR_NUMERIC, NULL, "loss is not finite (task %g, balance %g, entropy %g)", tl.total,
                       bal, ent);
    }
    return FM_OK;
}

const float *fm_model_predictions(const FmModelWorkspace *ws) { return ws->hb.pred; }

const float *fm_model_pooled(const FmModelWorkspace *ws) { return ws->pooled; }

void fm_model_backward(FmModel *model, FmModelWorkspace *ws) {
    FM_ASSERT(ws->batch != NULL && ws->have_labels); /* a forward with labels must come first */
    const FmModelConfig *c = &model->cfg;
    FmParams *p = &model->params;
    const int B = ws->B, T = model->T, D = c->D;
    /* Heads, pooling, final LayerNorm */
    memset(ws->dpooled, 0, (size_t)B * model->pooled * sizeof(float));
    fm_heads_backward(&model->heads, p, &ws->hb, ws->dpooled, ws->pooled, B);
    pool_backward(model, ws, B);
    memset(ws->dx, 0, (size_t)B * T * D * sizeof(float));
    fm_layernorm_backward(ws->dx, fm_params_grad(p, model->norm_w), fm_params_grad(p, model->norm_b), ws->dxf,
                          ws->x[c->layers], ws->fmean, ws->frstd, fm_params_data(p, model->norm_w), B * T, D);
    /* Fusion layers, last first; dx becomes the gradient of each layer's input in place */
    for (int l = c->layers - 1; l >= 0; l--)
        fm_fusion_backward(&model->layer[l], p, &ws->fc[l], &ws->fs, ws->dx, ws->x[l], B, T, c->balance_coef,
                           c->entropy_coef);
    /* X0 = (present ? Z : missing) + type + position */
    float *dtype = fm_params_grad(p, model->emb_type), *dmissing = fm_params_grad(p, model->emb_missing);
    float *dpos = fm_params_grad(p, model->emb_pos);
    memset(ws->dphi_ref, 0, (size_t)c->Q * c->DT * sizeof(float));
    for (int m = 0; m < c->M; m++) {
        const int n = model->tok_count[m], per_token = c->mod[m].kind != FM_MODALITY_STATIC;
        const int *slot = ws->slot + (size_t)m * B;
        FmEncoderBuffers *eb = &ws->enc[m];
        memset(ws->dz, 0, (size_t)eb->S * (per_token ? c->Q : 1) * D * sizeof(float));
        for (int b = 0; b < B; b++) {
            for (int k = 0; k < n; k++) {
                const float *g = ws->dx + ((size_t)b * T + model->tok_first[m] + k) * D;
                float *dsrc = slot[b] < 0 ? dmissing + (size_t)m * D
                              : per_token ? ws->dz + ((size_t)slot[b] * c->Q + k) * D
                                          : ws->dz + (size_t)slot[b] * D;
                float *dpr = n == c->Q ? dpos + (size_t)k * D : NULL;
                for (int d = 0; d < D; d++) {
                    dsrc[d] += g[d];
                    dtype[(size_t)m * D + d] += g[d];
                    if (dpr) dpr[d] += g[d];
                }
            }
        }
        if (eb->S > 0)
            fm_encoder_backward(&model->enc[m], p, eb, ws->dz, ws->phi_ref, ws->dphi_ref, model->t2v_w, model->t2v_b);
    }
    /* phi_ref = Time2Vec(reference times) */
    fm_time2vec_backward(NULL, fm_params_grad(p, model->t2v_w), fm_params_grad(p, model->t2v_b), ws->dphi_ref, ws->ref_t,
                         fm_params_data(p, model->t2v_w), fm_params_data(p, model->t2v_b), c->Q, c->DT);
}

FmStatus fm_model_probe_experts(const FmModel *model, FmModelWorkspace *ws, const FmBatch *batch, FmMoeProbe *probe,
                                FmError *err) {
    if (!ws->can_compete)
        return FM_FAIL(err, FM_ERR_ARG, NULL,
                       "expert probe: the workspace was not made by fm_model_workspace_create_compete");
    FmStatus st = fm_model_forward(model, ws, batch, 0, NULL, NULL, err);
    if (st) return st;
    const int N = ws->B * model->T;
    /* Each layer's MoE input is its cache's ln2 (N, D); the backward scratch d1 is free after an
     * evaluation forward and takes the probe's outputs. */
    for (int l = 0; l < model->cfg.layers; l++)
        fm_moe_diag_probe(&model->layer[l].moe, &model->params, ws->fc[l].moe, ws->fs.d1, ws->fc[l].ln2,
                          ws->token_modality, N, &probe[l]);
    ws->batch = NULL; /* the MoE caches no longer hold the forward */
    return FM_OK;
}

const int *fm_model_expert_counts(const FmModelWorkspace *ws, int layer) {
    FM_ASSERT(layer >= 0 && layer < FM_MODEL_MAX_LAYERS && ws->fc[layer].moe != NULL);
    return fm_moe_expert_counts(ws->fc[layer].moe);
}

const float *fm_model_moe_input(const FmModelWorkspace *ws, const FmModel *model, int layer, const int **modality,
                                int *n_tokens) {
    FM_ASSERT(layer >= 0 && layer < model->cfg.layers);
    *modality = ws->token_modality;
    *n_tokens = ws->B * model->T;
    return ws->fc[layer].ln2;
}
