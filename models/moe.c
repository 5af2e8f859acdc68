/* The sparse MoE layer: parameters, cache, dispatch to the experts, the experts, and the combine.
 * Routing lives in models/moe_gate.c, the auxiliary losses in models/moe_balance.c, the
 * competition mode in models/moe_compete.c (which shares the cache and the expert blocks below
 * through models/moe_internal.h).
 *
 * Dispatch: after routing, the (token, expert) pairs are sorted by expert (stable in token
 * order), each expert's tokens are gathered into one contiguous block of rows, and each expert
 * runs as two GEMMs over its block (fc1, GELU, dropout, fc2). The combine scatter-adds the
 * gate-weighted rows back to their tokens. The backward walks the same blocks. */
#include "models/moe.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "models/moe_internal.h"
#include "src/activation.h"
#include "src/alloc.h"
#include "src/dropout.h"
#include "src/gemm.h"
#include "src/linear.h"
#include "src/vecmath.h"

static FmStatus check_config(const FmMoeConfig *c, FmError *err) {
    if (c->D < 1) return FM_FAIL(err, FM_ERR_CONFIG, "moe.D", "token width must be >= 1, got %d", c->D);
    if (c->hidden < 1)
        return FM_FAIL(err, FM_ERR_CONFIG, "moe.hidden", "expert hidden width must be >= 1, got %d",
                       c->hidden);
    if (c->E < 1 || c->E > FM_MOE_MAX_EXPERTS)
        return FM_FAIL(err, FM_ERR_CONFIG, "moe.E", "experts must be in 1..%d, got %d", FM_MOE_MAX_EXPERTS,
                       c->E);
    if (c->M < 1 || c->M > FM_MOE_MAX_MODALITIES)
        return FM_FAIL(err, FM_ERR_CONFIG, "moe.M", "modalities must be in 1..%d, got %d",
                       FM_MOE_MAX_MODALITIES, c->M);
    if (c->gate != FM_GATE_LAPLACE && c->gate != FM_GATE_GAUSSIAN && c->gate != FM_GATE_SOFTMAX)
        return FM_FAIL(err, FM_ERR_CONFIG, "moe.gate", "unknown gate %d", (int)c->gate);
    if (c->router != FM_ROUTER_JOINT && c->router != FM_ROUTER_PER_MODALITY &&
        c->router != FM_ROUTER_DISJOINT)
        return FM_FAIL(err, FM_ERR_CONFIG, "moe.router", "unknown router %d", (int)c->router);
    if (c->router == FM_ROUTER_DISJOINT && c->E % c->M != 0)
        return FM_FAIL(err, FM_ERR_CONFIG, "moe.E", "disjoint routing needs E divisible by M, got E=%d, M=%d",
                       c->E, c->M);
    const int Er = c->router == FM_ROUTER_DISJOINT ? c->E / c->M : c->E;
    if (c->K < 1 || c->K > Er)
        return FM_FAIL(err, FM_ERR_CONFIG, "moe.K", "top-k must be in 1..%d (experts per router), got %d", Er,
                       c->K);
    if (!(c->dropout >= 0.0f && c->dropout < 1.0f))
        return FM_FAIL(err, FM_ERR_CONFIG, "moe.dropout", "dropout must be in [0, 1), got %g",
                       (double)c->dropout);
    if (c->noisy != 0 && c->noisy != 1)
        return FM_FAIL(err, FM_ERR_CONFIG, "moe.noisy", "noisy must be 0 or 1, got %d", c->noisy);
    return FM_OK;
}

static int n_routers(const FmMoeConfig *c) {
    return c->router == FM_ROUTER_JOINT ? 1 : c->M;
}
static int experts_per_router(const FmMoeConfig *c) {
    return c->router == FM_ROUTER_DISJOINT ? c->E / c->M : c->E;
}

static FmStatus declare_one(FmParams *p, const char *prefix, const char *name, int ndim, const int *shape,
                            int decay, int *id, FmError *err) {
    char full[FM_PARAM_NAME_MAX + 64];
    snprintf(full, sizeof full, "%s.%s", prefix, name);
    return fm_params_declare(p, full, ndim, shape, decay, id, err);
}

FmStatus fm_moe_declare(FmMoe *moe, const FmMoeConfig *cfg, FmParams *params, const char *prefix,
                        FmError *err) {
    FmStatus st = check_config(cfg, err);
    if (st != FM_OK) return st;
    memset(moe, 0, sizeof *moe);
    moe->cfg = *cfg;
    moe->n_routers = n_routers(cfg);
    moe->experts_per_router = experts_per_router(cfg);
    /* fm_params_declare appends to the table; remembering its length lets a failure part-way
     * roll the table back so the caller's params never hold half a layer. */
    const int saved_n = params->n_tensors;
    const size_t saved_total = params->total;
    const int D = cfg->D, H = cfg->hidden, E = cfg->E, Er = moe->experts_per_router;
    char name[64];
    for (int r = 0; r < moe->n_routers && st == FM_OK; r++) {
        moe->noise_w[r] = -1;
        snprintf(name, sizeof name, "router.%d.weight", r);
        st = declare_one(params, prefix, name, 2, (int[]){Er, D}, cfg->gate == FM_GATE_SOFTMAX,
                         &moe->router_w[r], err);
        if (st == FM_OK && cfg->noisy) {
            snprintf(name, sizeof name, "router.%d.noise_weight", r);
            st = declare_one(params, prefix, name, 2, (int[]){Er, D}, 1, &moe->noise_w[r], err);
        }
    }
    if (st == FM_OK)
        st = declare_one(params, prefix, "experts.fc1.weight", 3, (int[]){E, H, D}, 1, &moe->fc1_w, err);
    if (st == FM_OK)
        st = declare_one(params, prefix, "experts.fc1.bias", 2, (int[]){E, H}, 0, &moe->fc1_b, err);
    if (st == FM_OK)
        st = declare_one(params, prefix, "experts.fc2.weight", 3, (int[]){E, D, H}, 1, &moe->fc2_w, err);
    if (st == FM_OK)
        st = declare_one(params, prefix, "experts.fc2.bias", 2, (int[]){E, D}, 0, &moe->fc2_b, err);
    if (st != FM_OK) {
        params->n_tensors = saved_n;
        params->total = saved_total;
    }
    return st;
}

static void fill_uniform(float *x, size_t n, float bound, FmRng *rng) {
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((2.0 * fm_rng_uniform(rng) - 1.0) * bound);
}

void fm_moe_init(const FmMoe *moe, FmParams *params, FmRng *rng) {
    const FmMoeConfig *c = &moe->cfg;
    const int Er = moe->experts_per_router;
    const double sd = 1.0 / sqrt((double)c->D);
    for (int r = 0; r < moe->n_routers; r++) {
        float *w = fm_params_data(params, moe->router_w[r]);
        for (size_t i = 0; i < (size_t)Er * c->D; i++)
            w[i] = (float)(sd * fm_rng_normal(rng));
        if (moe->noise_w[r] >= 0)
            memset(fm_params_data(params, moe->noise_w[r]), 0, (size_t)Er * c->D * sizeof(float));
    }
    const float b1 = (float)(1.0 / sqrt((double)c->D)), b2 = (float)(1.0 / sqrt((double)c->hidden));
    fill_uniform(fm_params_data(params, moe->fc1_w), (size_t)c->E * c->hidden * c->D, b1, rng);
    fill_uniform(fm_params_data(params, moe->fc1_b), (size_t)c->E * c->hidden, b1, rng);
    fill_uniform(fm_params_data(params, moe->fc2_w), (size_t)c->E * c->D * c->hidden, b2, rng);
    fill_uniform(fm_params_data(params, moe->fc2_b), (size_t)c->E * c->D, b2, rng);
}

/* ---- cache ---- */

#define MAX_BUFFERS 64

typedef struct {
    void **ptr;
    size_t count, size;
} Buffer;

/* Lists the cache's buffers (pointer, count, element size) into b (MAX_BUFFERS) and returns how
 * many: the one place that knows them, for allocation and for freeing. */
static int cache_buffers(FmMoeCache *c, Buffer *b) {
    const FmMoeConfig *f = &c->cfg;
    const size_t T = (size_t)c->max_tokens, K = (size_t)f->K, Er = (size_t)c->Er, D = (size_t)f->D;
    const size_t H = (size_t)f->hidden, E = (size_t)f->E, M = (size_t)f->M, R = (size_t)c->R;
    const size_t rows = T * K, TE = T * Er, TK = T * K;
    int n = 0;
#define BUF(p, cnt) (b[n++] = (Buffer){(void **)&(p), (cnt), sizeof *(p)})
    BUF(c->x, T * D);
    BUF(c->modality, T);
    BUF(c->router, T);
    BUF(c->rt.logit, TE);
    BUF(c->rt.noise_pre, TE);
    BUF(c->rt.noise_std, TE);
    BUF(c->rt.eps, TE);
    BUF(c->rt.noisy, TE);
    BUF(c->rt.prob, TE);
    BUF(c->rt.sel, TK);
    BUF(c->rt.kth, T * 2);
    BUF(c->rt.sel_logit, TK);
    BUF(c->rt.gate, TK);
    BUF(c->rg.dgate, TK);
    BUF(c->rg.dsel, TK);
    BUF(c->rg.dnoisy, TE);
    BUF(c->rg.dlogit, TE);
    BUF(c->rg.dstd, TE);
    BUF(c->rg.dpre, TE);
    BUF(c->rg.coef, TE);
    BUF(c->as.importance, R * Er);
    BUF(c->as.load, R * Er);
    BUF(c->as.p_in, TE);
    BUF(c->as.mod_prob, M * E);
    BUF(c->as.mod_tokens, M);
    BUF(c->as.dprob, TE);
    BUF(c->selected, TK);
    BUF(c->counts, M * E);
    BUF(c->start, E + 1);
    BUF(c->fill, E);
    BUF(c->row_of, rows);
    BUF(c->pair_of, rows);
    BUF(c->xg, rows * D);
    BUF(c->hpre, rows * H);
    BUF(c->hact, rows * H);
    if (f->dropout > 0.0f) BUF(c->keep, rows * H);
    BUF(c->eo, rows * D);
    BUF(c->d_eo, T * D);
    BUF(c->d_act, T * H);
    if (f->dropout > 0.0f) BUF(c->d_drop, T * H);
    BUF(c->d_pre, T * H);
    BUF(c->d_xg, T * D);
    BUF(c->inj_eps, TE);
    if (c->can_compete) {
        BUF(c->dense_eo, TE * D);
        BUF(c->resp, TE);
        BUF(c->target, TE);
        BUF(c->xr, T * D);
        BUF(c->perm, T);
        BUF(c->pos, T);
        BUF(c->cmp_dw, TK);
        BUF(c->cmp_ds, TK);
        BUF(c->cmp_norm, TK);
        BUF(c->cmp_cos, TK * K);
        BUF(c->cmp_dp, TE);
    }
#undef BUF
    FM_ASSERT(n <= MAX_BUFFERS);
    return n;
}

void fm_moe_cache_free(FmMoeCache *cache) {
    if (!cache) return;
    Buffer b[MAX_BUFFERS];
    int n = cache_buffers(cache, b);
    for (int i = 0; i < n; i++)
        fm_free(*b[i].ptr);
    fm_free(cache);
}

static FmStatus cache_create(FmMoeCache **cache, const FmMoeConfig *cfg, int max_tokens, int can_compete,
                             FmError *err) {
    *cache = NULL;
    FmStatus st = check_config(cfg, err);
    if (st != FM_OK) return st;
    if (max_tokens < 1)
        return FM_FAIL(err, FM_ERR_ARG, NULL, "MoE cache: max_tokens must be >= 1, got %d", max_tokens);
    FmMoeCache *c = fm_calloc(1, sizeof *c);
    if (!c) return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory creating the MoE cache");
    c->cfg = *cfg;
    c->max_tokens = max_tokens;
    c->R = n_routers(cfg);
    c->Er = experts_per_router(cfg);
    c->inj_T = -1;
    c->can_compete = can_compete;
    Buffer b[MAX_BUFFERS];
    const int n = cache_buffers(c, b);
    for (int i = 0; i < n; i++) {
        *b[i].ptr = fm_malloc_array(b[i].count, b[i].size);
        if (!*b[i].ptr) {
            fm_moe_cache_free(c);
            return FM_FAIL(err, FM_ERR_NOMEM, NULL, "out of memory creating the MoE cache (%d tokens)",
                           max_tokens);
        }
    }
    c->rt.Er = c->Er;
    c->rt.K = cfg->K;
    c->rt.R = c->R;
    c->rt.router = c->router;
    for (int r = 0; r < c->R; r++)
        c->rt.base[r] = cfg->router == FM_ROUTER_DISJOINT ? r * c->Er : 0;
    *cache = c;
    return FM_OK;
}

FmStatus fm_moe_cache_create(FmMoeCache **cache, const FmMoeConfig *cfg, int max_tokens, FmError *err) {
    return cache_create(cache, cfg, max_tokens, 0, err);
}

FmStatus fm_moe_cache_create_compete(FmMoeCache **cache, const FmMoeConfig *cfg, int max_tokens,
                                     FmError *err) {
    return cache_create(cache, cfg, max_tokens, 1, err);
}

int fm_moe_cache_can_compete(const FmMoeCache *cache) {
    return cache->can_compete;
}

void fm_moe_inject_noise(FmMoeCache *cache, const float *eps, int T) {
    if (!eps) {
        cache->inj_T = -1;
        return;
    }
    FM_ASSERT(T >= 0 && T <= cache->max_tokens);
    memcpy(cache->inj_eps, eps, (size_t)T * cache->Er * sizeof *eps);
    cache->inj_T = T;
}

const int *fm_moe_expert_counts(const FmMoeCache *cache) {
    return cache->counts;
}

void fm_moe_routing(const FmMoeCache *cache, FmMoeRouting *v) {
    const FmMoeCache *c = cache;
    v->T = c->T;
    v->K = c->cfg.K;
    v->E_r = c->Er;
    v->n_routers = c->R;
    v->selected = c->selected;
    v->gates = c->rt.gate;
    v->logits = c->rt.logit;
    v->noisy_logits = c->rt.noisy;
    v->probs = c->rt.prob;
    v->importance = c->as.importance;
    v->load = c->as.load;
    v->modality_probs = c->as.mod_prob;
    v->counts = c->counts;
    v->noisy = c->noisy;
    v->competition = c->competed;
}

/* ---- forward ---- */

void fm_moe_router_tensors(const FmMoe *moe, const FmParams *params, int grad, float **w, float **wn) {
    for (int r = 0; r < moe->n_routers; r++) {
        w[r] = grad ? fm_params_grad(params, moe->router_w[r]) : fm_params_data(params, moe->router_w[r]);
        wn[r] = moe->noise_w[r] < 0 ? NULL
                : grad              ? fm_params_grad(params, moe->noise_w[r])
                                    : fm_params_data(params, moe->noise_w[r]);
    }
}

void fm_moe_stage_input(const FmMoe *moe, FmMoeCache *c, float *out, const float *inp,
                        const int *token_modality, int T) {
    const FmMoeConfig *f = &moe->cfg;
    const int D = f->D, M = f->M;
    FM_ASSERT(T >= 0 && T <= c->max_tokens);
    FM_ASSERT(f->E == c->cfg.E && f->K == c->cfg.K && f->D == c->cfg.D && f->hidden == c->cfg.hidden &&
              f->router == c->cfg.router && f->M == c->cfg.M);
    FM_ASSERT(T == 0 || out + (size_t)T * D <= inp || inp + (size_t)T * D <= out);
    c->T = T;
    c->rt.T = T;
    memcpy(c->x, inp, (size_t)T * D * sizeof *inp);
    for (int t = 0; t < T; t++) {
        const int m = token_modality ? token_modality[t] : 0;
        FM_ASSERT(m >= 0 && m < M);
        c->modality[t] = m;
        c->router[t] = f->router == FM_ROUTER_JOINT ? 0 : m;
    }
}

/* Groups the (token, slot) pairs by expert, in token order within each expert, and gathers the
 * inputs into the expert blocks. */
void fm_moe_dispatch(FmMoeCache *c) {
    const int T = c->T, K = c->cfg.K, E = c->cfg.E, D = c->cfg.D, M = c->cfg.M;
    memset(c->counts, 0, (size_t)M * E * sizeof *c->counts);
    for (int i = 0; i < T * K; i++)
        c->counts[(size_t)c->modality[i / K] * E + c->selected[i]]++;
    memset(c->fill, 0, (size_t)E * sizeof *c->fill);
    for (int i = 0; i < T * K; i++)
        c->fill[c->selected[i]]++;
    c->start[0] = 0;
    for (int e = 0; e < E; e++) {
        c->start[e + 1] = c->start[e] + c->fill[e];
        c->fill[e] = 0;
    }
    for (int i = 0; i < T * K; i++) {
        const int e = c->selected[i];
        const int row = c->start[e] + c->fill[e]++;
        c->row_of[i] = row;
        c->pair_of[row] = i;
        memcpy(c->xg + (size_t)row * D, c->x + (size_t)(i / K) * D, (size_t)D * sizeof *c->xg);
    }
}

void fm_moe_combine(const FmMoeCache *c, float *out) {
    const int T = c->T, K = c->cfg.K, D = c->cfg.D;
    for (int t = 0; t < T; t++) {
        float *y = out + (size_t)t * D;
        memset(y, 0, (size_t)D * sizeof *y);
        for (int k = 0; k < K; k++) {
            const size_t i = (size_t)t * K + k;
            const float g = c->rt.gate[i];
            const float *o = c->eo + (size_t)c->row_of[i] * D;
            for (int d = 0; d < D; d++)
                y[d] += g * o[d];
        }
    }
}

void fm_moe_expert_forward(const FmMoe *moe, const FmParams *params, int e, const float *x, int n,
                           const int *tokens, int token_div, float *hpre, float *hact, uint8_t *keep,
                           float *eo, const FmRng *drop_rng) {
    const FmMoeConfig *f = &moe->cfg;
    const int D = f->D, H = f->hidden, E = f->E;
    const float *W1 = fm_params_data(params, moe->fc1_w), *B1 = fm_params_data(params, moe->fc1_b);
    const float *W2 = fm_params_data(params, moe->fc2_w), *B2 = fm_params_data(params, moe->fc2_b);
    /* h = x W1^T + b1, a = dropout(GELU(h)), o = a W2^T + b2 */
    fm_linear_forward(hpre, x, W1 + (size_t)e * H * D, B1 + (size_t)e * H, n, D, H);
    fm_gelu_forward(hact, hpre, (size_t)n * H);
    if (drop_rng) {
        for (int i = 0; i < n; i++) {
            const int t = tokens[i] / token_div;
            FmRng dr = fm_rng_split(drop_rng, (uint64_t)t * (uint64_t)E + (uint64_t)e);
            fm_dropout_forward(hact + (size_t)i * H, keep + (size_t)i * H, hact + (size_t)i * H, (size_t)H,
                               f->dropout, &dr);
        }
    }
    if (eo) fm_linear_forward(eo, hact, W2 + (size_t)e * D * H, B2 + (size_t)e * D, n, H, D);
}

void fm_moe_forward(const FmMoe *moe, const FmParams *params, FmMoeCache *cache, float *out, const float *inp,
                    const int *token_modality, int T, int training, FmRng *rng, FmMoeAux *aux) {
    FmMoeCache *c = cache;
    const FmMoeConfig *f = &moe->cfg;
    const int D = f->D, H = f->hidden, K = f->K, E = f->E, M = f->M, Er = c->Er;
    fm_moe_stage_input(moe, c, out, inp, token_modality, T);
    c->competed = 0;
    c->noisy = training && f->noisy;
    c->dropout_on = training && f->dropout > 0.0f;
    FM_ASSERT(c->dropout_on ? c->keep != NULL : 1);

    /* Randomness: one draw from the caller's stream, then one child stream per token (noise)
     * and per (token, expert) (dropout). */
    FmRng noise_rng = {{0}}, drop_rng = {{0}};
    if ((c->noisy && c->inj_T < 0) || c->dropout_on) {
        FM_ASSERT(rng != NULL);
        FmRng call = *rng;
        (void)fm_rng_u64(rng);
        noise_rng = fm_rng_split(&call, 0);
        drop_rng = fm_rng_split(&call, 1);
    }
    if (c->noisy) {
        if (c->inj_T >= 0) {
            FM_ASSERT(c->inj_T == T);
            memcpy(c->rt.eps, c->inj_eps, (size_t)T * Er * sizeof *c->rt.eps);
        } else {
            for (int t = 0; t < T; t++) {
                FmRng tr = fm_rng_split(&noise_rng, (uint64_t)t);
                for (int e = 0; e < Er; e++)
                    c->rt.eps[(size_t)t * Er + e] = (float)fm_rng_normal(&tr);
            }
        }
    }

    /* Routing and the auxiliary losses. */
    float *w[FM_MOE_MAX_MODALITIES], *wn[FM_MOE_MAX_MODALITIES];
    fm_moe_router_tensors(moe, params, 0, w, wn);
    fm_moe_gate_forward(&c->rt, c->x, (const float *const *)w, (const float *const *)wn, D, f->gate, c->noisy,
                        c->rg.coef);
    c->aux.balance = (float)fm_moe_balance_forward(&c->as, &c->rt, c->noisy);
    c->aux.entropy = (float)fm_moe_entropy_forward(&c->as, &c->rt, c->modality, M, E);
    if (aux) *aux = c->aux;

    for (int t = 0; t < T; t++) {
        const int base = c->rt.base[c->router[t]];
        for (int k = 0; k < K; k++)
            c->selected[(size_t)t * K + k] = base + c->rt.sel[(size_t)t * K + k];
    }
    fm_moe_dispatch(c);

    /* The experts, one block of rows each. */
    for (int e = 0; e < E; e++) {
        const int r0 = c->start[e], n = c->start[e + 1] - r0;
        if (n == 0) continue;
        fm_moe_expert_forward(moe, params, e, c->xg + (size_t)r0 * D, n, c->pair_of + r0, K,
                              c->hpre + (size_t)r0 * H, c->hact + (size_t)r0 * H,
                              c->dropout_on ? c->keep + (size_t)r0 * H : NULL, c->eo + (size_t)r0 * D,
                              c->dropout_on ? &drop_rng : NULL);
    }
    fm_moe_combine(c, out);
}

/* ---- backward ---- */

void fm_moe_expert_backward(const FmMoe *moe, FmParams *params, FmMoeCache *c, int e, const float *d_eo,
                            float *dinp) {
    const FmMoeConfig *f = &moe->cfg;
    const int D = f->D, H = f->hidden, K = f->K;
    const int r0 = c->start[e], n = c->start[e + 1] - r0;
    if (n == 0) return;
    const size_t nH = (size_t)n * H;
    const float *W1 = fm_params_data(params, moe->fc1_w), *W2 = fm_params_data(params, moe->fc2_w);
    float *dW1 = fm_params_grad(params, moe->fc1_w), *dB1 = fm_params_grad(params, moe->fc1_b);
    float *dW2 = fm_params_grad(params, moe->fc2_w), *dB2 = fm_params_grad(params, moe->fc2_b);
    /* o = a W2^T + b2:  da = do W2 (written, not accumulated: no zeroing pass), dW2 += do^T a,
     * db2 += sum do */
    fm_gemm(FM_NO_TRANS, FM_NO_TRANS, n, H, D, 1.0f, d_eo, D, W2 + (size_t)e * D * H, H, 0.0f, c->d_act, H);
    fm_linear_backward(NULL, dW2 + (size_t)e * D * H, dB2 + (size_t)e * D, d_eo, c->hact + (size_t)r0 * H,
                       W2 + (size_t)e * D * H, n, H, D);
    /* a = dropout(GELU(h)) */
    const float *dgelu = c->d_act;
    if (c->dropout_on) {
        memset(c->d_drop, 0, nH * sizeof *c->d_drop);
        fm_dropout_backward(c->d_drop, c->d_act, c->keep + (size_t)r0 * H, nH, f->dropout);
        dgelu = c->d_drop;
    }
    memset(c->d_pre, 0, nH * sizeof *c->d_pre);
    fm_gelu_backward(c->d_pre, dgelu, c->hpre + (size_t)r0 * H, nH);
    /* h = x W1^T + b1:  dx = dh W1 (scattered back to the tokens below), dW1 += dh^T x,
     * db1 += sum dh */
    if (dinp)
        fm_gemm(FM_NO_TRANS, FM_NO_TRANS, n, D, H, 1.0f, c->d_pre, H, W1 + (size_t)e * H * D, D, 0.0f,
                c->d_xg, D);
    fm_linear_backward(NULL, dW1 + (size_t)e * H * D, dB1 + (size_t)e * H, c->d_pre, c->xg + (size_t)r0 * D,
                       W1 + (size_t)e * H * D, n, D, H);
    if (dinp) {
        for (int i = 0; i < n; i++) {
            float *dx = dinp + (size_t)(c->pair_of[r0 + i] / K) * D;
            const float *s = c->d_xg + (size_t)i * D;
            for (int d = 0; d < D; d++)
                dx[d] += s[d];
        }
    }
}

void fm_moe_backward(const FmMoe *moe, FmParams *params, FmMoeCache *cache, float *dinp, const float *dout,
                     float balance_coef, float entropy_coef) {
    FmMoeCache *c = cache;
    const FmMoeConfig *f = &moe->cfg;
    const int T = c->T, D = f->D, K = f->K, E = f->E, Er = c->Er;
    const size_t TK = (size_t)T * K, TE = (size_t)T * Er;
    FM_ASSERT(!c->competed); /* a competition forward has its own backward (models/moe_compete.h) */
    memset(c->rg.dgate, 0, TK * sizeof *c->rg.dgate);
    memset(c->rg.dnoisy, 0, TE * sizeof *c->rg.dnoisy);
    memset(c->rg.dlogit, 0, TE * sizeof *c->rg.dlogit);
    memset(c->rg.dstd, 0, TE * sizeof *c->rg.dstd);

    /* The experts, block by block. */
    for (int e = 0; e < E; e++) {
        const int r0 = c->start[e], n = c->start[e + 1] - r0;
        if (n == 0) continue;
        /* y_t += g o:  do = g dy,  dg = dy . o */
        for (int i = 0; i < n; i++) {
            const int pair = c->pair_of[r0 + i];
            const float *dy = dout + (size_t)(pair / K) * D, *o = c->eo + (size_t)(r0 + i) * D;
            const float g = c->rt.gate[pair];
            float *deo = c->d_eo + (size_t)i * D;
            for (int d = 0; d < D; d++)
                deo[d] = g * dy[d];
            c->rg.dgate[pair] += fm_vec_dot(dy, o, (size_t)D);
        }
        fm_moe_expert_backward(moe, params, c, e, c->d_eo, dinp);
    }

    /* The auxiliary losses, then the routing. */
    if (balance_coef != 0.0f) fm_moe_balance_backward(&c->as, &c->rt, &c->rg, c->noisy, balance_coef);
    if (entropy_coef != 0.0f)
        fm_moe_entropy_backward(&c->as, &c->rt, &c->rg, c->modality, f->M, E, entropy_coef);
    float *w[FM_MOE_MAX_MODALITIES], *wn[FM_MOE_MAX_MODALITIES];
    float *dw[FM_MOE_MAX_MODALITIES], *dwn[FM_MOE_MAX_MODALITIES];
    fm_moe_router_tensors(moe, params, 0, w, wn);
    fm_moe_router_tensors(moe, params, 1, dw, dwn);
    fm_moe_gate_backward(&c->rt, &c->rg, dinp, dw, dwn, c->x, (const float *const *)w,
                         (const float *const *)wn, D, f->gate, c->noisy);
}
